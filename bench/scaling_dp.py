"""Data-parallel GRPO: the same global batch on 1 process x 2 threads and 2 processes x 1 thread.

    .venv/bin/python bench/scaling_dp.py                 # shipped base, P = 16, G = 8, 160 tokens
    .venv/bin/python bench/scaling_dp.py --steps 6 --model PATH --prompts 8

Runs `r1lab zero`'s `train_step` (built as the command builds it) for N timed steps after one
warm-up step, first in one process with 2 threads, then under torchrun with 2 processes of 1
thread each (gloo), replicated and then sharded (`fsdp=true`), back to back, and prints the
median step time, its parts (rollout, reward, update, communication) and completion tokens per
second. EOS and the stop string are ignored, so every completion is exactly `--tokens` long and
every layout does the same work (each rank samples with its own seed, so natural lengths would
differ; `--natural` keeps them). `time/comm` is the gradient reduction alone: the all-reduce
(`r1lab.run.distributed.all_reduce_grads`), or under fsdp the reduce-scatter with its one-token
forward and backward; fsdp's all-gathers are inside the rollout and update times. The other
collectives of a step (a few counters and the per-completion metric records) are inside the
other parts and are small.

What a step communicates, per rank, for a model of N parameters: one all-reduce of the gradient,
4N bytes in float32 (2N in bf16); a ring all-reduce sends and receives 2 (W - 1) / W of that per
rank on W ranks, so the traffic per rank stays about 2 x 4N bytes however many ranks there are
(8 GB per step for a 1B-parameter model in fp32), plus a few kilobytes of counters and metric
records. The script prints these numbers for the model it ran. Sharded (`fsdp=true`), a rank
receives (W - 1) / W x 4N bytes per all-gather, one for sampling, one per update pass (`algo.mu`)
and one for the reference model (`algo.beta > 0`), and sends as much in the gradient's
reduce-scatter: with mu = 1 and a reference, 4 (W - 1) / W x 4N, twice the replicated traffic.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PARTS = ("time/step", "time/rollout", "time/reward", "time/update", "time/comm")


def worker(args: argparse.Namespace) -> None:
    from dataclasses import replace

    import torch

    from r1lab.rewards import RewardPool
    from r1lab.rl.config import AlgoConfig, RolloutConfig, ZeroConfig
    from r1lab.rl.trainer import build, train_step
    from r1lab.run.distributed import rank_world, setup, teardown

    torch.set_num_threads(args.threads)
    rank, world = setup("cpu")
    cfg = ZeroConfig(
        rollout=RolloutConfig(
            group_size=args.group,
            max_new_tokens=args.tokens,
            **({} if args.natural else {"stop": []}),  # fixed length: no stop string either
        ),
        algo=AlgoConfig(prompts_per_step=args.prompts),
        workers=0,
        threads=args.threads,
        progress=False,
        fsdp=args.fsdp,
        **({"model": args.model} if args.model else {}),
    )
    rows = []
    with RewardPool(workers=0) as pool:
        t = build(cfg, pool)
        if not args.natural:
            t.sampling = replace(t.sampling, ignore_eos=True)  # fixed length: equal work
        params = sum(p.numel() for p in t.policy.parameters())
        for step in range(args.steps + 1):
            m = train_step(t, step)
            if step:  # the first step warms up
                rows.append({k: m.get(k, 0.0) for k in (*PARTS, "perf/tokens_per_s")})
                rows[-1]["tokens"] = m["response/length_mean"] * args.prompts * args.group
    if rank_world()[0] == 0:
        out = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        out.update(world=world, threads=args.threads, params=params)
        Path(args.out).write_text(json.dumps(out))
    teardown()


def launch(
    args: argparse.Namespace, procs: int, threads: int, out: Path, fsdp: bool = False
) -> dict:
    me = [__file__, "--worker", "--threads", str(threads), "--out", str(out)]
    me += ["--fsdp"] if fsdp else []
    me += ["--steps", str(args.steps), "--prompts", str(args.prompts)]
    me += ["--group", str(args.group), "--tokens", str(args.tokens)]
    me += ["--model", args.model] if args.model else []
    me += ["--natural"] if args.natural else []
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if procs == 1:
        cmd = [sys.executable, *me]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs)]
        cmd += ["--rdzv-backend", "c10d", "--rdzv-endpoint", "localhost:0", *me]
    subprocess.run(cmd, check=True, env=env)
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default="", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--prompts", type=int, default=16, help="P, the global batch of prompts")
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=160)
    ap.add_argument("--model", default="")
    ap.add_argument("--natural", action="store_true", help="keep EOS (unequal work)")
    ap.add_argument("--fsdp", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        one = launch(args, 1, 2, Path(tmp) / "one.json")
        two = launch(args, 2, 1, Path(tmp) / "two.json")
        fsdp = launch(args, 2, 1, Path(tmp) / "fsdp.json", fsdp=True)
    print(f"global batch: P = {args.prompts} x G = {args.group}, {args.tokens} new tokens")
    head = ("1 proc x 2 thr", "2 procs x 1 thr", "ratio", "2 x 1, fsdp", "ratio")
    print(f"{'':<20}{head[0]:>16}{head[1]:>16}{head[2]:>7}{head[3]:>16}{head[4]:>7}")
    for key in (*PARTS, "perf/tokens_per_s", "tokens"):
        a, b, c = one[key], two[key], fsdp[key]
        rb, rc = (f"{b / a:7.2f}", f"{c / a:7.2f}") if a else (f"{'-':>7}", f"{'-':>7}")
        print(f"{key:<20}{a:16.3f}{b:16.3f}{rb}{c:16.3f}{rc}")
    n = one["params"]
    print(
        f"model: {n:,} parameters; gradient all-reduce per step: {4 * n / 2**20:.1f} MiB "
        f"(fp32), a ring moves 2 (W-1)/W of it per rank"
    )


if __name__ == "__main__":
    main()
