"""`r1lab pretrain`: make the micro-world base model from a seed on a laptop CPU.

    r1lab pretrain                       # the shipped base model's recipe, into runs/pretrain
    r1lab pretrain out=runs/base2 seed=1 # another one
    r1lab pretrain out=src/r1lab/assets/base --overwrite   # replace the shipped model
    r1lab pretrain preset=student        # the distillation student, into runs/pretrain-student

Generates the corpus (`corpus.py`), trains the tokenizer on it (`tokenizer.py`), and trains a
small Qwen2 model from scratch with next-token prediction on packed documents. Writes an HF
directory (model, tokenizer, generation config), `loss.jsonl` and `loss.png` beside it.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch

from r1lab.checkpoint import save_hf
from r1lab.config import ensure, validate
from r1lab.microworld.corpus import BASE_MIX, CorpusConfig, documents
from r1lab.microworld.tokenizer import train_tokenizer

if TYPE_CHECKING:
    from transformers import Qwen2Config


@dataclass
class ModelShape:
    """The base model's Qwen2 configuration."""

    hidden_size: int = 192
    """Width of the residual stream."""
    num_layers: int = 6
    """Transformer blocks."""
    num_heads: int = 6
    """Query heads (head dim = hidden_size / num_heads)."""
    num_kv_heads: int = 2
    """Key/value heads (grouped-query attention, as in Qwen2)."""
    intermediate_size: int = 512
    """Width of the SwiGLU MLP."""
    max_positions: int = 1024
    """Longest sequence the model is built for (prompt + completion): a 600-token rollout of
    division checks after a ~90-token prompt."""

    def validate(self) -> None:
        for key in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size"):
            ensure(getattr(self, key) >= 1, key, ">= 1", getattr(self, key))
        ensure(
            self.hidden_size % self.num_heads == 0,
            "num_heads",
            f"a divisor of hidden_size ({self.hidden_size})",
            self.num_heads,
        )
        ensure(
            self.num_heads % self.num_kv_heads == 0,
            "num_kv_heads",
            f"a divisor of num_heads ({self.num_heads})",
            self.num_kv_heads,
        )
        ensure(self.max_positions >= 2, "max_positions", ">= 2", self.max_positions)

    def qwen2_config(self, vocab_size: int, eos: int = 0) -> Qwen2Config:
        """The transformers `Qwen2Config` of this shape (tied embeddings, `eos` as BOS and PAD)."""
        from transformers import Qwen2Config

        return Qwen2Config(
            vocab_size=vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_positions,
            tie_word_embeddings=True,
            bos_token_id=eos,
            eos_token_id=eos,
            pad_token_id=eos,
            rope_theta=10000.0,
        )


