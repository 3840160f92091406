"""Sharded data parallel (`fsdp=true`): parameters, gradients and optimizer state split over the
torchrun processes with PyTorch's FSDP2 (`torch.distributed.fsdp.fully_shard`).

    torchrun --nproc_per_node 8 -m r1lab zero --config configs/zero-arithmetic.yaml fsdp=true

Every trainer uses the same four calls, which do the plain data-parallel thing (or nothing, in
one process) when the model is not sharded:

- `shard_model(model)` after loading: each transformer block (the model's `_no_split_modules`)
  and then the whole model become FSDP2 units. Between steps each rank holds 1/N of every
  parameter, of its gradient and (the optimizer is built on the sharded parameters) of the
  optimizer state.
- `gathered(model)` around sampling and evaluation: the full parameters are all-gathered once,
  used for every decode step, and freed at the end. Generation runs a forward per token, and an
  all-gather per layer per token would cost more than the generation itself.
- `accumulate(model)` around one optimizer step's forward and backward calls: the parameters are
  gathered for the whole step and gradients accumulate locally (FSDP2's
  `set_requires_gradient_sync(False)`), so a rank may run any number of micro-batches and the
  GRPO update keeps its shared prompt pass (`PromptCache`), whose backward comes after the
  micro-batches'. At the end, one forward and backward of a single token with gradient sync on
  makes FSDP2 reduce-scatter every accumulated gradient at once; each rank is left with its
  shard of the sum over ranks. Without sharding it is `all_reduce_grads`.
- `full_state_dict` and `optimizer_state` before a checkpoint (collectives: every rank calls
  them, rank 0 writes), `load_optimizer_state` on resume. A checkpoint holds the same full,
  index-keyed state whether the run was sharded or not, so a run resumes sharded, unsharded or
  on another number of processes.

What this saves: the optimizer state (AdamW: twice the parameters) and the gradients between
steps are 1/N per rank, and so are the parameters outside a step. What it does not: during a
step each rank holds the full parameters (generation needs them all, as in veRL and OpenRLHF,
which hand them to the inference engine) and, in the update, a full gradient. Resharding layer
by layer during the update (ZeRO-3 proper) would need every rank to run the same number of
forward and backward calls in the same order, and the shared prompt pass interleaves them; it is
not built.

gloo (the CPU) has no pre-multiplied sum, so FSDP2's reduce-scatter averages over ranks and the
shards are multiplied back by N: the trainers' losses are already normalised by global counts,
so the gradient wanted is the sum.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from r1lab.config import ConfigError
from r1lab.run.distributed import all_reduce_grads, rank_world


def shard_model(model: Any) -> Any:
    """Make `model` FSDP2-sharded over the process group (in place; returns it). One process:
    nothing to shard, the model is returned as it is (with a note)."""
    from torch.distributed.fsdp import fully_shard

    names = set(getattr(model, "_no_split_modules", None) or ())
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    if not blocks:
        raise ConfigError(
            f"fsdp=true: {type(model).__name__} names no transformer block class "
            "(`_no_split_modules`) to shard by; run without fsdp"
        )
    if rank_world()[1] == 1:
        print("fsdp=true with one process: nothing to shard, running unsharded", file=sys.stderr)
        return model
    for block in blocks:
        fully_shard(block)
    fully_shard(model)
    return model


def sharded(model: Any) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _units(model: Any) -> list[Any]:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


@contextmanager
def gathered(model: Any) -> Iterator[None]:
    """The full parameters on every rank inside the block (for sampling and evaluation: no
    collective per forward call), freed at its end. Every rank must enter it (the all-gather is
    a collective). Does nothing to a model that is not sharded."""
    if model is None or not sharded(model):
        yield
        return
    units = _units(model)
    model.set_reshard_after_forward(False)
    for unit in units:
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
        model.set_reshard_after_forward(True)


@dataclass
class Comm:
    """Seconds the gradient reduction of an `accumulate` block took (filled at its end)."""

    seconds: float = 0.0


@contextmanager
def accumulate(model: Any) -> Iterator[Comm]:
    """One optimizer step's forward and backward calls, any number per rank; at the end of the
    block every rank holds (its shard of) the gradient summed over ranks. Sharded: parameters
    gathered for the block, gradients accumulated locally, one reduce-scatter at its end. Not
    sharded: one coalesced all-reduce at its end (`all_reduce_grads`; nothing in one process).
    After an exception no collective is attempted."""
    comm = Comm()
    if not sharded(model):
        yield comm
        comm.seconds = all_reduce_grads(model.parameters())
        return
    params = list(model.parameters())  # the sharded ones, which the optimizer updates
    units = _units(model)
    model.set_reshard_after_forward(False)
    model.set_reshard_after_backward(False)
    model.set_requires_gradient_sync(False)
    for unit in units:
        unit.unshard()
    ok = False
    try:
        yield comm
        ok = True
    finally:
        if ok:
            comm.seconds = _reduce_scatter(model, params)
        model.set_requires_gradient_sync(True)
        model.set_reshard_after_backward(True)
        model.set_reshard_after_forward(True)
        for unit in units:
            unit.reshard()


def _reduce_scatter(model: Any, params: list[Any]) -> float:
    # A one-token forward and backward with sync on reaches every FSDP unit, whose post-backward
    # reduce-scatters what it accumulated (plus this call's zero gradient). It runs with the
    # model in whatever train/eval mode the step left it in, and contributes exactly zero.
    import torch

    t0 = time.perf_counter()
    world = rank_world()[1]
    model.set_requires_gradient_sync(True)
    device = params[0].device
    logits = model(input_ids=torch.zeros(1, 1, dtype=torch.long, device=device)).logits
    (logits.sum() * 0.0).backward()
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p.grad.mul_(world)  # FSDP2 on gloo averages; the step wants the sum
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def clip_grad_norm(params: Any, max_norm: float) -> Any:
    """`torch.nn.utils.clip_grad_norm_`, returning a plain tensor also for sharded gradients
    (whose norm is a replicated DTensor over every rank's shards)."""
    import torch
    from torch.distributed.tensor import DTensor

    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return norm.full_tensor() if isinstance(norm, DTensor) else norm


def _full(value: Any) -> Any:
    from torch.distributed.tensor import DTensor

    return value.full_tensor().cpu() if isinstance(value, DTensor) else value


def full_state_dict(model: Any) -> dict[str, Any] | None:
    """The model's full state dict on rank 0 for `save_pretrained(state_dict=...)` (a
    collective: every rank calls it; the others get None); None when not sharded (the model
    saves its own)."""
    if not sharded(model):
        return None
    state = {k: _full(v) for k, v in model.state_dict().items()}
    return state if rank_world()[0] == 0 else None


def optimizer_state(model: Any, optimizer: Any) -> dict[str, Any]:
    """`optimizer.state_dict()` as one process holds it (index-keyed, full tensors): sharded
    states are all-gathered (a collective: every rank calls it)."""
    state = optimizer.state_dict()
    if sharded(model):
        state["state"] = {i: {k: _full(v) for k, v in s.items()} for i, s in state["state"].items()}
    return state


def load_optimizer_state(model: Any, optimizer: Any, state: dict[str, Any]) -> None:
    """Load a checkpoint's `optimizer_state` (saved sharded or not, on any number of ranks):
    for a sharded model each rank keeps its own shard of every full tensor."""
    if sharded(model):
        params = [p for group in optimizer.param_groups for p in group["params"]]
        state = {
            **state,
            "state": {
                i: {
                    k: _shard_like(v, params[i])
                    if getattr(v, "shape", None) == params[i].shape
                    else v
                    for k, v in s.items()
                }
                for i, s in state["state"].items()
            },
        }
    optimizer.load_state_dict(state)


def _shard_like(full: Any, param: Any) -> Any:
    # Every rank read the same file, so each cuts its own shard (no communication).
    from torch.distributed.tensor import distribute_tensor

    full = full.to(param.device)
    return distribute_tensor(full, param.device_mesh, param.placements, src_data_rank=None)
