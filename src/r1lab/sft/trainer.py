"""`r1lab sft`: supervised fine-tuning of a causal LM, loss on completion tokens only.

    r1lab sft data=data/coldstart.jsonl out=runs/sft
    r1lab sft --config configs/sft-micro.yaml
    r1lab sft data=train.parquet model=/path/to/Qwen2.5-0.5B template=chat dtype=bfloat16
    r1lab sft --resume runs/sft

`train_step` is one optimizer step, top to bottom: the step's sequences -> micro-batches ->
forward and backward of each with its share of the batch's token-mean loss -> clip ->
optimizer step -> metrics. The run around it (run directory, checkpoints, resume, Ctrl-C,
progress, model loading) is the run layer `r1lab zero` stands on too (`r1lab.run`).
"""

from __future__ import annotations

import hashlib
import time
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from r1lab.checkpoint import own_memory
from r1lab.config import ConfigError
from r1lab.rollout.batch import MIN_SHARED_TOKENS, default_cut_cost, prefix_cache
from r1lab.rollout.engine import cache_kwargs, logits_to_keep_kwargs
from r1lab.rollout.kv_cache import full_attention_only
from r1lab.run.distributed import all_max, all_sum, is_main, shard, teardown
from r1lab.run.fsdp import accumulate, gathered, shard_model
from r1lab.run.loop import open_or_resume, optimizer_step, restore, train_loop
from r1lab.sft.config import SFTConfig
from r1lab.sft.data import (
    Example,
    Fields,
    MicroBatch,
    SFTData,
    batch_rows,
    load_data,
    micro_batches,
)
from r1lab.sft.loss import IGNORE, lr_factor, sft_loss, token_nll

SFT_KEYS = (
    ("loss", "loss/sft"),
    ("eval", "eval/loss"),
    ("lr", "policy/lr"),
    ("tok/s", "perf/tokens_per_s"),
    ("s", "time/step"),
)
"""What `r1lab sft` shows per step: (label, metric name)."""


@dataclass
class Trainer:
    """Everything a step needs, passed explicitly (STYLE.md 7)."""

    cfg: SFTConfig
    model: Any
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    data: SFTData
    total_steps: int
    device: torch.device
    dtype: torch.dtype = torch.float32
    """What the steps and evaluations compute in (`r1lab.run.model.autocast`); weights are fp32."""
    data_hash: str = ""
    """`fingerprint` of the training sequences, saved with every checkpoint."""
    pad_id: int = 0
    cut_cost: int = 64
    """Token positions one more micro-batch is worth (see `plan_grouped`)."""
    nan_streak: int = 0


# ---------------------------------------------------------------------------------------------
# One SFT step


