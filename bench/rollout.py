"""Benchmark r1lab's rollout sampler against Hugging Face `model.generate`.

    .venv/bin/python bench/rollout.py                  # micro-world model (or a random one)
    .venv/bin/python bench/rollout.py --model PATH     # any local HF causal LM directory
    python bench/rollout.py --dtype bfloat16           # on a GPU (picked when present)

Both sides get the same model, prompts and settings (G samples per prompt via
num_return_sequences, temperature 1, top-p 1, same max new tokens) in one process, alternating,
repeated, median taken. Throughput counts the tokens actually produced: up to and including
each completion's first EOS (what a trainer receives); `generate` keeps computing finished rows
as padding, r1lab drops them, and that difference is part of what is measured. A second table
ignores EOS on both sides (fixed length), which isolates per-step efficiency from early stops.
Also reports how well the sampler's log-probs match a full forward pass.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from r1lab.rollout import Sampler, SamplingParams
from r1lab.rollout.batch import collate, completion_logprobs
from r1lab.tasks import render_prompt
from r1lab.tasks.arithmetic import ArithmeticTask

ASSET_BASE = Path(__file__).resolve().parents[1] / "src" / "r1lab" / "assets" / "base"


def char_tokenizer() -> PreTrainedTokenizerFast:
    """Glue: a character-level tokenizer like the micro-world's (the tests have their own)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    specials = ["<pad>", "<bos>", "<eos>", "<unk>"]
    chars = [chr(i) for i in range(32, 127)] + ["\n"]
    vocab = {t: i for i, t in enumerate(specials + chars)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
    )


def load(model_path: str | None) -> tuple[torch.nn.Module, object, str]:
    if model_path is None and (ASSET_BASE / "config.json").exists():
        model_path = str(ASSET_BASE)
    if model_path is not None:
        if not (Path(model_path) / "config.json").exists():
            raise SystemExit(f"--model {model_path}: no config.json there")
        tok = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path)
        return model.eval(), tok, model_path
    tok = char_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=192,
        num_hidden_layers=6,
        num_attention_heads=6,
        num_key_value_heads=2,
        intermediate_size=512,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).eval()
    n = sum(p.numel() for p in model.parameters()) / 1e6
    return model, tok, f"random-init Qwen2 micro-world config ({n:.1f}M params, char vocab)"


def make_prompts(count: int, seed: int = 0, kind: str = "countdown") -> list[str]:
    """Countdown-style prompts of varied length, so the batch is really left-padded; or
    `arithmetic`: the demo's training questions (+, *, /; a fifth in Chinese) in the R1-Zero
    template, what `r1lab demo` samples (for a demo checkpoint given as --model)."""
    if kind == "arithmetic":
        task = ArithmeticTask(seed=seed, ops="+*/", zh_fraction=0.2)
        return [render_prompt(ex["question"]) for ex in task.examples("train", count)]
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        nums = [rng.randint(1, 99) for _ in range(rng.randint(3, 6))]
        target = rng.randint(10, 999)
        prompts.append(
            f"User: Using the numbers {nums}, create an equation that equals {target}. "
            "Show your work in <think> </think> tags. Assistant: <think>"
        )
    return prompts


def produced_tokens(rows: torch.Tensor, eos_ids: set[int]) -> int:
    """Tokens up to and including each row's first EOS. rows: [N, L] generated part."""
    total = 0
    for row in rows.tolist():
        k = next((i + 1 for i, t in enumerate(row) if t in eos_ids), len(row))
        total += k
    return total


def run_hf(model, tok, enc, eos_ids, group, max_new, ignore_eos, seed) -> tuple[float, int]:
    cfg = GenerationConfig(
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        max_new_tokens=max_new,
        num_return_sequences=group,
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else eos_ids[0],
        eos_token_id=None if ignore_eos else eos_ids,
    )
    torch.manual_seed(seed)  # generate only samples from the global RNG
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**enc, generation_config=cfg)
    dt = time.perf_counter() - t0
    gen = out[:, enc["input_ids"].shape[1] :]
    n = gen.numel() if ignore_eos else produced_tokens(gen, set(eos_ids))
    return dt, n


def run_r1lab(sampler, prompts, group, max_new, ignore_eos, seed) -> tuple[float, int, list]:
    params = SamplingParams(
        temperature=1.0, top_p=1.0, max_new_tokens=max_new, n=group, ignore_eos=ignore_eos
    )
    t0 = time.perf_counter()
    groups = sampler.generate(prompts, params, seed=seed)
    dt = time.perf_counter() - t0
    return dt, sum(len(c.token_ids) for g in groups for c in g), groups


def compare(model, tok, sampler, prompts, group, max_new, ignore_eos, rounds) -> dict:
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True).to(sampler.device)
    ours, theirs, ours_n, theirs_n = [], [], [], []
    for r in range(rounds):  # alternate so drift from other load on the machine hits both
        dt, n, _ = run_r1lab(sampler, prompts, group, max_new, ignore_eos, seed=r)
        ours.append(n / dt)
        ours_n.append(n)
        dt, n = run_hf(model, tok, enc, sampler.eos_token_ids, group, max_new, ignore_eos, r)
        theirs.append(n / dt)
        theirs_n.append(n)
    a, b = statistics.median(ours), statistics.median(theirs)
    per = len(prompts) * group * rounds
    return {
        "G": group,
        "len": max_new,
        "eos": "ignored" if ignore_eos else "natural",
        "r1lab": a,
        "hf": b,
        "ratio": a / b,
        "mean_len": (sum(ours_n) / per, sum(theirs_n) / per),
    }


