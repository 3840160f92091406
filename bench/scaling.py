"""How r1lab's GRPO step time grows with the work: G, completion length, model size.

    .venv/bin/python bench/scaling.py --plot docs/img/scaling.png

Every row is one r1lab trainer (P = 16 prompts, beta = 0.001, mu = 1, micro-batch 32, 2 threads)
with EOS ignored, so every completion is exactly max_new_tokens long and the work is known:
G in 4, 8, 16 at 128 tokens; max new tokens in 64, 128, 256 at G = 8; and a model with 4x the
parameters (hidden 384 instead of 192, MLP 1024 instead of 512, same 6 layers and tokenizer,
random init: timing only) at G = 8, 128 tokens. Each row: 1 warm-up step, then the median of
`--steps` steps. The measured slope is d log(time) / d log(work) between the ends of a sweep;
the expected slope is that of FLOPs (1 for G and for the 4x model; slightly above 1 for length,
since attention grows with the context), which a step bound by per-call overhead undershoots.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from r1lab.rewards import RewardPool
from r1lab.rl.config import AlgoConfig, RolloutConfig, ZeroConfig
from r1lab.rl.trainer import build, train_step
from r1lab.tasks import TaskConfig

ASSET_BASE = Path(__file__).resolve().parents[1] / "src" / "r1lab" / "assets" / "base"


def wide_model(base: str, out: str) -> str:
    """The base model's config with 4x the matmul parameters, random init, same tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    cfg = AutoConfig.from_pretrained(base)
    cfg.hidden_size *= 2
    cfg.intermediate_size *= 2
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def time_row(cfg: ZeroConfig, steps: int, pool: RewardPool) -> dict:
    t = build(cfg, pool)
    t.sampling = replace(t.sampling, ignore_eos=True)  # fixed length: known work per row
    train_step(t, 0)
    rows = [train_step(t, s) for s in range(1, steps + 1)]
    params = sum(p.numel() for p in t.policy.parameters())
    out = {k: statistics.median(r[k] for r in rows) for k in ("time/rollout", "time/update")}
    out["time/step"] = statistics.median(r["time/step"] for r in rows)
    out["params"] = params
    out["length_mean"] = statistics.mean(r["response/length_mean"] for r in rows)
    return out


def slope(rows: list[dict], x: str, key: str = "time/step") -> float:
    a, b = rows[0], rows[-1]
    return math.log(b[key] / a[key]) / math.log(b[x] / a[x])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(ASSET_BASE))
    ap.add_argument("--steps", type=int, default=2, help="timed steps per row")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--plot", default="")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    def cfg(model: str, g: int, length: int) -> ZeroConfig:
        return ZeroConfig(
            model=model,
            task=TaskConfig(name="arithmetic"),
            rollout=RolloutConfig(group_size=g, max_new_tokens=length, stop=[]),
            algo=AlgoConfig(prompts_per_step=16, beta=0.001, mu=1, micro_batch=32),
            threads=args.threads,
            progress=False,
            eval_every=0,
        )

    results: dict[str, list[dict]] = {"G": [], "length": [], "model": []}
    with RewardPool(workers=2) as pool, tempfile.TemporaryDirectory() as d:
        for g in (4, 8, 16):
            results["G"].append({"G": g, **time_row(cfg(args.model, g, 128), args.steps, pool)})
            print(json.dumps(results["G"][-1]), file=sys.stderr)
        for n in (64, 128, 256):
            row = results["G"][1] if n == 128 else time_row(cfg(args.model, 8, n), args.steps, pool)
            results["length"].append({"length": n, **row})
            print(json.dumps(results["length"][-1]), file=sys.stderr)
        wide = wide_model(args.model, str(Path(d) / "wide"))
        results["model"] = [
            {"size": 1, **results["G"][1]},
            {"size": 4, **time_row(cfg(wide, 8, 128), args.steps, pool)},
        ]
        results["model"][1]["size"] = results["model"][1]["params"] / results["model"][0]["params"]
        print(json.dumps(results["model"][-1]), file=sys.stderr)

    expected = {"G": 1.0, "length": 1.0, "model": 1.0}
    print("| sweep | value | step (s) | rollout (s) | update (s) |")
    print("|---|---:|---:|---:|---:|")
    for sweep, x in (("G", "G"), ("length", "length"), ("model", "size")):
        for r in results[sweep]:
            print(
                f"| {sweep} | {r[x]:.3g} | {r['time/step']:.2f} | {r['time/rollout']:.2f} "
                f"| {r['time/update']:.2f} |"
            )
    print("\n| sweep | expected slope (FLOPs) | measured: step | rollout | update |")
    print("|---|---:|---:|---:|---:|")
    slopes = {}
    for sweep, x in (("G", "G"), ("length", "length"), ("model", "size")):
        rows = results[sweep]
        slopes[sweep] = {k: slope(rows, x, f"time/{k}") for k in ("step", "rollout", "update")}
        s = slopes[sweep]
        print(
            f"| {sweep} | {expected[sweep]:.2f} | {s['step']:.2f} | {s['rollout']:.2f} "
            f"| {s['update']:.2f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "slopes": slopes}, indent=1))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
        for ax, (sweep, x, label) in zip(
            axes,
            (
                ("G", "G", "G (completions per prompt)"),
                ("length", "length", "max new tokens"),
                ("model", "size", "parameters (x base)"),
            ),
            strict=True,
        ):
            rows = results[sweep]
            xs = [r[x] for r in rows]
            for k in ("step", "rollout", "update"):
                ax.loglog(xs, [r[f"time/{k}"] for r in rows], "o-", label=k, base=2)
            ref = [rows[0]["time/step"] * v / xs[0] for v in xs]
            ax.loglog(xs, ref, "k--", lw=0.8, label="slope 1", base=2)
            ax.set_xlabel(label)
            ax.set_ylabel("seconds")
            ax.grid(alpha=0.3, which="both")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
