"""`r1lab pretrain`'s optimizer step in fp32 against bf16 autocast (`bf16=true`), back to back.

    .venv/bin/python bench/pretrain_speed.py                         # v2's shape: 4 x 1,024
    .venv/bin/python bench/pretrain_speed.py --block 512 --batch 8   # v1's

Builds the base model's shape (`ModelShape` defaults) at the given context, then times whole
optimizer steps (forward, backward, clipping, AdamW) on random tokens, alternating fp32 and bf16
rounds so that a noisy machine slows both alike, and prints the median seconds per step of each
and their ratio. Whether bf16 pays depends on the CPU: it needs AVX512-BF16 or AMX (the flags are
printed); without them autocast emulates bf16 and is slower. Speed only: what bf16 does to what
the model learns is measured by pretraining with it (docs/microworld.md).
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
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(ModelShape(max_positions=args.block).qwen2_config(644))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
    x = torch.randint(0, 644, (args.batch, args.block))

    def step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for bf16 in (False, True):
            step(bf16)  # warm-up after switching
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(bf16)
            times[bf16].append((time.perf_counter() - t0) / args.steps)
    fp32, bf16 = statistics.median(times[False]), statistics.median(times[True])
    print(f"CPU flags: {cpu_flags()}; torch {torch.__version__}, {args.threads} threads")
    print(f"{args.batch} x {args.block} tokens a step, {args.rounds} rounds of {args.steps} steps")
    print("| precision | s/step (median) | rounds |\n|---|---:|---|")
    for name, t in (("fp32", fp32), ("bf16 autocast", bf16)):
        rounds = ", ".join(f"{v:.2f}" for v in times[name != "fp32"])
        print(f"| {name} | {t:.3f} | {rounds} |")
    print(f"bf16 / fp32 speed: {fp32 / bf16:.2f}x")


if __name__ == "__main__":
    main()
