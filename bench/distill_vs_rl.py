"""The report's last finding on the micro-world: does a small student learn more from the final
model's data (distillation, SFT only) than from its own R1-Zero RL? (issue 14, docs/r1.md)

    r1lab r1 out=runs/r1                                   # the pipeline, with its distill stage
    .venv/bin/python bench/distill_vs_rl.py runs/r1 --steps 120 --out runs/distill-vs-rl

The same student base model (the pipeline's `student`) three ways, on the pipeline's held-out
questions and requests, evaluated exactly as the pipeline's report evaluates its models
(`r1lab.pipeline.report.evaluate_model`: the same questions, n, temperature, template rules):

- (i) distilled: the pipeline's `distill` stage (its own evaluation, read from runs/r1/eval);
- (ii) R1-Zero RL from the student base with the pipeline's `zero` settings (`r1lab zero`, every
  `--every` steps a checkpoint), evaluated at the checkpoint where its training time first
  reaches the distill stage's (teacher sampling + student SFT), and at the checkpoint of its
  best held-out pass@1 during training ("for as long as it keeps improving") and its last;
- (iii) the student base (the pipeline's evaluation of it).

Compute is each side's own wall-clock on this machine: RL's summed `time/step` (sampling,
scoring, update; its periodic evaluations excluded) against the distill stage's seconds. The
teacher's own training (the pipeline before it) is not counted, as the report does not count
R1's. Writes table.md, results.json and distill_vs_rl.png under --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from r1lab.config import load_config
from r1lab.pipeline.config import R1Config
from r1lab.pipeline.report import evaluate_model, report_markdown
from r1lab.rl.config import ZeroConfig
from r1lab.run.checkpoints import checkpoints
from r1lab.tracking import read_metrics


def train_rl(cfg: R1Config, out: Path, steps: int, every: int) -> Path:
    from r1lab.rl import trainer

    run = out / "rl"
    zero = dataclasses.replace(
        cfg.zero,
        model=cfg.student,
        task=cfg.task,
        out=str(run),
        steps=steps,
        checkpoint_every=every,
        keep_checkpoints=0,
        device=cfg.device,
        dtype=cfg.dtype,
        threads=cfg.threads,
        progress=False,
    )
    if (run / "config.yaml").is_file():
        zero = ZeroConfig(resume=str(run), steps=steps)
    trainer.run(zero)
    return run


def cumulative_seconds(run: Path) -> dict[int, float]:
    """Training seconds spent before each step (evaluations excluded)."""
    total, out = 0.0, {}
    for row in read_metrics(run):
        if "time/step" in row:
            total += row["time/step"]
            out[row["step"] + 1] = total
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("pipeline", help="an r1lab r1 directory whose distill and eval stages are done")
    ap.add_argument("--steps", type=int, default=120, help="RL steps of the student")
    ap.add_argument("--every", type=int, default=5, help="checkpoint every this many steps")
    ap.add_argument("--out", default="runs/distill-vs-rl")
    args = ap.parse_args()

    root, out = Path(args.pipeline), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(R1Config, root / "config.yaml")
    manifest = json.loads((root / "manifest.json").read_text())["stages"]
    distill_s = manifest["distill"]["seconds"]
    cached = {
        s: json.loads((root / "eval" / f"{s}.json").read_text()) for s in ("student", "distill")
    }

    run = train_rl(cfg, out, args.steps, args.every)
    spent = cumulative_seconds(run)
    saved = {int(c.name.split("-")[1]): c for c in checkpoints(run)}
    same_time = min((s for s in saved if spent.get(s, 0) >= distill_s), default=max(saved))
    evals = [r for r in read_metrics(run) if "eval/pass@1" in r and r["step"] in saved]
    best = max(evals, key=lambda r: r["eval/pass@1"])["step"] if evals else max(saved)
    picks = {
        f"RL, same time (step {same_time})": same_time,
        f"RL, best in training (step {best})": best,
        f"RL, last (step {max(saved)})": max(saved),
    }
    models = {
        "student base": cached["student"]["metrics"],
        "distilled": cached["distill"]["metrics"],
    }
    seconds = {"student base": 0.0, "distilled": distill_s}
    done = {}
    results_path = out / "results.json"
    if results_path.is_file():
        done = json.loads(results_path.read_text()).get("rl_evals", {})
    for label, step in picks.items():
        key = str(step)
        if key not in done:
            print(f"evaluating {label}", flush=True)
            done[key] = evaluate_model(cfg, str(saved[step]))
            results_path.write_text(json.dumps({"rl_evals": done}, indent=1))
        models[label] = done[key]
        seconds[label] = spent[step]
    table = report_markdown({"models": models, "stage_seconds": {}}, cfg.eval.ks).split("\n\n")[0]
    compute = (
        "| compute (min, this machine) | "
        + " | ".join(f"{seconds[m] / 60:.1f}" for m in models)
        + " |"
    )
    text = table.rstrip("\n") + "\n" + compute + "\n"
    (out / "table.md").write_text(text)
    curve = [
        (spent.get(r["step"], 0.0), r["eval/pass@1"])
        for r in read_metrics(run)
        if "eval/pass@1" in r
    ]
    results = {
        "models": models,
        "seconds": seconds,
        "rl_curve": curve,
        "distill_seconds": distill_s,
        "rl_evals": done,
    }
    results_path.write_text(json.dumps(results, indent=1))
    plot(results, out / "distill_vs_rl.png")
    print(text)
    print(f"wrote {out}/table.md, results.json, distill_vs_rl.png")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [s / 60 for s, _ in results["rl_curve"]]
    ax.plot(
        xs,
        [p for _, p in results["rl_curve"]],
        marker="o",
        label="student, R1-Zero RL (its training evals)",
    )
    d = results["models"]["distilled"]["eval/pass@1"]
    ax.scatter(
        [results["distill_seconds"] / 60],
        [d],
        color="C3",
        s=80,
        zorder=3,
        label="student, distilled",
    )
    b = results["models"]["student base"]["eval/pass@1"]
    ax.axhline(b, color="grey", ls="--", label="student base")
    ax.set_xlabel("student compute (minutes on 2 CPU cores)")
    ax.set_ylabel("held-out pass@1")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("Distillation vs RL for the micro-world student")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
