"""Data-parallel training with torch.distributed, the same for every trainer.

    torchrun --nproc_per_node 2 -m r1lab zero ...        # 2 processes on this machine
    r1lab zero ...                                        # 1 process: nothing here is used

`setup` joins the process group that `torchrun` describes in the environment (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT): gloo on the CPU, NCCL on GPUs, each process on
`cuda:LOCAL_RANK`. Without torchrun (WORLD_SIZE unset or 1) nothing is initialised and every
helper below returns its input, so one process runs exactly as it always did.

How a trainer uses it (docs/distributed.md):

- each rank takes its own deterministic share of the data (whole GRPO groups: `PromptStream`;
  every world_size-th row for SFT), samples, scores and computes advantages for it alone;
- whatever normalises the loss over the whole batch (the token and sequence counts) is summed over
  ranks first (`all_sum`), so each rank's loss is its exact share of the global loss;
- after the last micro-batch, `all_reduce_grads` sums the gradients over ranks in one coalesced
  all-reduce per dtype: every rank then holds the gradient of the global loss and applies the
  same update, as one process with the whole batch would (the trainers call it through
  `r1lab.run.fsdp.accumulate`, which reduce-scatters instead when the model is sharded);
- rank 0 writes metrics, samples and checkpoints (`is_main`); every rank reads a checkpoint back
  on resume (the run directory must be on a file system all ranks see).

Why the gradient is all-reduced after accumulation rather than by the DistributedDataParallel
wrapper: a GRPO step backpropagates many micro-batches through one shared prompt pass
(`r1lab.rollout.batch.PromptCache`) and then the prompt pass itself, so parameters get their
gradient across several backward calls; DDP's reducer syncs inside one backward (or needs
`no_sync` around all but a last backward that touches every parameter). One all-reduce per
optimizer step is what DDP with `no_sync` does at the end, it is exact, and its time is measured
apart (`time/comm`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

TIMEOUT_MIN = float(os.environ.get("R1LAB_DIST_TIMEOUT_MIN", "60"))
"""How long a collective waits for a rank before failing (evaluation and checkpoints run on
rank 0 while the others wait at a barrier, so this is generous)."""


def env_world_size() -> int:
    """The world size torchrun asked for (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def setup(device_type: str = "cpu") -> tuple[int, int]:
    """Join the process group torchrun described, once; returns (rank, world size).

    gloo on the CPU, NCCL on CUDA (this process then uses `cuda:LOCAL_RANK`). A no-op returning
    (0, 1) without torchrun."""
    import torch
    import torch.distributed as dist

    if env_world_size() <= 1 or not dist.is_available():
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend, timeout=timedelta(minutes=TIMEOUT_MIN))
    return dist.get_rank(), dist.get_world_size()


def teardown() -> None:
    """Leave the process group (at the end of a command; a no-op when none was joined)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) unless torch.distributed is initialised."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Whether this process writes the run's files (rank 0, or the only process)."""
    return rank_world()[0] == 0


def barrier() -> None:
    import torch.distributed as dist

    if rank_world()[1] > 1:
        dist.barrier()


def all_sum(values: Sequence[float]) -> list[float]:
    """Each value summed over ranks, in float64 (one all-reduce for all of them)."""
    import torch
    import torch.distributed as dist

    if rank_world()[1] == 1:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return t.tolist()


def all_sum_dict(values: Mapping[str, float]) -> dict[str, float]:
    """`all_sum` of a dict's values. Every rank must pass the same keys: a key only some ranks
    have is summed as 0 on the others (keys are gathered first when they differ)."""
    keys = sorted(values)
    if rank_world()[1] > 1:
        keys = sorted({k for ks in all_gather_object(keys) for k in ks})
    return dict(zip(keys, all_sum([values.get(k, 0.0) for k in keys]), strict=True))


def all_max(value: float) -> float:
    import torch
    import torch.distributed as dist

    if rank_world()[1] == 1:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (pickled; for small per-step records, not tensors)."""
    import torch.distributed as dist

    rank, world = rank_world()
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def all_reduce_grads(params: Iterable[Any]) -> float:
    """Sum the gradients of `params` over ranks, in place; returns the seconds it took.

    A parameter with no gradient on this rank (a rank whose micro-batches never reached it, or
    that had no groups to learn from this step) takes part as zeros, so every rank sends the same
    buffers. Gradients are flattened per dtype and device into one buffer each (one all-reduce
    per buffer, as DDP's buckets), then copied back."""
    import torch
    import torch.distributed as dist

    if rank_world()[1] == 1:
        return 0.0
    t0 = time.perf_counter()
    buckets: dict[tuple[Any, Any], list[Any]] = {}
    for p in params:
        if not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        buckets.setdefault((p.grad.dtype, p.grad.device), []).append(p.grad)
    for grads in buckets.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n
    if buckets and next(iter(buckets))[1].type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def open_run(cfg: Any, run_dir: Any, start: int) -> Any:
    """After a trainer's start-up succeeded: on rank 0, claim the run directory (a fresh run),
    save the config and drop the metrics of steps from `start` on (a resumed run recomputes
    them); return the metrics logger, which writes nothing on the other ranks."""
    from pathlib import Path

    from r1lab.run.checkpoints import truncate_metrics
    from r1lab.run.rundir import claim, save_run_config
    from r1lab.tracking import MetricsLogger

    if not is_main():
        return NullLogger()
    if not cfg.resume:
        claim(run_dir, cfg.overwrite)  # start-up succeeded: only now is anything written
    save_run_config(cfg, run_dir)
    truncate_metrics(Path(run_dir) / "metrics.jsonl", start)
    return MetricsLogger(run_dir, cfg.tensorboard, cfg.wandb)


def resumed_note(state: Mapping[str, Any]) -> str:
    """What "resumed from ..." adds when a checkpoint was saved by another number of processes
    (batch sizes are global and data positions are global, so the run goes on as it would)."""
    saved, world = int(state.get("world_size", 1)), rank_world()[1]
    return "" if saved == world else f"; saved by {saved} process(es), continues on {world}"


class NullLogger:
    """The metrics logger of a rank that writes nothing (every rank but 0)."""

    def log(self, step: int, row: Mapping[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


def shard(n: int) -> slice:
    """This rank's rows of `n`: every world_size-th, from its rank (a deterministic shard)."""
    rank, world = rank_world()
    return slice(rank, n, world)


def _comm_device() -> Any:
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
