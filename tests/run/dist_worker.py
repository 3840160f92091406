"""Run under torchrun by tests/run/test_distributed.py (not collected by pytest).

    python -m torch.distributed.run --nproc_per_node 2 tests/run/dist_worker.py step MODEL OUT
    python -m torch.distributed.run --nproc_per_node 2 tests/run/dist_worker.py sft MODEL OUT DATA
    python -m torch.distributed.run --nproc_per_node 2 tests/run/dist_worker.py fail MODEL OUT
    python -m torch.distributed.run --nproc_per_node 2 tests/run/dist_worker.py rm MODEL OUT DATA
    (`step-fsdp`, `sft-fsdp`, `rm-fsdp`: the same steps with the model sharded, fsdp=true)
    python -m torch.distributed.run --nproc_per_node 2 tests/run/dist_worker.py empty MODEL OUT
    python -m torch.distributed.run --nproc_per_node 2 tests/run/dist_worker.py general MODEL OUT RM
    python -m torch.distributed.run --nproc_per_node 2 tests/run/dist_worker.py refuse MODEL OUT
    python -m torch.distributed.run --nproc_per_node 2 tests/run/dist_worker.py batch JOBS.json

`batch`: the modes below one after another in one launch, JOBS a list of [mode, model, out,
*args] (a launch spends ~13 s of the 2 cores starting torchrun and importing r1lab twice).

`step`: one GRPO step on the global batch of `step_config`, rollouts sampled one prompt at a time
(`PerPromptSampler`), so they depend on the prompt only and not on which rank samples it; rank 0
saves how far each weight moved, the metrics and the optimizer state to OUT. `sft`: the same for
one SFT step on DATA; `rm`: for one reward-model step on DATA (preference pairs).
`fail`: `r1lab zero` with rank 1 raising at step 1 (it ends the job: last in a batch).
`refuse`: `r1lab zero` with a global batch that does not split into whole groups.
`empty` (and `empty-fsdp`): a step with dynamic sampling in which every group of rank 1 scores
the same, so rank 1 keeps none and has no batch to learn from, while rank 0 has some. `general`: one step of RL for all scenarios
(half the prompts general requests, scored by the reward model RM on the rank that owns them).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import zlib
from pathlib import Path

import torch
from torch.distributed.elastic.multiprocessing.errors import record

from r1lab.config import ConfigError
from r1lab.rewards import RewardPool
from r1lab.rl import trainer
from r1lab.rl.config import AlgoConfig, RolloutConfig, ZeroConfig
from r1lab.run.distributed import all_gather_object, rank_world, setup, teardown
from r1lab.run.fsdp import full_state_dict, load_optimizer_state, optimizer_state
from r1lab.tasks import TaskConfig


class PerPromptSampler:
    """The trainer's sampler, one prompt at a time, seeded by the prompt's tokens."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def generate(self, prompt_ids, params, seed=None):
        out = []
        for i, ids in enumerate(prompt_ids):
            (group,) = self.inner.generate([ids], params, seed=zlib.crc32(str(ids).encode()))
            for c in group:
                c.prompt_index = i
            out.append(group)
        return out


def step_config(model: str, out: str) -> ZeroConfig:
    return ZeroConfig(
        model=model,
        task=TaskConfig(name="arithmetic"),
        # 80 tokens: room for a worked addition (61) or multiplication (75), the completions
        # of the base that score, so rewards differ within groups and the step moves.
        rollout=RolloutConfig(group_size=4, max_new_tokens=80),
        # token-mean and the batch scale: both need sums over every rank's rows
        algo=AlgoConfig(
            prompts_per_step=4, micro_batch=3, beta=0.04, scale="batch", loss_agg="token-mean"
        ),
        train_pool=64,
        workers=0,
        threads=1,
        progress=False,
        out=out,
    )


