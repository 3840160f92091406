"""`r1lab plot RUN_DIR`: the R1-Zero (or SFT) curves of a run in one PNG.

    r1lab plot runs/zero                                # writes runs/zero/plot.png
    r1lab plot runs/grpo,runs/dr_grpo,runs/dapo out=cmp.png   # runs side by side + a table

Panels: accuracy (train and held-out pass@1), format, response length, reflection and
self-correction rates, reward, KL, language mixing and readability, candidates tried (countdown);
for an `r1lab sft` run: train and held-out loss, learning rate, gradient norm, tokens per second;
for an `r1lab rm` run: pair accuracy, loss and margin, learning rate, gradient norm, tokens/s.
Train curves are smoothed with a short moving average; raw points stay faint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1lab.tracking import read_metrics

PANELS = (
    ("accuracy", ("reward/accuracy", "eval/pass@1")),
    ("format", ("reward/format_rate", "eval/format")),
    ("response length (tokens)", ("response/length_mean", "eval/length_mean")),
    (
        "reflection / self-correction",
        ("response/reflection_rate", "eval/reflection_rate", "eval/self_correction_rate"),
    ),
    ("reward", ("reward/total",)),
    ("KL to reference", ("policy/kl",)),
    ("language mixing / readability", ("eval/mixed_language_rate", "eval/readability")),
    ("candidates tried (countdown)", ("eval/candidates",)),
    (
        "general requests: hidden rule",
        (
            "eval/general/helpful_rate",
            "eval/general/harmless_rate",
            "eval/general/over_refusal_rate",
        ),
    ),
)

# `r1lab sft` runs: a run whose metrics hold loss/sft is drawn with these instead.
SFT_PANELS = (
    ("loss (completion tokens)", ("loss/sft", "eval/loss")),
    ("learning rate", ("policy/lr",)),
    ("gradient norm (before clipping)", ("policy/grad_norm",)),
    ("tokens per second", ("perf/tokens_per_s",)),
)

# `r1lab rm` runs: a run whose metrics hold loss/rm.
RM_PANELS = (
    ("pair accuracy", ("rm/accuracy", "eval/accuracy")),
    ("loss (Bradley-Terry)", ("loss/rm", "eval/loss")),
    ("margin r(chosen) - r(rejected)", ("rm/margin", "eval/margin")),
    ("learning rate", ("policy/lr",)),
    ("gradient norm (before clipping)", ("policy/grad_norm",)),
    ("tokens per second", ("perf/tokens_per_s",)),
)

# Held-out series that share a panel with another held-out series get their own name and line.
SECOND_SERIES = {
    "eval/self_correction_rate": ("self-correction", "s:"),
    "eval/readability": ("readability", "s:"),
    "eval/mixed_language_rate": ("mixed language", "o--"),
    "eval/general/helpful_rate": ("helpful", "o--"),
    "eval/general/harmless_rate": ("harmless (harmful requests)", "s:"),
    "eval/general/over_refusal_rate": ("over-refusal", "^-."),
}


IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg")


@dataclass
class PlotConfig:
    run_dir: str = ""
    """The run directory to plot (holds metrics.jsonl); several, comma-separated, to compare."""
    out: str = ""
    """Output PNG (empty: RUN_DIR/plot.png; with several runs, the first run's compare.png)."""
    smooth: int = 5
    """Moving-average window for train curves (1 = raw)."""

    def validate(self) -> None:
        from r1lab.config import ensure

        ensure(self.smooth >= 1, "smooth", ">= 1 (1 = raw)", self.smooth)
        ok = not self.out or Path(self.out).suffix.lower() in IMAGE_SUFFIXES
        ensure(ok, "out", f"an image file ({', '.join(IMAGE_SUFFIXES)})", self.out)


def _smooth(ys: Sequence[float], k: int) -> list[float]:
    out, acc = [], []
    for y in ys:
        acc.append(y)
        if len(acc) > k:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if key in r]
    return [p[0] for p in pts], [p[1] for p in pts]


