"""Run under torchrun by tests/run/test_distributed.py (not collected by pytest).

    python -m torch.distributed.run --nproc_per_node 2 tests/run/dist_worker.py step MODEL OUT
    python -m torch.distributed.run --nproc_per_node 2 tests/run/dist_worker.py sft MODEL OUT DATA
    python -m torch.distributed.run --nproc_per_node 2 tests/run/dist_worker.py fail MODEL OUT

`step`: one GRPO step on the global batch of `step_config`, rollouts sampled one prompt at a time
(`PerPromptSampler`), so they depend on the prompt only and not on which rank samples it; rank 0
saves how far each weight moved and the metrics to OUT. `sft`: the same for one SFT step on DATA.
`fail`: `r1lab zero` with rank 1 raising at step 1.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import torch
from torch.distributed.elastic.multiprocessing.errors import record

from r1lab.rewards import RewardPool
from r1lab.rl import trainer
from r1lab.rl.config import AlgoConfig, RolloutConfig, ZeroConfig
from r1lab.run.distributed import rank_world, setup, teardown
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
        rollout=RolloutConfig(group_size=4, max_new_tokens=24),
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


def one_step(model: str, out: str) -> None:
    """One step; SGD with lr 1, so the weights move by exactly minus the (clipped) gradient."""
    cfg = step_config(model, out)
    with RewardPool(workers=0) as pool:
        t = trainer.build(cfg, pool)
        t.sampler = PerPromptSampler(t.sampler)
        t.optimizer = torch.optim.SGD(t.policy.parameters(), lr=1.0)
        t.scheduler = torch.optim.lr_scheduler.LambdaLR(t.optimizer, lambda s: 1.0)
        before = {k: v.clone() for k, v in t.policy.state_dict().items()}
        metrics = trainer.train_step(t, 0)
        if rank_world()[0] == 0:
            delta = {k: v - before[k] for k, v in t.policy.state_dict().items()}
            torch.save({"delta": delta, "metrics": metrics}, out)


def one_sft_step(model: str, out: str, data: str) -> None:
    """One SFT step of 7 rows (ranks get 4 and 3), SGD with lr 1, as `one_step`."""
    from r1lab.sft import trainer as sft
    from r1lab.sft.config import SFTConfig

    cfg = SFTConfig(
        model=model, data=data, eval_size=0, batch_size=7, micro_batch_tokens=64, warmup_steps=0
    )
    t = sft.build(cfg)
    t.optimizer = torch.optim.SGD(t.model.parameters(), lr=1.0)
    t.scheduler = torch.optim.lr_scheduler.LambdaLR(t.optimizer, lambda s: 1.0)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    metrics = sft.train_step(t, 0)
    if rank_world()[0] == 0:
        delta = {k: v - before[k] for k, v in t.model.state_dict().items()}
        torch.save({"delta": delta, "metrics": metrics}, out)


@record
def main() -> None:
    mode, model, out = sys.argv[1:4]
    torch.set_num_threads(1)
    if mode in ("step", "sft"):
        setup("cpu")
        one_step(model, out) if mode == "step" else one_sft_step(model, out, sys.argv[4])
        teardown()
    elif mode == "fail":
        real = trainer.train_step

        def failing(t, step):
            if rank_world()[0] == 1 and step == 1:
                raise RuntimeError("rank 1 fails on purpose at step 1")
            return real(t, step)

        trainer.train_step = failing
        cfg = step_config(model, str(Path(out)))
        cfg.steps, cfg.eval_every, cfg.checkpoint_every = 4, 0, 1
        trainer.run(cfg)


if __name__ == "__main__":
    main()
