"""Where metrics go: `metrics.jsonl` always, TensorBoard and W&B when asked.

Metric names are namespaced and stable (STYLE.md 8): `reward/<name>`, `loss/policy`, `loss/kl`,
`policy/clip_frac`, `policy/entropy`, `response/length_mean`, `response/reflection_rate`,
`eval/pass@1`, `time/rollout`, `perf/tokens_per_s`, ...
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class MetricsLogger:
    """Append one JSON line per step; mirror scalars to TensorBoard / W&B if enabled."""

    def __init__(
        self,
        run_dir: str | Path,
        tensorboard: bool = False,
        wandb: bool = False,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tb = None
        self._wandb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise RuntimeError("tensorboard=true needs `pip install r1lab[tb]`") from e
            self._tb = SummaryWriter(str(Path(run_dir) / "tb"))
        if wandb:
            try:
                import wandb as wb
            except ImportError as e:
                raise RuntimeError("wandb=true needs `pip install r1lab[wandb]`") from e
            self._wandb = wb.init(project="r1lab", dir=str(run_dir), config=config)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(metrics, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All metric lines of a run, in step order."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a run directory?")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {n}: not valid JSON ({e.msg})") from None
    return sorted(rows, key=lambda r: r.get("step", 0))


def check_loggers(tensorboard: bool, wandb: bool) -> None:
    """Fail the start, not the first step after the run directory exists, when an optional
    logger that was asked for is not installed."""
    import importlib.util

    from r1lab.config import ConfigError

    for wanted, module, extra in ((tensorboard, "tensorboard", "tb"), (wandb, "wandb", "wandb")):
        if wanted and importlib.util.find_spec(module) is None:
            raise ConfigError(f"{module}=true needs `pip install r1lab[{extra}]`")