def train_step(t: Trainer, step: int) -> dict[str, float]:
    """One optimizer step over the step's batch of sequences; return its metrics.

    Data-parallel (`r1lab.run.distributed`): each rank takes every world_size-th sequence of the
    step's batch; the token count the loss divides by and the gradients are summed over ranks,
    so every rank applies the update of one process with the whole batch."""
    cfg = t.cfg
    t0 = time.perf_counter()

    # 1. The step's sequences (a fresh seeded order each epoch; this rank's share of them), cut
    # into micro-batches that spend no compute on padding: rows of similar length, or whole
    # sequences packed in a row.
    rows = batch_rows(len(t.data.train), cfg.batch_size, cfg.seed, step)
    batch = [t.data.train[i] for i in rows[shard(len(rows))]]
    micro = micro_batches(batch, cfg.batching, cfg.micro_batch_tokens, t.cut_cost, t.pad_id)

    # 2. The loss is a mean over every completion token of the batch (every rank's): each
    # micro-batch divides by this count, not its own, so accumulating k micro-batches on n
    # ranks is one pass over the batch.
    num_targets = int(all_sum([sum(e.num_targets for e in batch)])[0])

    # 3. Forward and backward, micro-batch by micro-batch; gradients accumulate.
    # At the block's end the ranks' gradients are summed: the gradient of the whole batch's loss.
    t.model.train()
    loss_sum = 0.0
    with accumulate(t.model) as comm:
        for mb in micro:
            logits, targets = target_logits(t.model, mb.to(t.device), cfg.share_prefix)  # [R, C, V]
            loss = sft_loss(logits, targets, num_targets)
            loss.backward()
            loss_sum += loss.item()
    loss_sum = all_sum([loss_sum])[0]

    # 4. Clip and step; a non-finite loss or gradient skips the step (nothing applied).
    out = optimizer_step(t, loss_sum)
    seconds = all_max(time.perf_counter() - t0)  # the slowest rank's

    # 5. Metrics, over every rank's sequences.
    sequences, tokens, positions, n_micro = all_sum(
        [
            len(batch),
            sum(len(e.ids) for e in batch),
            sum(mb.input_ids.numel() for mb in micro),
            len(micro),
        ]
    )
    out.update(
        {
            "loss/sft": loss_sum,
            "batch/sequences": sequences,
            "batch/tokens": tokens,
            "batch/completion_tokens": float(num_targets),
            "batch/micro_batches": n_micro,
            "batch/padding_frac": 1 - tokens / max(positions, 1),
            "train/epoch": (step + 1) / -(-len(t.data.train) // cfg.batch_size),
            "time/step": seconds,
            "time/comm": comm.seconds,
            "perf/tokens_per_s": tokens / max(seconds, 1e-9),
        }
    )
    return out


# ---------------------------------------------------------------------------------------------
# Helpers of the step


def target_logits(
    model: Any, mb: MicroBatch, share_prefix: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits of the positions that have a target, and the targets: [R, C, V] and [R, C],
    where C are the columns in which some row has one. Only those columns go through the LM
    head when the model takes `logits_to_keep` (the prompts' and padding's never do).

    No attention mask: a grouped row is one causal sequence (its padding comes after it); a
    packed row restarts its position ids per sequence, from which transformers builds the
    block-diagonal mask (or the varlen call of flash attention). That detection needs no mask
    and no KV cache, hence use_cache=False.

    share_prefix: the first tokens every row of a grouped micro-batch starts with (the
    template's instruction: 83 of ~167 tokens a micro-world row) go through the model once, as
    one row whose KV cache every row continues from; the same logits, and the gradient reaches
    the prefix's pass through the cache (`shared_prefix`)."""
    cols = (mb.targets != IGNORE).any(0).nonzero().squeeze(1)  # [C]
    c = shared_prefix(model, mb, cols) if share_prefix else 0
    ids, positions = mb.input_ids[:, c:], mb.position_ids[:, c:]
    extra: dict[str, Any] = {"use_cache": False}
    if c:  # grouped rows' positions start at 0, as the prefix's
        cache = prefix_cache(model, mb.input_ids[:1, :c], ids.shape[0])
        extra = {**cache_kwargs(model, cache), "use_cache": True}
    keep = {
        k: v for k, v in logits_to_keep_kwargs(model, cols - c).items() if k == "logits_to_keep"
    }
    out = model(input_ids=ids, position_ids=positions, **extra, **keep)
    logits = out.logits if keep else out.logits[:, cols - c]
    return logits, mb.targets[:, cols]


def shared_prefix(model: Any, mb: MicroBatch, cols: torch.Tensor) -> int:
    """Leading tokens every row of `mb` shares and that no target column reaches (0: compute
    the rows whole): only for models whose layers are all full attention, grouped rows (a
    packed row restarts its positions), and a prefix that saves `MIN_SHARED_TOKENS`."""
    rows = mb.input_ids.shape[0]
    if rows < 2 or not len(cols) or not full_attention_only(model):
        return 0
    same = (mb.input_ids == mb.input_ids[:1]).all(0).long().cumprod(0)  # [L]: 1 while shared
    c = min(int(same.sum()), int(cols.min()))  # logits of positions >= c are computed
    return c if (rows - 1) * c >= MIN_SHARED_TOKENS else 0


def eval_loss(t: Trainer) -> dict[str, float]:
    """Token-mean loss of the held-out sequences' completions (the model's current weights);
    each data-parallel rank scores its share of them."""
    cfg = t.cfg
    t.model.eval()
    nll, n = 0.0, 0
    mine = t.data.eval[shard(len(t.data.eval))]
    with torch.no_grad(), gathered(t.model):
        micro = micro_batches(mine, cfg.batching, cfg.micro_batch_tokens, t.cut_cost, t.pad_id)
        for mb in micro:
            logits, targets = target_logits(t.model, mb.to(t.device), cfg.share_prefix)
            nll += token_nll(logits, targets).item()
            n += int((targets != IGNORE).sum().item())
    nll, n = all_sum([nll, n])
    return {"eval/loss": nll / max(n, 1), "eval/completion_tokens": float(n)}


# ---------------------------------------------------------------------------------------------
# Building a run


def make_optimizer(
    model: torch.nn.Module, cfg: SFTConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW with linear warm-up and cosine decay (`lr_factor`) over `total_steps`."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def factor(step: int) -> float:
        return lr_factor(step, cfg.warmup_steps, total_steps, cfg.min_lr_ratio)

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def check_packing(model: Any) -> None:
    """Refuse batching=packed for a model whose attention crosses packed sequences' boundaries
    (one that ignores restarted position ids): two short sequences packed in a row must give
    the second the logits it has alone."""
    vocab = model.get_input_embeddings().num_embeddings
    device = next(model.parameters()).device
    first, second = torch.arange(5, 11) % vocab, torch.arange(20, 25) % vocab
    ids = torch.cat([first, second])[None].to(device)
    positions = torch.cat([torch.arange(6), torch.arange(5)])[None].to(device)
    with torch.no_grad():
        packed = model(input_ids=ids, position_ids=positions, use_cache=False).logits[0, 6:]
        alone = model(input_ids=second[None].to(device), use_cache=False).logits[0]
    tol = 1e-3 if packed.dtype == torch.float32 else 5e-2
    if not torch.allclose(packed.float(), alone.float(), atol=tol * max(1.0, alone.abs().max())):
        raise ConfigError(
            f"batching=packed: this model ({type(model).__name__}, attention "
            f"{getattr(model.config, '_attn_implementation', '?')}) lets packed sequences "
            "attend to each other (it does not restart attention at restarted position ids); "
            "use batching=grouped"
        )


def fingerprint(examples: list[Example]) -> str:
    """A digest of the training sequences, saved with each checkpoint: a resumed run whose data
    (or tokenizer, template, max_length) changed since it started would train on other rows
    than the uninterrupted run, so it is refused."""
    h = hashlib.sha1()
    for e in examples:
        h.update(array("q", (e.prompt_len, len(e.ids), *e.ids)).tobytes())
    return h.hexdigest()


def build(cfg: SFTConfig, checkpoint: Path | None = None) -> Trainer:
    """Data first (its errors cost no weight loading), then the model and the optimizer."""
    from r1lab.run.model import (
        context_length,
        load_model,
        load_tokenizer,
        resolve_device,
        training_dtype,
    )

    device = resolve_device(cfg.device)
    dtype = training_dtype(cfg.dtype, device)  # float16 fails here, before anything loads
    tokenizer = load_tokenizer(cfg.model, cfg.template)  # so does a model without a tokenizer
    max_length = cfg.max_length or context_length(cfg.model)
    fields = Fields(cfg.prompt_field, cfg.completion_field, cfg.messages_field)
    data = load_data(
        cfg.data,
        cfg.template,
        tokenizer,
        max_length,
        eval_data=cfg.eval_data,
        eval_size=cfg.eval_size,
        seed=cfg.seed,
        fields=fields,
        mix=cfg.mix,
        mix_ratio=cfg.mix_ratio,
    )
    model, tokenizer = load_model(
        str(checkpoint or cfg.model), str(device), cfg.dtype, cfg.template, train=True
    )
    # Loaded weights sit where safetensors left them; a resumed run must compute the same bits
    # as an uninterrupted one (see checkpoint.own_memory).
    model = own_memory(model)
    if cfg.batching == "packed":
        check_packing(model)
    if cfg.fsdp:  # before the optimizer, which must hold the sharded parameters
        model = shard_model(model)
    per_epoch = -(-len(data.train) // cfg.batch_size)
    total = cfg.steps or cfg.epochs * per_epoch
    optimizer, scheduler = make_optimizer(model, cfg, total)
    tokens = sum(len(e.ids) for e in data.train)
    held = f"{len(data.eval)} held out ({data.eval_source})" if data.eval else "none held out"
    dropped = f"; {data.dropped} longer than {max_length} tokens dropped" if data.dropped else ""
    if data.mixed:
        dropped += f"; {data.mixed} of the training rows from {cfg.mix}"
    if is_main():
        print(
            f"sft: {len(data.train)} training sequences ({tokens} tokens), {held}{dropped}; "
            f"{total} steps of {cfg.batch_size}"
        )
    return Trainer(
        cfg=cfg,
        model=model,
        tokenizer=tokenizer,
        optimizer=optimizer,
        scheduler=scheduler,
        data=data,
        total_steps=total,
        device=device,
        dtype=dtype,
        data_hash=fingerprint(data.train),
        pad_id=tokenizer.pad_token_id or 0,
        cut_cost=cfg.micro_batch_cut_cost or default_cut_cost(device.type),
    )


# ---------------------------------------------------------------------------------------------
# The command


def run(cfg: SFTConfig, command: str = "sft") -> int:
    """Train, in a fresh run directory or (cfg.resume) the one being continued.

    Nothing is written until start-up has succeeded (config valid, data read, model and
    tokenizer loaded); the run layer refuses an `out` that holds anything."""
    opened = open_or_resume(cfg)
    t = build(opened.cfg, opened.checkpoint)
    changed = (
        f"the training data differ from the data the run started with ({t.cfg.data}, "
        "template, tokenizer or max_length changed)"
    )
    start = restore(t, opened, changed)
    # The template goes with the weights, so eval and RL prompt the model as it was trained.
    meta = {"command": "r1lab sft", "template": t.cfg.template, "data": t.cfg.data}
    train_loop(
        t,
        opened,
        start,
        command,
        SFT_KEYS,
        train_step=lambda step: train_step(t, step),
        evaluate=(lambda: eval_loss(t)) if t.data.eval else None,
        meta=meta,
    )
    if is_main():
        _finish(opened.run_dir)
    teardown()
    return 0


def _finish(run_dir: Path) -> None:
    from r1lab.plotting import plot_run
    from r1lab.tracking import read_metrics

    plot_run(run_dir)
    rows = [r for r in read_metrics(run_dir) if "eval/loss" in r]
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        print(
            f"\nheld-out loss, step {first['step']} -> step {last['step']}: "
            f"{first['eval/loss']:.4f} -> {last['eval/loss']:.4f}"
        )
    print(f"run directory: {run_dir} (plot: {run_dir / 'plot.png'})")