def weights(model) -> dict[str, torch.Tensor] | None:
    """Full copies of the weights on rank 0 (gathered when sharded: every rank calls this)."""
    full = full_state_dict(model)
    if full is None and rank_world()[0] == 0:
        full = {k: v.clone() for k, v in model.state_dict().items()}
    return full


def sgd(params):
    # lr 1: the weights move by exactly minus the (clipped) gradient; after one step the
    # momentum buffer is that gradient, so the saved optimizer state is checked too.
    return torch.optim.SGD(params, lr=1.0, momentum=0.9)


def finish_step(model, optimizer, before, metrics, out: str) -> None:
    after = weights(model)
    state = optimizer_state(model, optimizer)
    fresh = sgd(model.parameters())  # the state loads back into a new optimizer (resume)
    load_optimizer_state(model, fresh, state)
    again = optimizer_state(model, fresh)
    # How many parameter values this rank holds: all of them, or its shard under fsdp.
    held = sum(getattr(p, "_local_tensor", p).numel() for p in model.parameters())
    if rank_world()[0] == 0:
        delta = {k: v - before[k] for k, v in after.items()}
        saved = {"delta": delta, "metrics": metrics, "opt": state, "again": again, "held": held}
        torch.save(saved, out)


class SetPool:
    """A reward pool whose totals are set: all 0 (every group scores alike, so dynamic sampling
    keeps none) or alternating 0, 1 (every group is kept)."""

    def __init__(self, inner, flat: bool) -> None:
        self.inner, self.flat = inner, flat

    def score(self, reward, texts, examples):
        results = self.inner.score(reward, texts, examples)
        return [
            dataclasses.replace(r, total=0.0 if self.flat else float(i % 2))
            for i, r in enumerate(results)
        ]


def one_step(model: str, out: str, fsdp: bool = False, empty_rank: bool = False) -> None:
    """One step with SGD (`sgd`) on the global batch of `step_config`."""
    cfg = step_config(model, out)
    cfg.fsdp = fsdp
    if empty_rank:
        cfg.algo.dynamic_sampling, cfg.algo.max_resample_rounds = True, 1
    with RewardPool(workers=0) as pool:
        t = trainer.build(cfg, pool)
        t.sampler = PerPromptSampler(t.sampler)
        if empty_rank:
            t.pool = SetPool(t.pool, flat=rank_world()[0] == 1)
        t.optimizer = sgd(t.policy.parameters())
        t.scheduler = torch.optim.lr_scheduler.LambdaLR(t.optimizer, lambda s: 1.0)
        before = weights(t.policy)
        metrics = trainer.train_step(t, 0)
        # Replicated ranks must hold the same weights after the step, the empty one included.
        sums = all_gather_object(float(sum(p.double().sum() for p in t.policy.parameters())))
        metrics["test/replicas_differ"] = float(max(sums) - min(sums)) if not fsdp else 0.0
        finish_step(t.policy, t.optimizer, before, metrics, out)


def one_general_step(model: str, out: str, rm: str) -> None:
    """One step of RL for all scenarios (`step_config` with half the prompts general requests,
    rewarded by the reward model `rm`), with SGD as `one_step`."""
    from r1lab.rl.config import GeneralConfig

    general = GeneralConfig(share=0.5, reward_models={"helpful": rm}, parts={"helpful": "final"})
    cfg = dataclasses.replace(step_config(model, out), general=general)
    with RewardPool(workers=0) as pool:
        t = trainer.build(cfg, pool)
        t.sampler = PerPromptSampler(t.sampler)
        t.optimizer = sgd(t.policy.parameters())
        t.scheduler = torch.optim.lr_scheduler.LambdaLR(t.optimizer, lambda s: 1.0)
        before = weights(t.policy)
        metrics = trainer.train_step(t, 0)
        finish_step(t.policy, t.optimizer, before, metrics, out)


