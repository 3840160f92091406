"""`r1lab pretrain`'s optimizer step in fp32 against bf16 autocast (`bf16=true`), back to back.

    .venv/bin/python bench/pretrain_speed.py                         # v2's shape: 4 x 1,024
    .venv/bin/python bench/pretrain_speed.py --block 512 --batch 8   # v1's
    .venv/bin/python bench/pretrain_speed.py --compile --profile     # what else was tried
    .venv/bin/python bench/pretrain_speed.py --attention             # the attention kernel alone

Builds the base model's shape (`ModelShape` defaults) at the given context, then times whole
optimizer steps (forward, backward, clipping, AdamW) on random tokens, alternating fp32 and bf16
rounds so that a noisy machine slows both alike, and prints the median seconds per step of each
and their ratio. Whether bf16 pays depends on the CPU: it needs AVX512-BF16 or AMX (the flags are
printed); without them autocast emulates bf16 and is slower. Speed only: what bf16 does to what
the model learns is measured by pretraining with it (docs/microworld.md).

--compile adds a third variant, bf16 under `torch.compile(model)` (compiled once before the
rounds; the compile time is printed). --profile prints where a bf16 step's operator time goes
(torch.profiler over 3 steps): attention (SDPA forward and backward), matrix products, the rest.
--attention times causal SDPA alone (forward + backward, one layer of the base's heads, bf16) at
the same ~4,096 tokens cut into rows of different lengths, where FLOPs fall with the length.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from transformers import Qwen2ForCausalLM

from r1lab.microworld.pretrain import ModelShape


def cpu_flags() -> str:
    try:
        words = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return "unknown"
    found = sorted({w for w in words if w in ("avx512_bf16", "amx_bf16", "avx512f")})
    return ", ".join(found) or "none of avx512f, avx512_bf16, amx_bf16"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--block", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="add bf16 + torch.compile")
    ap.add_argument("--profile", action="store_true", help="split a bf16 step by operator")
    ap.add_argument("--attention", action="store_true", help="time SDPA alone by row length")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.attention:
        attention_by_length()
        return
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(ModelShape(max_positions=args.block).qwen2_config(644))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
    x = torch.randint(0, 644, (args.batch, args.block))

    # variant -> (the module to call, under bf16 autocast or not)
    variants = {"fp32": (model, False), "bf16 autocast": (model, True)}
    if args.compile:
        variants["bf16 autocast + torch.compile"] = (torch.compile(model), True)

    def step(variant: str) -> None:
        net, bf16 = variants[variant]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = net(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    if args.compile:
        t0 = time.perf_counter()
        step("bf16 autocast + torch.compile")
        print(f"torch.compile: first step {time.perf_counter() - t0:.1f} s")
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.rounds):
        for variant in variants:
            step(variant)  # warm-up after switching
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(variant)
            times[variant].append((time.perf_counter() - t0) / args.steps)
    median = {v: statistics.median(t) for v, t in times.items()}
    print(f"CPU flags: {cpu_flags()}; torch {torch.__version__}, {args.threads} threads")
    print(f"{args.batch} x {args.block} tokens a step, {args.rounds} rounds of {args.steps} steps")
    print("| variant | s/step (median) | rounds | speed / fp32 |\n|---|---:|---|---:|")
    for variant, t in median.items():
        rounds = ", ".join(f"{v:.2f}" for v in times[variant])
        print(f"| {variant} | {t:.3f} | {rounds} | {median['fp32'] / t:.2f}x |")
    if args.profile:
        profile_step(lambda: step("bf16 autocast"))


def attention_by_length(tokens: int = 4096, repeats: int = 5) -> None:
    """Causal SDPA forward + backward of one layer (6 heads of 32, bf16) at `tokens` tokens
    cut into rows of several lengths: what a step's attention costs when documents are short."""
    shape = ModelShape()
    heads, dim = shape.num_heads, shape.hidden_size // shape.num_heads
    print("| rows x length | causal FLOPs (rel.) | fwd + bwd, ms per layer |\n|---|---:|---:|")
    for length in (1024, 600, 300, 100):
        rows = tokens // length
        q, k, v = (
            torch.randn(rows, heads, length, dim, dtype=torch.bfloat16, requires_grad=True)
            for _ in range(3)
        )
        times = []
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            out.sum().backward()
            times.append(time.perf_counter() - t0)
        ms = 1000 * statistics.median(times[1:])  # the first call warms up
        print(f"| {rows} x {length} | {rows * length**2 / (tokens * 1024):.2f} | {ms:.1f} |")


def profile_step(step) -> None:
    """Operator time of 3 steps, grouped: attention, matrix products, everything else."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    groups = {"attention (SDPA forward + backward)": 0.0, "matrix products": 0.0, "the rest": 0.0}
    for e in prof.key_averages():
        if "scaled_dot_product" in e.key:
            group = "attention (SDPA forward + backward)"
        elif e.key in ("aten::mm", "aten::addmm", "aten::bmm"):
            group = "matrix products"
        else:
            group = "the rest"
        groups[group] += e.self_cpu_time_total / 1e6 / 3
    total = sum(groups.values())
    print("| bf16 step, operator self time | s/step | share |\n|---|---:|---:|")
    for group, sec in groups.items():
        print(f"| {group} | {sec:.3f} | {100 * sec / total:.0f}% |")


if __name__ == "__main__":
    main()
