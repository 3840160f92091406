"""The step loop of the trainers that learn from a fixed dataset (`r1lab sft`, `r1lab rm`):
open or resume a run, restore its state, then step, evaluate and checkpoint, the same way.

    opened = open_or_resume(cfg)                # before anything loads: config, run directory
    t = build(opened.cfg, opened.checkpoint)    # the trainer's own: data, model, optimizer
    start = restore(t, opened, "the training data differ ...")
    train_loop(t, opened, start, "sft", KEYS, train_step=..., evaluate=..., meta={...})

A trainer object `t` has `cfg` (a `RunConfig` with `eval_every`, `checkpoint_every`,
`keep_checkpoints`, `max_nan_steps`), `model` (fp32 weights), `device`, `dtype` (what steps and
evaluations compute in, under `r1lab.run.model.autocast`), `tokenizer`, `optimizer`, `scheduler`,
`total_steps`, `data_hash` and `nan_streak`. Step `total_steps` is only evaluated, so a run's
metrics end with the held-out numbers of its final weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1lab.config import ConfigError, validate
from r1lab.run.checkpoints import (
    checkpoints,
    interruptible,
    load_trainer_state,
    save_training_checkpoint,
    stop_on_nan_streak,
)
from r1lab.run.distributed import barrier, is_main, open_run, resumed_note, setup
from r1lab.run.rundir import check_free, resume_config


@dataclass
class Opened:
    """A run about to start or continue."""

    cfg: Any
    """The run's config (a resumed run's saved one, with what `--resume` may change)."""
    run_dir: Path
    checkpoint: Path | None
    """The checkpoint to continue from; None starts at step 0."""
    world: int


def open_or_resume(cfg: Any) -> Opened:
    """Set up the process group, validate the config, claim a fresh run directory (every rank
    checks it first) or find the resumed run's last checkpoint; then loggers, threads, seed."""
    import torch

    from r1lab.run.model import resolve_device
    from r1lab.tracking import check_loggers

    rank, world = setup(resolve_device(cfg.device).type)
    checkpoint = None
    if cfg.resume:
        # The saved config fills in what a partial one (SFTConfig(resume=RUN)) leaves out.
        cfg = validate(resume_config(cfg))
        run_dir = Path(cfg.resume)
        found = checkpoints(run_dir)
        checkpoint = found[-1] if found else None
        if checkpoint is None and rank == 0:
            print(f"resume: {run_dir} has no checkpoint yet; starting from step 0")
    else:
        validate(cfg)
        run_dir = check_free(cfg.out, cfg.overwrite)
        barrier()  # every rank has checked before rank 0 claims the directory
    check_loggers(cfg.tensorboard, cfg.wandb)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    return Opened(cfg, run_dir, checkpoint, world)


def restore(t: Any, opened: Opened, changed_data: str) -> int:
    """Load the checkpoint's optimizer, scheduler and RNG state into `t`; return the step to
    continue from (0 without a checkpoint). A run whose training data no longer hash to what it
    started with is refused with `changed_data`."""
    from r1lab.run.fsdp import load_optimizer_state

    if opened.checkpoint is None:
        return 0
    state = load_trainer_state(opened.checkpoint)
    if state["data"] != t.data_hash:
        raise ConfigError(f"--resume {opened.run_dir}: {changed_data}; start a new run")
    load_optimizer_state(t.model, t.optimizer, state["optimizer"])
    t.scheduler.load_state_dict(state["scheduler"])
    if is_main():
        print(f"resumed from {opened.checkpoint} (step {state['step']}){resumed_note(state)}")
    return int(state["step"])


def train_loop(
    t: Any,
    opened: Opened,
    start: int,
    command: str,
    keys: tuple[tuple[str, str], ...],
    train_step: Callable[[int], dict[str, float]],
    evaluate: Callable[[], dict[str, float]] | None,
    meta: Mapping[str, Any],
) -> None:
    """Steps `start` .. total_steps - 1, held-out evaluation every `eval_every` steps and after
    the last, a checkpoint every `checkpoint_every` steps and at the end (`meta` goes into its
    r1lab.json), metrics and progress from rank 0; Ctrl-C prints the command that resumes."""
    from r1lab.run.model import autocast
    from r1lab.run.progress import Display

    cfg, run_dir = t.cfg, opened.run_dir
    logger = open_run(cfg, run_dir, start)
    display = Display(command, t.total_steps, start, cfg.progress and is_main(), keys)
    with interruptible(run_dir, command, display, logger):
        for step in range(start, t.total_steps + 1):
            row: dict[str, float] = {}
            last = step == t.total_steps
            if evaluate is not None and cfg.eval_every and (step % cfg.eval_every == 0 or last):
                with autocast(t.dtype, t.device):
                    row.update(evaluate())
            if last:
                if row:
                    logger.log(step, row)
                break
            with autocast(t.dtype, t.device):  # fp32 weights, bf16 compute (dtype=bfloat16)
                row.update(train_step(step))
            stop_on_nan_streak(t.nan_streak, cfg.max_nan_steps, run_dir)
            logger.log(step, row)
            display.update(step, row)
            done = step + 1
            if done % cfg.checkpoint_every == 0 or done == t.total_steps:
                save_step(t, run_dir, done, opened.world, meta)  # every rank: a collective
    barrier()  # the last checkpoint is written before any rank reports the run done


def save_step(t: Any, run_dir: Path, step: int, world: int, meta: Mapping[str, Any]) -> None:
    """The checkpoint of step `step`, called on every rank (a sharded model's state is
    gathered); rank 0 writes. The batch order is a function of the step, so a run resumes on
    any world size."""
    state = {"scheduler": t.scheduler.state_dict(), "data": t.data_hash, "world_size": world}
    save_training_checkpoint(
        run_dir, step, t.model, t.tokenizer, t.optimizer, state, t.cfg.keep_checkpoints, meta
    )


def optimizer_step(t: Any, loss: float) -> dict[str, float]:
    """Clip the gradients to `max_grad_norm` and step the optimizer and the schedule; a
    non-finite loss or gradient skips the step (nothing applied; `t.nan_streak` counts them).
    Returns the learning rate the step used, the pre-clip gradient norm, and
    train/nan_skipped when skipped."""
    import torch

    from r1lab.run.fsdp import clip_grad_norm

    lr = t.optimizer.param_groups[0]["lr"]
    grad_norm = clip_grad_norm(t.model.parameters(), t.cfg.max_grad_norm)
    out = {"policy/lr": lr, "policy/grad_norm": float(grad_norm)}
    if not math.isfinite(loss) or not torch.isfinite(grad_norm):
        t.optimizer.zero_grad(set_to_none=True)
        t.nan_streak += 1
        out["train/nan_skipped"] = 1.0
    else:
        t.optimizer.step()
        t.optimizer.zero_grad(set_to_none=True)
        t.scheduler.step()
        t.nan_streak = 0
    return out
