"""`r1lab demo` (what `make demo` runs): R1-Zero on the micro-world, start to finish.

    r1lab demo                 # at most 10 minutes on 2 CPU cores
    r1lab demo steps=40        # any `r1lab zero` key works here too

Trains the shipped micro-world base model with GRPO on the arithmetic task, evaluating on the
held-out split as it goes, then prints the before/after numbers and writes the curves
(accuracy, format, response length, reflection, reward, KL) to runs/demo/plot.png.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from r1lab.rl.config import AlgoConfig, RolloutConfig, ZeroConfig
from r1lab.tasks import TaskConfig


@dataclass
class DemoConfig(ZeroConfig):
    task: TaskConfig = field(default_factory=lambda: TaskConfig(ops="+*/", zh_fraction=0.2))
    """Arithmetic with division, where the shipped base checks a guessed quotient by
    multiplying back (the habit RL selects), a fifth of the questions in Chinese."""
    rollout: RolloutConfig = field(default_factory=lambda: RolloutConfig(max_new_tokens=600))
    """600 tokens: room for a division check of three or four tries."""
    algo: AlgoConfig = field(default_factory=lambda: AlgoConfig(lr=5e-5))
    steps: int = 30
    """Training steps: every demo target is met by then on the micro-world (docs/zero.md)."""
    eval_every: int = 10
    """Held-out evaluation every this many steps."""
    out: str = "runs/demo"
    """Run directory of the demo."""


def run(cfg: DemoConfig) -> int:
    from r1lab.rl.trainer import run as zero

    return zero(cfg, command="demo")
