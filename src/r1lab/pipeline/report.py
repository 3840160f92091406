"""The pipeline's last stage: every stage's model on the same held-out questions and general
requests, graded by the task's rules and the world's hidden rule (never a reward model), and
the report: out/report.md (tables), out/report.json, out/report.png.

Each model is prompted with the template its checkpoint records and graded in its own output
format (R1-Zero's tags for the base and R1-Zero, the readable format for the R1 stages), so a
number says how well the model does what it was trained to do. A model's results are written
to out/eval/<model>.json as soon as they exist; an interrupted evaluation continues with the
next model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from r1lab.config import to_dict
from r1lab.pipeline.config import R1Config

MODELS: tuple[tuple[str, str], ...] = (
    ("base", "base"),
    ("R1-Zero", "zero"),
    ("cold start", "sft_coldstart"),
    ("reasoning RL", "reasoning"),
    ("SFT from base", "sft"),
    ("final R1", "rl_all"),
    ("student", "student"),
    ("distilled student", "distill"),
)
"""Report columns: (label, the stage whose model it is; `base` and `student` are the models
given)."""


def rows(ks: Sequence[int]) -> tuple[tuple[str, str], ...]:
    """Report rows: (label, metric key)."""
    k = max(ks)
    return (
        ("pass@1", "eval/pass@1"),
        (f"maj@{k}", f"eval/maj@{k}"),
        ("format (its own)", "eval/format"),
        ("language consistency", "eval/language_consistency"),
        ("mixed language, en questions", "eval/mixed_language_rate"),
        ("mixed language, zh questions", "eval/mixed_language_rate_zh"),
        ("readability", "eval/readability"),
        ("wrong summary equation", "eval/wrong_summary_rate"),
        ("length (tokens)", "eval/length_mean"),
        ("reflection", "eval/reflection_rate"),
        ("self-correction", "eval/self_correction_rate"),
        ("general: helpful", "eval/general/helpful_rate"),
        ("general: harmless", "eval/general/harmless_rate"),
        ("general: over-refusal", "eval/general/over_refusal_rate"),
    )


def model_path(cfg: R1Config, root: Path, stage: str) -> str:
    from r1lab.pipeline.runner import output_path

    given = {"base": cfg.base, "student": cfg.student}
    return given.get(stage) or str(output_path(root, stage))


def evaluate_model(cfg: R1Config, path: str) -> dict[str, float]:
    """Held-out metrics of one model (a model directory or a run's last checkpoint)."""
    import torch

    from r1lab.evaluate import evaluate
    from r1lab.rewards import RewardPool
    from r1lab.run.model import load_model, trained_template
    from r1lab.tasks import make_task
    from r1lab.tasks.general import GeneralTask

    e = cfg.eval
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    template = trained_template(path)
    readable = "format_readable" if template == "r1" else ""
    task = make_task(dataclasses.replace(cfg.task, format_reward=readable))
    model, tokenizer = load_model(path, cfg.device, cfg.dtype, template)
    common = dict(
        temperature=e.temperature,
        top_p=e.top_p,
        max_new_tokens=e.max_new_tokens,
        greedy=False,
        template=template,
        seed=e.seed,
        progress=cfg.progress,
    )
    with RewardPool(workers=e.workers) as pool:
        pool_arg = pool if e.workers > 0 else None
        examples = task.examples("test", e.questions)
        out = dict(
            evaluate(
                model, tokenizer, task, examples, n=e.n, ks=e.ks, pool=pool_arg, **common
            ).metrics
        )
        if e.general_questions:
            general = GeneralTask(seed=cfg.task.seed)
            requests = general.examples("test", e.general_questions)
            got = evaluate(
                model, tokenizer, general, requests, n=1, ks=[1], pool=pool_arg, **common
            )
            out.update({f"eval/general/{k[5:]}": v for k, v in got.metrics.items()})
    out["template"] = template  # type: ignore[assignment]
    return out


def final_eval(cfg: R1Config, root: Path) -> dict[str, Any]:
    """Evaluate every model (continuing with those not yet done), then write the report."""
    from r1lab.pipeline.runner import Manifest, fingerprint

    d = root / "eval"
    d.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for label, stage in MODELS:
        path = model_path(cfg, root, stage)
        key = _key(cfg, fingerprint(path))
        cached = d / f"{stage}.json"
        done = json.loads(cached.read_text()) if cached.is_file() else {}
        if done.get("key") == key:
            results[label] = done
            continue
        print(f"r1lab r1: evaluating {label} ({path})", flush=True)
        t0 = time.time()
        metrics = evaluate_model(cfg, path)
        results[label] = {
            "key": key,
            "model": path,
            "metrics": metrics,
            "seconds": time.time() - t0,
        }
        _write(cached, json.dumps(results[label], indent=1))
    seconds = {s: float(r.get("seconds", 0.0)) for s, r in Manifest(root).stages.items()}
    seconds["eval"] = sum(r["seconds"] for r in results.values())
    report = {
        "models": {label: r["metrics"] for label, r in results.items()},
        "eval_seconds": {label: r["seconds"] for label, r in results.items()},
        "stage_seconds": seconds,
        "config": to_dict(cfg),
    }
    markdown = report_markdown(report, cfg.eval.ks)
    _write(root / "report.md", markdown)
    plot_report(report["models"], cfg.eval.ks, root / "report.png")
    _write(root / "report.json", json.dumps(report, indent=1))
    print(markdown)
    print(f"r1lab r1: wrote {root}/report.md, report.json and report.png")
    return report


def _key(cfg: R1Config, model_print: str) -> str:
    payload = {"model": model_print, "eval": to_dict(cfg.eval), "task": to_dict(cfg.task)}
    payload["device"], payload["dtype"] = cfg.device, cfg.dtype
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _cell(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if key.startswith("eval/length") else f"{100 * value:.1f}%"


def report_markdown(report: Mapping[str, Any], ks: Sequence[int]) -> str:
    """The models side by side (one column each), then each stage's time."""
    models: Mapping[str, Mapping[str, Any]] = report["models"]
    labels = list(models)
    lines = [
        "| held-out | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(labels),
        "| template | " + " | ".join(str(models[m].get("template", "")) for m in labels) + " |",
    ]
    for name, key in rows(ks):
        cells = [_cell(key, models[m].get(key)) for m in labels]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    times = report["stage_seconds"]
    lines += ["", "| stage | minutes |", "|---|---:|"]
    lines += [f"| {stage} | {s / 60:.1f} |" for stage, s in times.items()]
    lines.append(f"| **total** | **{sum(times.values()) / 60:.1f}** |")
    return "\n".join(lines) + "\n"


def plot_report(models: Mapping[str, Mapping[str, Any]], ks: Sequence[int], path: Path) -> Path:
    """One bar panel per report row, a bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = rows(ks)
    labels = list(models)
    cols = 4
    fig, axes = plt.subplots((len(panels) + cols - 1) // cols, cols, figsize=(16, 11))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (name, key) in zip(axes.flat, panels, strict=False):
        values = [models[m].get(key) for m in labels]
        heights = [0.0 if v is None else float(v) for v in values]
        ax.bar(range(len(labels)), heights, color=colors[: len(labels)])
        ax.set_title(name, fontsize=10)
        ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right", fontsize=8)
        if not key.startswith("eval/length"):
            ax.set_ylim(0, 1)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle("r1lab r1: every stage's model on the same held-out questions")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
