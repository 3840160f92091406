"""Progress of a training run, shared by every trainer.

`Display` shows a rich progress bar with a trainer's key numbers (or one line per step when
stdout is not a terminal). The process's data-parallel rank is `r1lab.run.distributed`'s.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

ZERO_KEYS = (
    ("acc", "reward/accuracy"),
    ("fmt", "reward/format_rate"),
    ("len", "response/length_mean"),
    ("refl", "response/reflection_rate"),
    ("kl", "policy/kl"),
    ("s", "time/step"),
    ("eval@1", "eval/pass@1"),
)
"""What `r1lab zero` shows per step: (label, metric name)."""


class Display:
    """A rich progress bar labelled `label` with `keys` of each step's metrics, or one line per
    step when not a terminal; nothing when not `enabled`."""

    def __init__(
        self,
        label: str,
        total: int,
        start: int,
        enabled: bool,
        keys: Sequence[tuple[str, str]] = ZERO_KEYS,
    ) -> None:
        self.enabled, self.keys = enabled, tuple(keys)
        self.bar = None
        if enabled and sys.stdout.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.bar = Progress(
                TextColumn(label),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[s]}"),
            )
            self.task = self.bar.add_task(label, total=total, completed=start, s="")
            self.bar.start()

    def line(self, row: Mapping[str, float]) -> str:
        return "  ".join(f"{name} {row[key]:.3g}" for name, key in self.keys if key in row)

    def update(self, step: int, row: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=step + 1, s=self.line(row))
        else:
            print(f"step {step:4d}  {self.line(row)}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
