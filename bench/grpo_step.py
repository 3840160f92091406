"""Wall time of one full GRPO step at the default settings, split into its parts, and peak memory.

    .venv/bin/python bench/grpo_step.py                # shipped base model, `r1lab zero` defaults
    .venv/bin/python bench/grpo_step.py --steps 8 --model PATH
    .venv/bin/python bench/grpo_step.py --demo --model runs/demo/checkpoints/step-000030

Builds the trainer exactly as `r1lab zero` does (default ZeroConfig: P = 16 prompts, G = 8,
160 new tokens, mu = 1, beta = 0.001; with --demo, `r1lab demo`'s: division and Chinese
questions, 600 new tokens), warms up one step, then times N steps and reports the
median of each part (rollout, reward, update) and of the whole. Variants run back to back in the
same process, so their ratios are robust to a noisy machine:

- `default`: mu = 1 reuses the rollout's policy as pi_old (no extra forward pass); beta > 0
  runs one no-grad reference forward;
- `beta=0`: no reference model at all (the update's cost without the KL term);
- `mu=2`: two optimisation passes over the batch (pi_old from the rollout's log-probs);
- `dtype=bfloat16`: the default under bf16 autocast over fp32 weights, as `r1lab zero
  dtype=bfloat16` runs it (its samples differ from fp32's, so compare tokens/s).

Peak memory: the process's peak RSS (CPU) or torch's peak allocated memory (CUDA), read after
each variant (so the first row's figure is the default's own peak).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import torch

from r1lab.demo import DemoConfig
from r1lab.rewards import RewardPool
from r1lab.rl.config import AlgoConfig, ZeroConfig
from r1lab.rl.trainer import build, train_step
from r1lab.run.model import autocast

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pretrain_speed import cpu_flags  # noqa: E402  (a sibling script, not a package)


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def time_variant(name: str, cfg: ZeroConfig, steps: int, pool: RewardPool) -> dict:
    t = build(cfg, pool)
    with autocast(t.dtype, t.device):  # as `r1lab zero` steps
        train_step(t, 0)  # warm-up: allocator, kernels, worker imports
        rows = [train_step(t, s) for s in range(1, steps + 1)]
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k.startswith("time/")}
    tokens = statistics.median(r["perf/tokens_per_s"] for r in rows)
    length = statistics.mean(r["response/length_mean"] for r in rows)
    return {"variant": name, **med, "tokens_per_s": tokens, "length_mean": length}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="", help="model directory (default: shipped base)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per variant")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--demo", action="store_true", help="`r1lab demo`'s settings, not zero's")
    ap.add_argument("--json", default="", help="also write the results here")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    base = DemoConfig(progress=False) if args.demo else ZeroConfig(progress=False)
    if args.model:
        base = replace(base, model=args.model)
    variants = {
        "default": base,
        "beta=0": replace(base, algo=replace(base.algo, beta=0.0)),
        "mu=2": replace(base, algo=replace(base.algo, mu=2)),
        "dtype=bfloat16": replace(base, dtype="bfloat16"),
    }
    results = []
    with RewardPool(workers=base.workers) as pool:
        for name, cfg in variants.items():
            torch.manual_seed(0)
            results.append(time_variant(name, cfg, args.steps, pool))
            results[-1]["peak_mib_so_far"] = peak_memory_mib(torch.device("cpu"))
            print(json.dumps(results[-1]), file=sys.stderr)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    a: AlgoConfig = base.algo
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"threads, torch {torch.__version__}, Python {platform.python_version()}, {device}; "
        f"CPU flags: {cpu_flags()} (bf16 needs avx512_bf16 or amx_bf16)"
    )
    print(
        f"settings: P={a.prompts_per_step} G={base.rollout.group_size} "
        f"max_new_tokens={base.rollout.max_new_tokens} micro_batch={a.micro_batch} "
        f"mu={a.mu} beta={a.beta} ops={base.task.ops} zh={base.task.zh_fraction}; median of {args.steps} steps after 1 warm-up\n"
    )
    print(
        "| variant | step (s) | rollout (s) | reward (s) | update (s) | tokens/s | mean length "
        "| peak RSS so far (MiB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['variant']} | {r['time/step']:.2f} | {r['time/rollout']:.2f} "
            f"| {r['time/reward']:.3f} | {r['time/update']:.2f} | {r['tokens_per_s']:.0f} "
            f"| {r['length_mean']:.1f} | {r['peak_mib_so_far']:.0f} |"
        )
    print(f"\npeak memory (all variants, one process): {peak_memory_mib(device):.0f} MiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "peak_mib": peak_memory_mib(device)}, f, indent=1)


if __name__ == "__main__":
    main()