def sampler_variants(model, tok, prompts, group, max_new, rounds, variants, eos_modes) -> None:
    """The same sampler built several ways (`variants`: name -> Sampler keyword arguments), same
    prompts and seeds, rounds alternating; speed-ups against the first, and whether every
    variant sampled the first one's tokens."""
    samplers = {name: Sampler(model, tok, **kw) for name, kw in variants.items()}
    names = list(samplers)
    print(
        "| EOS | mean tokens | "
        + " | ".join(f"{name} (s)" for name in names)
        + " | "
        + " | ".join(f"{names[0]} / {name}" for name in names[1:])
        + " | same tokens |"
    )
    print("|---|---:|" + "---:|" * (2 * len(names) - 1) + "---|")
    for ignore_eos in eos_modes:
        run_r1lab(samplers[names[-1]], prompts, group, max_new, ignore_eos, seed=0)  # warm-up
        times: dict[str, list[float]] = {name: [] for name in samplers}
        same = True
        for r in range(rounds):  # alternating, the same seed for all
            tokens = []
            for name, sampler in samplers.items():
                dt, n, groups = run_r1lab(sampler, prompts, group, max_new, ignore_eos, seed=r)
                times[name].append(dt)
                tokens.append([c.token_ids for g in groups for c in g])
            same = same and all(t == tokens[0] for t in tokens)
        med = [statistics.median(times[name]) for name in names]
        eos = "ignored" if ignore_eos else "natural"
        mean = n / (len(prompts) * group)
        cells = " | ".join(f"{t:.3f}" for t in med)
        ratios = " | ".join(f"{med[0] / t:.2f}x" for t in med[1:])
        print(f"| {eos} | {mean:.1f} | {cells} | {ratios} | {same} |")


def logprob_agreement(model, sampler, prompts, group, max_new) -> float:
    _, _, groups = run_r1lab(sampler, prompts, group, max_new, ignore_eos=False, seed=123)
    batch = collate([c for g in groups for c in g], sampler.pad_token_id).to(sampler.device)
    with torch.inference_mode():
        full = completion_logprobs(model, batch, temperature=1.0)
    return (full - batch.old_logprobs).mul(batch.completion_mask).abs().max().item()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=None, help="local HF model directory")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-new", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--dtype", choices=["float32", "bfloat16"], default="float32", help="the model's weights"
    )
    ap.add_argument("--prompt-set", choices=["countdown", "arithmetic"], default="countdown")
    ap.add_argument(
        "--eos",
        choices=["both", "natural", "ignored"],
        default="both",
        help="the EOS rows of --shared-vs-plain / --plain-step",
    )
    ap.add_argument("--no-scaling", action="store_true", help="skip the G and length sweeps")
    ap.add_argument(
        "--shared-vs-plain",
        action="store_true",
        help="instead: the sampler with and without the shared-prefix KV cache and attention "
        "(both through the model's forward)",
    )
    ap.add_argument(
        "--plain-step",
        action="store_true",
        help="instead: decode steps through the model's forward against the plain-ops step "
        "(with and without the shared-prefix cache)",
    )
    args = ap.parse_args()

    torch.set_num_threads(args.threads)  # a script may set global state; the library never does
    model, tok, desc = load(args.model)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device, getattr(torch, args.dtype))
    sampler = Sampler(model, tok)
    prompts = make_prompts(args.prompts, kind=args.prompt_set)
    variants = None
    if args.shared_vs_plain:
        variants = {
            "prompt KV repeated": {"shared_prefix": False, "plain_step": False},
            "shared": {"shared_prefix": True, "plain_step": False},
        }
    if args.plain_step:
        variants = {
            "model forward": {"plain_step": False},  # with the shared prefix on the CPU
            "plain step, shared prefix": {"plain_step": True, "shared_prefix": True},
            "plain step": {"plain_step": True},  # the default: prompt KV per row
        }
    if variants is not None:
        print(f"model: {desc}; {args.prompts} prompts x G = {args.group}, {args.max_new} tokens")
        rounds = max(args.rounds, 5)
        eos_modes = {"both": (False, True), "natural": (False,), "ignored": (True,)}[args.eos]
        sampler_variants(model, tok, prompts, args.group, args.max_new, rounds, variants, eos_modes)
        return
    # Warm-up both paths once (lazy inits, allocator) outside the timings.
    compare(model, tok, sampler, prompts[:2], 2, 8, False, 1)

    g, length = args.group, args.max_new
    settings = [(g, length, False), (g, length, True)]
    if not args.no_scaling:
        settings += [(4, length, False), (16, length, False), (g, 64, False), (g, 256, False)]
    results = [compare(model, tok, sampler, prompts, *setting, args.rounds) for setting in settings]
    lp_diff = logprob_agreement(model, sampler, prompts, g, length)

    lens = [len(p) for p in sampler.encode(prompts)]
    print("```")
    print(f"model: {desc}; dtype {next(model.parameters()).dtype}; device {device}")
    print(f"machine: {cpu_name()}, {args.threads} torch threads; torch {torch.__version__}")
    print(
        f"{args.prompts} prompts of {min(lens)}-{max(lens)} tokens, temperature 1, top-p 1, "
        f"median of {args.rounds} alternating rounds"
    )
    print("```")
    print("| G | max new | EOS | tokens/completion (r1lab, HF) | r1lab tok/s | HF tok/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        ml = r["mean_len"]
        print(
            f"| {r['G']} | {r['len']} | {r['eos']} | {ml[0]:.1f}, {ml[1]:.1f} | "
            f"{r['r1lab']:.0f} | {r['hf']:.0f} | {r['ratio']:.2f}x |"
        )
    print(f"\nlog-prob agreement, sampler vs full forward pass: max |diff| = {lp_diff:.2e}")


if __name__ == "__main__":
    main()
