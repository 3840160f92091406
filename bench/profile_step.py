"""Where one r1lab GRPO step spends its time: torch.profiler's top operators, per phase.

    .venv/bin/python bench/profile_step.py                 # vs_trl settings, shipped base model
    .venv/bin/python bench/profile_step.py --rows 25 --out /tmp/trace.json
    .venv/bin/python bench/profile_step.py --phases --model runs/demo/checkpoints/step-000040
    .venv/bin/python bench/profile_step.py --phases --demo --model runs/demo/checkpoints/step-000030

Builds the trainer with bench/vs_trl.py's settings (P = 16, G = 8, 128 new tokens, EOS or length,
beta = 0.001, micro-batch 32, 2 threads), or with --demo `r1lab demo`'s (division and Chinese
questions, 600 new tokens, the stop string), runs one warm-up step, then profiles one step and
prints the operators by self CPU time. With --phases, two tables instead: the operators inside the
rollout (`Sampler.generate`; its "python" row is the time between operators: the sampler's loop
and the model's Python) and those of the rest of the step (reward scoring and the update).
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vs_trl import ASSET_BASE, r1lab_config  # noqa: E402  (a sibling script, not a package)

from r1lab.rewards import RewardPool  # noqa: E402
from r1lab.rl import trainer as trainer_module  # noqa: E402
from r1lab.rl.trainer import build, train_step  # noqa: E402


def phase_tables(prof, rows: int) -> None:
    """Self CPU time per operator, split into inside the rollout and the rest of the step."""
    events = prof.events()
    spans = [(e.time_range.start, e.time_range.end) for e in events if e.name == "rollout"]
    inside = collections.Counter()
    rest = collections.Counter()
    for e in events:
        if not (e.name.startswith("aten::") or e.name == "rollout"):
            continue
        name = "python (between operators)" if e.name == "rollout" else e.name
        t0 = e.time_range.start
        (inside if any(a <= t0 <= b for a, b in spans) else rest)[name] += e.self_cpu_time_total
    for title, counts in (("rollout", inside), ("reward + update", rest)):
        total = sum(counts.values())
        print(f"\n{title}: self CPU {total / 1e6:.3f} s")
        for name, us in counts.most_common(rows):
            print(f"  {name:<56} {us / 1e3:9.1f} ms {100 * us / total:6.1f}%")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(ASSET_BASE))
    ap.add_argument("--rows", type=int, default=20)
    ap.add_argument("--out", default="", help="also write a Chrome trace here")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--phases", action="store_true", help="split into rollout and the rest")
    ap.add_argument("--demo", action="store_true", help="`r1lab demo`'s settings")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.demo:
        from r1lab.demo import DemoConfig

        cfg = DemoConfig(model=args.model, threads=args.threads, progress=False, eval_every=0)
    else:
        ns = argparse.Namespace(
            model=args.model, group=8, max_new=128, prompts=16, micro_batch=32, threads=args.threads
        )
        cfg = r1lab_config(ns)
    if args.phases:  # mark the rollout so its operators can be told apart
        generate = trainer_module.Sampler.generate

        def marked(self, *a, **kw):
            with record_function("rollout"):
                return generate(self, *a, **kw)

        trainer_module.Sampler.generate = marked
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
    if args.phases:
        phase_tables(prof, args.rows)
    else:
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    if args.out:
        prof.export_chrome_trace(args.out)


if __name__ == "__main__":
    main()
