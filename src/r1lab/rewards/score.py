"""Score a JSONL file of completions with the rule-based rewards and print a table.

    r1lab score src/r1lab/assets/samples/completions.jsonl
    r1lab score my.jsonl rewards='{format: 0.5, countdown: 1}' workers=2 output=scores.jsonl

Each line is one object: `completion` (the model's text) plus the example's reference fields
(`answer`, `numbers` and `target`, `tests`, and the reserved `num_tokens` / `max_tokens` /
`correct`). A line may carry its own `rewards` object (weights by reward name) that replaces the
`rewards` setting for that line, so one file can mix tasks: math lines use the default weights,
a countdown line says `"rewards": {"format": 0.5, "countdown": 1.0}`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r1lab.config import ConfigError, ensure
from r1lab.rewards.composite import CompositeReward, RewardError, RewardResult
from r1lab.rewards.pool import DEFAULT_TIMEOUT, RewardPool
from r1lab.rewards.registry import check_reward_config, get_reward

RESERVED_FIELDS = ("completion", "rewards")


@dataclass
class ScoreConfig:
    """Score a JSONL file of completions: `r1lab score FILE.jsonl`."""

    input: str = ""
    """JSONL file, one object per line: `completion`, the example's fields (`answer`, `numbers`,
    `target`, `tests`, `num_tokens`, ...) and optionally `rewards`, weights for that line only."""
    rewards: dict[str, float] = field(default_factory=lambda: {"format": 1.0, "math_accuracy": 1.0})
    """Reward weights by registered name, for lines without their own `rewards`
    (e.g. rewards='{format: 0.5, countdown: 1}'; names: format, format_prefill,
    format_cold_start, math_accuracy, countdown, code, code_binary, language_consistency,
    overlong_penalty, cosine_length)."""
    params: dict[str, dict] = field(default_factory=dict)
    """Params per reward name, e.g. params='{code: {timeout: 5}}' (docs/rewards.md lists them)."""
    workers: int = 2
    """Reward worker processes; 0 scores in this process (no hard time limit)."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds one reward may spend on one completion before its worker is killed (scores 0)."""
    output: str = ""
    """Optional JSONL path for per-line results (line, total, parts, info)."""
    per_item: bool = False
    """Also print one table row per line."""

    def validate(self) -> None:
        # Command-line values are checked here, as config, so an error names the key; the
        # file's own `rewards` fields are checked by read_lines, naming the file and line.
        check_reward_config(("rewards", self.rewards), ("params", self.params))
        ensure(self.workers >= 0, "workers", ">= 0 (0 = in-process)", self.workers)
        ensure(self.timeout > 0, "timeout", "> 0 seconds", self.timeout)


@dataclass
class _Line:
    number: int
    completion: str
    example: dict[str, Any]
    weights: dict[str, float]


def _check_line_weights(weights: Any, where: str) -> None:
    if not isinstance(weights, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in weights.values()
    ):
        raise ConfigError(f"{where}: field 'rewards' must map reward names to numbers")
    for name in weights:
        try:
            get_reward(name)
        except ConfigError as e:
            raise ConfigError(f"{where}: field 'rewards': {e}") from None