def _panels(runs: dict[str, list[dict[str, Any]]]) -> tuple:
    logged = {k for rows in runs.values() for r in rows for k in r}
    if "loss/rm" in logged:
        return RM_PANELS
    if "loss/sft" in logged:
        return SFT_PANELS
    # RL for all scenarios: the reward models' scores (train and held out), named by the run.
    scores = tuple(sorted(k for k in logged if k.startswith(("reward/rm_", "eval/general/rm_"))))
    return PANELS + ((("reward models' scores (general requests)", scores),) if scores else ())


def plot_runs(
    runs: dict[str, list[dict[str, Any]]], out: str | Path, smooth: int = 5, title: str = ""
) -> Path:
    """Draw the panels for one or more runs (label -> metric rows) into `out`: R1-Zero's, or
    `SFT_PANELS` for SFT runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # A panel no run has a number for (countdown's candidates on an arithmetic run) is left out.
    logged = {k for rows in runs.values() for r in rows for k in r}
    panels = [p for p in _panels(runs) if logged.intersection(p[1])] or list(_panels(runs))
    rows = -(-len(panels) // 4)
    fig, axes = plt.subplots(rows, 4, figsize=(17, 3.5 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (name, keys) in zip(axes.flat, panels, strict=False):
        for ci, (label, rows) in enumerate(runs.items()):
            color = colors[ci % len(colors)]
            for key in keys:
                xs, ys = _series(rows, key)
                if not xs:
                    continue
                tag = f"{label} " if len(runs) > 1 else ""
                # A reward model's series are named by it (several share a panel).
                rm = key.rsplit("/", 1)[-1] if "/rm_" in key else ""
                if key.startswith("eval/"):
                    what, style = SECOND_SERIES.get(key, (rm, "o--"))
                    name_ = f"{tag}held-out {what}".rstrip()
                    ax.plot(xs, ys, style, color=color, ms=4, label=name_)
                else:
                    ax.plot(xs, ys, color=color, alpha=0.2, lw=0.8)
                    name_ = f"{tag}train {rm}".rstrip()
                    ax.plot(xs, _smooth(ys, smooth), color=color, lw=1.6, label=name_)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_run(run_dir: str | Path, out: str | Path | None = None, smooth: int = 5) -> Path:
    run_dir = Path(run_dir)
    rows = read_metrics(run_dir)
    return plot_runs({run_dir.name: rows}, out or run_dir / "plot.png", smooth, str(run_dir))


def summary_table(runs: dict[str, list[dict[str, Any]]], threshold: float = 0.5) -> str:
    """Markdown: per run, held-out pass@1 and length at the start and end, and the first
    evaluated step whose pass@1 reaches `threshold` ("-" if none did)."""
    head = (
        f"| run | pass@1 start | pass@1 end | format end | length start | length end "
        f"| reflection end | first step with pass@1 >= {threshold:.0%} |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for label, rows in runs.items():
        ev = [r for r in rows if "eval/pass@1" in r]
        if not ev:
            lines.append(f"| {label} | - | - | - | - | - | - | - |")
            continue
        first, last = ev[0], ev[-1]
        reached = next((r["step"] for r in ev if r["eval/pass@1"] >= threshold), "-")
        lines.append(
            f"| {label} | {first['eval/pass@1']:.1%} | {last['eval/pass@1']:.1%} "
            f"| {last['eval/format']:.1%} | {first['eval/length_mean']:.1f} "
            f"| {last['eval/length_mean']:.1f} | {last['eval/reflection_rate']:.1%} | {reached} |"
        )
    return "\n".join(lines)


def run(cfg: PlotConfig) -> int:
    from r1lab.config import ConfigError, validate

    validate(cfg)
    dirs = [Path(d) for d in cfg.run_dir.split(",") if d.strip()]
    if not dirs:
        raise ConfigError("plot needs a run directory: r1lab plot RUN_DIR[,RUN_DIR...]")
    try:
        names = [d.name for d in dirs]
        unique = len(set(names)) == len(names)
        runs = {(d.name if unique else str(d)): read_metrics(d) for d in dirs}
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(str(e)) from None
    if cfg.out:
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    if len(dirs) == 1:
        path = plot_run(dirs[0], cfg.out or None, cfg.smooth)
    else:
        path = plot_runs(runs, cfg.out or dirs[0] / "compare.png", cfg.smooth)
    print(summary_table(runs))
    print(f"wrote {path}")
    return 0