@dataclass
class PretrainConfig:
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "base": {},
        # The distillation student: a third of the base model's parameters, narrower and
        # shallower, on the same corpus and tokenizer (shipped at assets/student).
        "student": {
            "out": "runs/pretrain-student",
            # Two thirds of the base's 2,400 steps fit in 10 minutes on 2 cores: 0.33 s a step.
            "steps": 1600,
            "model.hidden_size": 128,
            "model.num_layers": 4,
            "model.num_heads": 4,
            "model.num_kv_heads": 2,
            "model.intermediate_size": 320,
        },
    }

    preset: Literal["base", "student"] = "base"
    """Named defaults applied before any other key: `base` (the shipped base model) or
    `student` (the smaller model that `r1lab distill` trains). Keys you give win over it."""
    out: str = "runs/pretrain"
    """Output model directory, written when training ends. One that holds anything is refused
    (the shipped model included) unless overwrite is set."""
    overwrite: bool = False
    """`--overwrite`: write into an `out` that holds something, after moving its contents aside
    to `<out>.old-<time>` (nothing is deleted)."""
    seed: int = 3
    """Seed of model init and data order; the corpus has its own seed in corpus.seed. The
    shipped draw is 3: seeds 1, 2 and 3 of this recipe all learned to add (docs/microworld.md),
    3 the earliest."""
    corpus: CorpusConfig = field(default_factory=lambda: BASE_MIX)
    """The corpus mix; by default the shipped models' (`corpus.BASE_MIX`)."""
    num_docs: int = 75000
    """Corpus documents to generate (the run cycles over them if it needs more tokens)."""
    vocab_size: int = 640
    """BPE vocabulary size, before the special and tag tokens."""
    model: ModelShape = field(default_factory=ModelShape)
    block_size: int = 1024
    """Tokens per training sequence (documents packed, separated by <|endoftext|>): the model's
    whole context, so that a ~90-token prompt and a 600-token rollout sit in positions it was
    trained on (with 256, a completion past ~165 tokens ran on untrained positions)."""
    batch_size: int = 4
    """Sequences per optimizer step (4 x 1024 = 4,096 tokens, as v1's 16 x 256)."""
    steps: int = 2400
    """Optimizer steps."""
    lr: float = 2e-3
    """Peak learning rate (AdamW), reached after `warmup` steps, cosine-decayed to lr/10."""
    warmup: int = 50
    """Linear warm-up steps."""
    weight_decay: float = 0.05
    """AdamW weight decay on matrices (not on norms and biases)."""
    threads: int = 2
    """torch CPU threads (0 leaves torch's default)."""
    device: str = "cpu"
    """Device to train on (cpu, cuda or cuda:N)."""
    bf16: bool = True
    """Mixed precision, as `bf16=True` in transformers' TrainingArguments: the forward and
    backward under bf16 autocast, weights and optimizer state in fp32. Pays on CPUs with
    AVX512-BF16 or AMX and on GPUs (docs/benchmarks.md): 1.37x the steps per second here,
    which paid for the third more steps that the shipped draw needed to learn to add. The
    saved weights are fp32."""
    probe_every: int = 100
    """Run the arithmetic probe (`probe.py`: the probability of the right digit where a worked
    addition or multiplication reads a column, states its fact, puts the total together) every
    this many steps and at the end, into loss.jsonl, loss.png and r1lab.json; 0 = never. About
    1.5 s a probe on 2 cores; it draws no random numbers, so it never changes the weights."""

    def validate(self) -> None:
        from r1lab.run.model import DEVICE_RE

        ensure(bool(self.out.strip()), "out", "a directory", self.out)
        ensure(self.num_docs >= 1, "num_docs", ">= 1", self.num_docs)
        ensure(self.vocab_size >= 1, "vocab_size", ">= 1", self.vocab_size)
        ensure(
            2 <= self.block_size <= self.model.max_positions,
            "block_size",
            f"in [2, model.max_positions={self.model.max_positions}]",
            self.block_size,
        )
        ensure(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)
        ensure(self.steps >= 1, "steps", ">= 1", self.steps)
        ensure(math.isfinite(self.lr) and self.lr > 0, "lr", "> 0", self.lr)
        ensure(self.warmup >= 0, "warmup", ">= 0", self.warmup)
        ensure(self.weight_decay >= 0, "weight_decay", ">= 0", self.weight_decay)
        ensure(self.probe_every >= 0, "probe_every", ">= 0 (0 = never)", self.probe_every)
        ensure(self.threads >= 0, "threads", ">= 0 (0 = torch's default)", self.threads)
        ok = bool(DEVICE_RE.match(self.device)) and self.device != "auto"
        ensure(ok, "device", "cpu, cuda or cuda:N", self.device)


def _batches(ids: torch.Tensor, cfg: PretrainConfig, gen: torch.Generator):
    """Packed blocks of `block_size` tokens, each epoch in a fresh seeded order."""
    n_blocks = len(ids) // cfg.block_size
    blocks = ids[: n_blocks * cfg.block_size].view(n_blocks, cfg.block_size)
    while True:
        order = torch.randperm(n_blocks, generator=gen)
        for i in range(0, n_blocks - cfg.batch_size + 1, cfg.batch_size):
            yield blocks[order[i : i + cfg.batch_size]]  # [batch, block]