def read_lines(path: Path, default: Mapping[str, float]) -> list[_Line]:
    """Parse the input file; every problem is a ConfigError naming the file, line and field."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (input must be a JSONL file of completions)")
    lines = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            where = f"{path}, line {number}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ConfigError(f"{where}: not UTF-8 ({e.reason} at byte {e.start})") from None
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{where}: not valid JSON ({e.msg}, column {e.colno})") from None
            if not isinstance(obj, dict):
                raise ConfigError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            if "completion" not in obj:
                raise ConfigError(f"{where}: missing field 'completion'")
            if not isinstance(obj["completion"], str):
                raise ConfigError(f"{where}: field 'completion' must be a string")
            if "rewards" in obj:  # without it, the command line's weights (checked as config)
                _check_line_weights(obj["rewards"], where)
            weights = obj.get("rewards", default)
            example = {k: v for k, v in obj.items() if k not in RESERVED_FIELDS}
            lines.append(_Line(number, obj["completion"], example, dict(weights)))
    if not lines:
        raise ConfigError(f"{path}: no completions in the file")
    return lines


def score_lines(
    lines: list[_Line], cfg: ScoreConfig, path: Path, progress: Any = None
) -> list[RewardResult]:
    """Score every line in one pool batch (a composite per line's weights); results in order.

    A reward that fails on a line scores 0 there (counted in the table's `errors` column, the
    reason in the output's `info.errors`); one that fails on every line it scores (two or more)
    is an error naming the first such line.
    """
    composites: dict[tuple, CompositeReward] = {}
    per_line = []
    for line in lines:
        key = tuple(line.weights.items())
        if key not in composites:
            params = {k: v for k, v in cfg.params.items() if k in line.weights}
            composites[key] = CompositeReward(line.weights, params)
        per_line.append(composites[key])
    with RewardPool(workers=cfg.workers, timeout=cfg.timeout) as pool:
        try:
            return pool.score(
                per_line,
                [line.completion for line in lines],
                [line.example for line in lines],
                progress=progress,
            )
        except RewardError as e:
            where = f"{path}, line {lines[e.index].number}" if e.index is not None else str(path)
            raise ConfigError(f"{where}: reward '{e.name}' failed: {e.message}") from None


def summary_rows(
    lines: list[_Line], results: list[RewardResult]
) -> list[tuple[str, int, float, int, int]]:
    """(reward, items scored, mean score, timeouts, errors) per reward, then the total."""
    names: dict[str, list[float]] = {}
    timeouts: dict[str, int] = {}
    errors: dict[str, int] = {}
    for result in results:
        for name, score in result.parts.items():
            names.setdefault(name, []).append(score)
        for name in result.info.get("timed_out", []) + result.info.get("crashed", []):
            timeouts[name] = timeouts.get(name, 0) + 1
        for name in result.info.get("errors", {}):
            errors[name] = errors.get(name, 0) + 1
    rows = [
        (n, len(s), sum(s) / len(s), timeouts.get(n, 0), errors.get(n, 0))
        for n, s in sorted(names.items())
    ]
    totals = [r.total for r in results]
    rows.append(
        (
            "total",
            len(totals),
            sum(totals) / len(totals),
            sum(timeouts.values()),
            sum(errors.values()),
        )
    )
    return rows


def _print_tables(cfg: ScoreConfig, lines: list[_Line], results: list[RewardResult]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if cfg.per_item:
        names = sorted({n for r in results for n in r.parts})
        items = Table(title="per line")
        items.add_column("line", justify="right")
        for n in names:
            items.add_column(n, justify="right")
        items.add_column("total", justify="right", style="bold")
        for line, r in zip(lines, results, strict=True):
            cells = [f"{r.parts[n]:.2f}" if n in r.parts else "" for n in names]
            if r.info.get("timeout"):
                cells = [
                    c + "*" if n in r.info["timed_out"] else c
                    for c, n in zip(cells, names, strict=True)
                ]
            items.add_row(str(line.number), *cells, f"{r.total:.2f}")
        console.print(items)
    table = Table(title=f"rewards ({len(lines)} completions)", caption=cfg.input)
    table.add_column("reward")
    table.add_column("items", justify="right")
    table.add_column("mean", justify="right")
    table.add_column("timeouts", justify="right")
    table.add_column("errors", justify="right")
    for name, count, mean, timeouts, errors in summary_rows(lines, results):
        style = "bold" if name == "total" else None
        table.add_row(name, str(count), f"{mean:.3f}", str(timeouts), str(errors), style=style)
    console.print(table)


def _write_output(path: Path, lines: list[_Line], results: list[RewardResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for line, r in zip(lines, results, strict=True):
            record = {"line": line.number, "total": r.total, "parts": r.parts, "info": r.info}
            f.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")


def run(cfg: ScoreConfig) -> int:
    """Read, score, print, write. Returns the exit status (0)."""
    from rich.progress import Progress

    from r1lab.config import validate

    validate(cfg)
    if not cfg.input:
        raise ConfigError("score needs an input file: r1lab score FILE.jsonl")
    path = Path(cfg.input)
    lines = read_lines(path, cfg.rewards)
    with Progress(transient=True) as bar:
        task = bar.add_task("scoring", total=len(lines))
        results = score_lines(lines, cfg, path, progress=lambda k: bar.advance(task, k))
    _print_tables(cfg, lines, results)
    if cfg.output:
        _write_output(Path(cfg.output), lines, results)
        print(f"wrote {len(results)} results to {cfg.output}")
    return 0
