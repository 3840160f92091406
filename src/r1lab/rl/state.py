"""The GRPO trainer's prompt stream; checkpoints and resume come from the run layer.

Kept out of the training step (STYLE.md 2). Checkpoints, trainer state and metric truncation
live in `r1lab.run.checkpoints`, shared with every trainer; they are re-exported here for the
code that imported them from this module.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from r1lab.run.checkpoints import (
    CHECKPOINT_RE,
    checkpoints,
    load_trainer_state,
    save_checkpoint,
    truncate_metrics,
)

__all__ = [
    "CHECKPOINT_RE",
    "PromptStream",
    "checkpoints",
    "load_trainer_state",
    "save_checkpoint",
    "truncate_metrics",
]


class PromptStream:
    """Training examples in seeded epochs: each epoch is a fresh permutation of the pool.

    Its position (epoch, index) is part of a checkpoint, so a resumed run sees the same prompts
    as an uninterrupted one. A data-parallel rank takes every world_size-th prompt of the stream,
    so ranks own whole prompt groups and never need each other's rewards.
    """

    def __init__(
        self,
        examples: Sequence[Mapping[str, Any]],
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not examples:
            raise ValueError("the task has no training examples")
        self.examples = list(examples)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch, self.index = 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> list[int]:
        order = list(range(len(self.examples)))
        random.Random(f"stream/{self.seed}/{epoch}").shuffle(order)
        return order

    def take(self, n: int) -> list[Mapping[str, Any]]:
        """The next n examples of this rank (the stream takes n * world_size globally)."""
        out = []
        for _ in range(n * self.world_size):
            if self.index >= len(self._order):
                self.epoch += 1
                self.index = 0
                self._order = self._permutation(self.epoch)
            out.append(self.examples[self._order[self.index]])
            self.index += 1
        return out[self.rank :: self.world_size]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self._order = self._permutation(self.epoch)