def one_sft_step(model: str, out: str, data: str, fsdp: bool = False) -> None:
    """One SFT step of 7 rows (ranks get 4 and 3), with SGD as `one_step`."""
    from r1lab.sft import trainer as sft
    from r1lab.sft.config import SFTConfig

    cfg = SFTConfig(
        model=model,
        data=data,
        eval_size=0,
        batch_size=7,
        micro_batch_tokens=64,
        warmup_steps=0,
        fsdp=fsdp,
    )
    t = sft.build(cfg)
    t.optimizer = sgd(t.model.parameters())
    t.scheduler = torch.optim.lr_scheduler.LambdaLR(t.optimizer, lambda s: 1.0)
    before = weights(t.model)
    metrics = sft.train_step(t, 0)
    finish_step(t.model, t.optimizer, before, metrics, out)


def one_rm_step(model: str, out: str, data: str, fsdp: bool = False) -> None:
    """One reward-model step of 7 pairs (ranks get 4 and 3), with SGD as `one_step`; the new
    score head is drawn from seed 0 on every rank and in one process alike."""
    from r1lab.rm import trainer as rm
    from r1lab.rm.config import RMConfig

    cfg = RMConfig(
        model=model, data=data, eval_size=0, batch_size=7, micro_batch_tokens=96, fsdp=fsdp
    )
    torch.manual_seed(0)
    t = rm.build(cfg)
    t.optimizer = sgd(t.model.parameters())
    t.scheduler = torch.optim.lr_scheduler.LambdaLR(t.optimizer, lambda s: 1.0)
    before = weights(t.model)
    metrics = rm.train_step(t, 0)
    finish_step(t.model, t.optimizer, before, metrics, out)


def run_step(mode: str, model: str, out: str, *args: str) -> None:
    """One mode, in a process group already set up."""
    fsdp = mode.endswith("-fsdp")
    kind = mode.removesuffix("-fsdp")
    if kind == "general":
        one_general_step(model, out, args[0])
    elif kind in ("step", "empty"):
        one_step(model, out, fsdp, empty_rank=kind == "empty")
    elif kind == "rm":
        one_rm_step(model, out, args[0], fsdp)
    elif kind == "sft":
        one_sft_step(model, out, args[0], fsdp)
    elif kind == "refuse":
        refused(model, out)
    elif kind == "fail":
        failing_run(model, out)
    else:
        raise ValueError(f"unknown mode {mode!r}")


def refused(model: str, out: str) -> None:
    """`r1lab zero` with a global batch of 3 groups on 2 processes: each rank writes the error
    it raised (or that it raised none) to OUT.rankR; OUT itself must never be created."""
    cfg = step_config(model, str(Path(out) / "run"))
    cfg.algo.prompts_per_step = 3
    cfg.steps, cfg.eval_every = 1, 0  # short, if it is not refused
    try:
        trainer.run(cfg)
        message = "no error"
    except ConfigError as e:
        message = str(e)
    Path(f"{out}.rank{rank_world()[0]}").write_text(message)


def failing_run(model: str, out: str) -> None:
    """`r1lab zero` with rank 1 raising at step 1 (the job ends: last in a batch). Rank 0 writes
    when it started to OUT.started."""
    real = trainer.train_step

    def failing(t, step):
        if rank_world()[0] == 1 and step == 1:
            raise RuntimeError("rank 1 fails on purpose at step 1")
        return real(t, step)

    trainer.train_step = failing
    cfg = step_config(model, out)
    cfg.steps, cfg.eval_every, cfg.checkpoint_every = 4, 0, 1
    if rank_world()[0] == 0:
        Path(f"{out}.started").write_text(str(time.time()))
    trainer.run(cfg)


@record
def main() -> None:
    mode = sys.argv[1]
    torch.set_num_threads(1)
    jobs = json.loads(Path(sys.argv[2]).read_text()) if mode == "batch" else [sys.argv[1:]]
    setup("cpu")
    for job in jobs:
        run_step(*job)
    teardown()


if __name__ == "__main__":
    main()
