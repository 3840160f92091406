"""Where one r1lab GRPO step spends its time: torch.profiler's top operators, per phase.

    .venv/bin/python bench/profile_step.py                 # vs_trl settings, shipped base model
    .venv/bin/python bench/profile_step.py --rows 25 --out /tmp/trace.json

Builds the trainer with bench/vs_trl.py's settings (P = 16, G = 8, 128 new tokens, EOS or length,
beta = 0.001, micro-batch 32, 2 threads), runs one warm-up step, then profiles one step and prints
the operators by self CPU time, plus the number of model forward calls (one per decode step).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vs_trl import ASSET_BASE, r1lab_config  # noqa: E402  (a sibling script, not a package)

from r1lab.rewards import RewardPool  # noqa: E402
from r1lab.rl.trainer import build, train_step  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(ASSET_BASE))
    ap.add_argument("--rows", type=int, default=20)
    ap.add_argument("--out", default="", help="also write a Chrome trace here")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    ns = argparse.Namespace(
        model=args.model, group=8, max_new=128, prompts=16, micro_batch=32, threads=args.threads
    )
    torch.set_num_threads(args.threads)
    cfg = r1lab_config(ns)
    with RewardPool(workers=cfg.workers) as pool:
        t = build(cfg, pool)
        train_step(t, 0)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            row = train_step(t, 1)
    print(
        f"step {row['time/step']:.2f} s: rollout {row['time/rollout']:.2f}, reward "
        f"{row['time/reward']:.2f}, update {row['time/update']:.2f}; mean length "
        f"{row['response/length_mean']:.1f}"
    )
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    if args.out:
        prof.export_chrome_trace(args.out)


if __name__ == "__main__":
    main()
