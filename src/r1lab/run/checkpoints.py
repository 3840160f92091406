"""A run's checkpoints, trainer state and resume, the same for every trainer.

A checkpoint is `checkpoints/step-NNNNNN`: a Hugging Face model directory (loads as it is with
`AutoModelForCausalLM.from_pretrained`, tokenizer beside it), `r1lab.json` (the step, the
command and what a later stage must know to use the model the same way, such as its prompt
template) and `trainer_state.pt` (optimizer, scheduler, data position, RNG). It is written
atomically (`r1lab.checkpoint.atomic_dir`) and the last `keep` are kept.

torch is imported by the functions that need it, so importing `r1lab.run` stays light.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from r1lab.run.rundir import resume_command

CHECKPOINT_RE = re.compile(r"^step-(\d{6})$")
META_FILE = "r1lab.json"


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
    meta: Mapping[str, Any] | None = None,
    state_dict: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoints/step-NNNNNN atomically, then drop all but the last `keep` (0 keeps
    all). `meta` goes into r1lab.json beside the step; `state_dict` (a sharded model's,
    gathered by `r1lab.run.fsdp.full_state_dict`) replaces the model's own."""
    import torch

    from r1lab.checkpoint import save_hf

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
        extra={**(meta or {}), "step": step},
        extra_files={"trainer_state.pt": lambda p: torch.save(state, p)},
        state_dict=state_dict,
    )
    for old in checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return path


def save_training_checkpoint(
    run_dir: str | Path,
    step: int,
    model: Any,
    tokenizer: Any,
    optimizer: Any,
    trainer_state: dict[str, Any],
    keep: int,
    meta: Mapping[str, Any] | None = None,
) -> None:
    """A trainer's checkpoint (`save_checkpoint` with the optimizer's state beside
    `trainer_state`), called on every rank: a sharded model's weights and optimizer state are
    gathered first (collectives, `r1lab.run.fsdp`), then rank 0 writes. What is written is the
    same whether the run was sharded or not."""
    from r1lab.run.distributed import is_main
    from r1lab.run.fsdp import full_state_dict, optimizer_state

    weights = full_state_dict(model)
    state = {"optimizer": optimizer_state(model, optimizer), **trainer_state}
    if is_main():
        save_checkpoint(run_dir, step, model, tokenizer, state, keep, meta, weights)


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    """A checkpoint's trainer state; restores the torch and Python RNGs it saved."""
    import torch

    state = torch.load(checkpoint / "trainer_state.pt", weights_only=False)
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    return state


def checkpoint_meta(model_dir: str | Path) -> dict[str, Any]:
    """What r1lab recorded in a model directory's r1lab.json ({} when there is none)."""
    path = Path(model_dir) / META_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def truncate_metrics(path: Path, before_step: int) -> None:
    """Drop metric lines at or after `before_step`: a resumed run recomputes those steps."""
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


def stop_on_nan_streak(streak: int, limit: int, run_dir: Path) -> None:
    """Stop a run whose loss has been non-finite `limit` steps in a row (its steps were skipped),
    naming the checkpoint that is still good."""
    if streak >= limit:
        raise RuntimeError(
            f"{streak} steps in a row had a non-finite loss; stopping. The last "
            f"good checkpoint in {run_dir / 'checkpoints'} is intact."
        )


@contextmanager
def interruptible(run_dir: Path, command: str, display: Any, logger: Any) -> Iterator[None]:
    """A trainer's step loop runs inside this: on Ctrl-C the display is closed and the command
    that resumes the run is printed before the interrupt goes on; either way the display and the
    metrics logger are closed."""
    try:
        yield
    except KeyboardInterrupt:
        display.close()
        print_interrupted(run_dir, command)
        raise
    finally:
        display.close()
        logger.close()


def print_interrupted(run_dir: Path, command: str) -> None:
    """After Ctrl-C: where the run continues from, and the exact command that continues it."""
    found = checkpoints(run_dir)
    since = f"its last checkpoint (step {int(found[-1].name[5:])})" if found else "step 0"
    print(
        f"\ninterrupted: the run in {run_dir} continues from {since} with\n"
        f"  {resume_command(command, run_dir)}",
        file=sys.stderr,
    )
