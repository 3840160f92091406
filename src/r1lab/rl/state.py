"""Run-directory plumbing for the trainer: the prompt stream, checkpoints and resume.

Kept out of the training step (STYLE.md 2). A checkpoint is an HF model directory plus
`trainer_state.pt` (optimizer, scheduler, data position, RNG), written atomically, the last K kept.
"""

from __future__ import annotations

import random
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from r1lab.checkpoint import save_hf

CHECKPOINT_RE = re.compile(r"^step-(\d{6})$")


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


def checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary directories are never listed)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and CHECKPOINT_RE.match(p.name)]
    return sorted(p for p in found if (p / "trainer_state.pt").is_file())


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: Any,
    tokenizer: Any,
    trainer_state: dict[str, Any],
    keep: int,
) -> Path:
    """Write checkpoints/step-NNNNNN atomically, then drop all but the last `keep`."""
    path = Path(run_dir) / "checkpoints" / f"step-{step:06d}"
    state = {
        **trainer_state,
        "step": step,
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
    }
    save_hf(
        path,
        model,
        tokenizer,
        extra={"step": step},
        extra_files={"trainer_state.pt": lambda p: torch.save(state, p)},
    )
    for old in checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return path


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    state = torch.load(checkpoint / "trainer_state.pt", weights_only=False)
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    return state


def truncate_metrics(path: Path, before_step: int) -> None:
    """Drop metric lines at or after `before_step`: a resumed run recomputes those steps."""
    import json

    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line).get("step", -1) < before_step
    ]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    tmp.replace(path)
