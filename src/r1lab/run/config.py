"""The run layer's keys, shared by every trainer (STYLE.md 12-13): where a run goes, how it
resumes, the device it runs on and how it reports. A trainer's config inherits them and adds its
own; `--help` lists them first. Importing this module imports neither torch nor transformers."""

from __future__ import annotations

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
    """`auto` (bf16 on GPUs that support it, fp32 on CPU), `float32`, `bfloat16`, `float16`
    (GPU only)."""
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