def run(cfg: PretrainConfig) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from transformers import GenerationConfig, Qwen2ForCausalLM

    from r1lab.microworld.probe import arithmetic_probe, probe_items
    from r1lab.run import check_free, claim, resolve_device

    validate(cfg)
    check_free(cfg.out, cfg.overwrite)  # before minutes of training, not after
    resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    docs = list(documents(cfg.corpus, cfg.num_docs))
    tok = train_tokenizer(docs, cfg.vocab_size)
    eos = tok.eos_token_id
    ids = []
    for enc in tok(docs, add_special_tokens=False)["input_ids"]:
        ids.extend(enc)
        ids.append(eos)
    data = torch.tensor(ids, dtype=torch.long)
    print(f"corpus: {len(docs)} documents, {len(data):,} tokens, vocab {len(tok)}")

    model_cfg = cfg.model.qwen2_config(len(tok), eos)
    model = Qwen2ForCausalLM(model_cfg).to(cfg.device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: Qwen2, {n_params:,} parameters")
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    gen = torch.Generator().manual_seed(cfg.seed)
    batches = _batches(data, cfg, gen)
    curve = []
    probes = probe_items() if cfg.probe_every else []
    probe: dict[str, float] = {}
    model.train()
    # A live bar on a terminal; a line every 100 steps in a log file.
    log_lines = not sys.stdout.isatty()
    with Progress(
        TextColumn("pretrain"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} loss {task.fields[loss]:.3f}"),
        TimeRemainingColumn(),
        disable=log_lines,
    ) as bar:
        task = bar.add_task("pretrain", total=cfg.steps, loss=float("nan"))
        for step in range(cfg.steps):
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            x = next(batches).to(cfg.device)
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                loss = model(input_ids=x, labels=x).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            point = {"step": step, "loss": loss.item(), "lr": lr_at(step)}
            last = step == cfg.steps - 1
            if probes and (step % cfg.probe_every == 0 or last):
                probe = arithmetic_probe(model, tok, probes)
                point.update({f"probe/{k}": v for k, v in probe.items()})
            curve.append(point)
            bar.update(task, advance=1, loss=loss.item())
            if log_lines and (step % 100 == 0 or last):
                shown = "".join(
                    f"  {k} {v:.3f}" for k, v in point.items() if k.startswith("probe/")
                )
                print(
                    f"step {step:5d}  loss {loss.item():.4f}  {time.time() - t0:.0f}s{shown}",
                    flush=True,
                )
    elapsed = time.time() - t0

    model.eval()
    model.generation_config = GenerationConfig(
        bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, max_new_tokens=256
    )
    provenance = {
        "command": "r1lab pretrain",
        "config": asdict(cfg),
        "parameters": n_params,
        "corpus_tokens": len(data),
        "train_tokens": cfg.steps * cfg.batch_size * cfg.block_size,
        "final_loss": sum(c["loss"] for c in curve[-50:]) / min(50, len(curve)),
        "probe": probe,
        "seconds": round(elapsed, 1),
        "torch": torch.__version__,
    }

    def write_curve(path: Path) -> None:
        path.write_text("".join(json.dumps(c) + "\n" for c in curve))

    def plot_curve(path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        probed = [c for c in curve if "probe/+ total" in c]
        fig, axes = plt.subplots(1, 2 if probed else 1, figsize=(11 if probed else 6, 3.5))
        ax = axes[0] if probed else axes
        ax.plot([c["step"] for c in curve], [c["loss"] for c in curve], lw=0.8)
        ax.set(xlabel="step", ylabel="loss (nats/token)", title="micro-world pretraining")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if probed:
            keys = [k for k in probed[-1] if k.startswith("probe/")]
            for key in keys:
                axes[1].plot(
                    [c["step"] for c in probed], [c.get(key) for c in probed], label=key[6:]
                )
            axes[1].set(xlabel="step", ylabel="p(right digit)", title="arithmetic probe")
            axes[1].set_ylim(0, 1.02)
            axes[1].legend(fontsize=7, ncol=2)
            axes[1].grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    model.to("cpu")
    claim(cfg.out, cfg.overwrite)
    save_hf(
        cfg.out,
        model,
        tok,
        extra=provenance,
        extra_files={"loss.jsonl": write_curve, "loss.png": plot_curve},
    )
    print(
        f"saved {cfg.out}: final loss {provenance['final_loss']:.3f}, "
        f"{elapsed / 60:.1f} min, {provenance['train_tokens']:,} training tokens"
    )
    return 0
