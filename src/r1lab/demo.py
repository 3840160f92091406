"""`r1lab demo` (what `make demo` runs): R1-Zero on the micro-world, start to finish.

    r1lab demo                 # at most 10 minutes on 2 CPU cores
    r1lab demo steps=40        # any `r1lab zero` key works here too

Trains the shipped micro-world base model with GRPO on the arithmetic task, evaluating on the
held-out split as it goes, then prints the before/after numbers and writes the curves
(accuracy, format, response length, reflection, reward, KL) to runs/demo/plot.png.
"""

from __future__ import annotations

from dataclasses import dataclass

from r1lab.rl.config import ZeroConfig


@dataclass
class DemoConfig(ZeroConfig):
    steps: int = 40
    """Training steps: held-out pass@1 is near its plateau by then on the micro-world."""
    eval_every: int = 5
    """Held-out evaluation every this many steps, for finer curves."""
    out: str = "runs/demo"
    """Run directory of the demo."""


def run(cfg: DemoConfig) -> int:
    from r1lab.rl.trainer import run as zero

    return zero(cfg, command="demo")
