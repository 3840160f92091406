"""The run layer's keys, shared by every trainer (STYLE.md 12-13): where a run goes, how it
resumes, the device it runs on and how it reports. A trainer's config inherits them and adds its
own; `--help` lists them first. Importing this module imports neither torch nor transformers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from r1lab.config import ensure
from r1lab.run.model import DEVICE_RE, DEVICES, DTYPES

Dtype = Literal[DTYPES]  # type: ignore[valid-type]


@dataclass
class RunConfig:
    """Keys every trainer has (`r1lab zero`, `r1lab sft`, and the trainers to come)."""

    out: str = "runs/run"
    """Run directory; one that holds anything is refused (see resume and overwrite)."""
    resume: str = ""
    """A run directory to continue from its last checkpoint (`--resume RUN`), with its saved
    config: a key that would change what is already computed is refused, naming the keys that
    may change (logging, progress, threads, and what the trainer adds: steps, evaluation...)."""
    overwrite: bool = False
    """`--overwrite`: start afresh in an `out` that holds something, after moving its contents
    aside to `<out>.old-<time>` (nothing is deleted)."""
    seed: int = 0
    """Seed of the data order and of sampling."""
    device: str = "auto"
    """`auto` (cuda if available), `cpu`, `cuda` or `cuda:N`."""
    dtype: Dtype = "auto"
    """What training computes in: `auto` (bf16 on GPUs that support it, fp32 on CPU), `float32`
    or `bfloat16`. Mixed precision: the weights and optimizer state stay fp32 and the forward
    and backward run under autocast (`r1lab.run.model`); float16 is refused (no loss scaling)."""
    threads: int = 2
    """torch CPU threads (0 leaves torch's default)."""
    tensorboard: bool = False
    """Also log to TensorBoard (needs the `tb` extra)."""
    wandb: bool = False
    """Also log to Weights & Biases (needs the `wandb` extra)."""
    progress: bool = True
    """Live progress display (a line per step when the output is not a terminal)."""
    fsdp: bool = False
    """Under torchrun: shard parameters, gradients and optimizer state over the processes
    (FSDP2) instead of replicating them; gathered for each step (docs/distributed.md)."""

    RESUMABLE: ClassVar[frozenset[str]] = frozenset(
        {"threads", "tensorboard", "wandb", "progress", "fsdp"}
    )
    """What `--resume` may change; a trainer adds its own keys to it."""

    def validate(self) -> None:
        ensure(bool(self.out.strip()), "out", "a directory", self.out)
        ensure(bool(DEVICE_RE.match(self.device)), "device", DEVICES, self.device)
        ensure(self.threads >= 0, "threads", ">= 0 (0 = torch's default)", self.threads)


@dataclass
class FitConfig(RunConfig):
    """Keys of the trainers that learn from a fixed dataset with AdamW and a warm-up + cosine
    schedule (`r1lab sft`, `r1lab rm`); each sets its own defaults where they differ."""

    epochs: int = 1
    """Passes over the training data (each in a fresh seeded order)."""
    steps: int = 0
    """Optimizer steps; 0 = epochs x ceil(rows / batch_size)."""
    lr: float = 2e-4
    """Peak AdamW learning rate."""
    warmup_steps: int = 10
    """Linear warm-up from lr / warmup_steps to lr, in optimizer steps."""
    min_lr_ratio: float = 0.1
    """Cosine decay from lr after warm-up to lr x this at the last step."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping (global norm); the pre-clip norm is logged as policy/grad_norm."""
    max_nan_steps: int = 3
    """Stop after this many consecutive steps with a non-finite loss (each is skipped)."""
    eval_every: int = 50
    """Held-out evaluation every this many steps (and before the first and after the last);
    0 = never."""
    checkpoint_every: int = 100
    """Write a checkpoint every this many steps (and at the end)."""
    keep_checkpoints: int = 2
    """Keep the last this-many checkpoints (0 keeps all)."""

    RESUMABLE: ClassVar[frozenset[str]] = RunConfig.RESUMABLE | {
        "eval_every",
        "checkpoint_every",
        "keep_checkpoints",
    }
    """What `--resume` may change: none of it alters a step already computed or to come."""

    def validate(self) -> None:
        ensure(self.epochs >= 1, "epochs", ">= 1", self.epochs)
        ensure(self.steps >= 0, "steps", ">= 0 (0 = from epochs)", self.steps)
        ensure(math.isfinite(self.lr) and self.lr > 0, "lr", "> 0", self.lr)
        ensure(self.warmup_steps >= 0, "warmup_steps", ">= 0", self.warmup_steps)
        ok = math.isfinite(self.min_lr_ratio) and 0 <= self.min_lr_ratio <= 1
        ensure(ok, "min_lr_ratio", "in [0, 1]", self.min_lr_ratio)
        ok = math.isfinite(self.weight_decay) and self.weight_decay >= 0
        ensure(ok, "weight_decay", ">= 0", self.weight_decay)
        ok = math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0
        ensure(ok, "max_grad_norm", "> 0", self.max_grad_norm)
        ensure(self.max_nan_steps >= 1, "max_nan_steps", ">= 1", self.max_nan_steps)
        ensure(self.eval_every >= 0, "eval_every", ">= 0 (0 = never)", self.eval_every)
        ensure(self.checkpoint_every >= 1, "checkpoint_every", ">= 1", self.checkpoint_every)
        ok = self.keep_checkpoints >= 0
        ensure(ok, "keep_checkpoints", ">= 0 (0 = all)", self.keep_checkpoints)
        super().validate()
