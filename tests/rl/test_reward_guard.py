"""The GRPO step with rewards that fail on some items: the step goes on and counts them.

A reward that raises or returns NaN on one completion scores 0 there; the step's advantages,
loss and update stay finite, and `reward/errors` counts the failed parts. Only a reward that
fails on every item stops the run. Each step scores 2 prompts x 4 completions in this process.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from r1lab.rewards import CompositeReward, RewardError, RewardPool, register_reward
from r1lab.rl import trainer
from r1lab.rl.config import AlgoConfig, RolloutConfig, ZeroConfig
from r1lab.tasks import TaskConfig

pytestmark = pytest.mark.timeout(120)

# Calls since the test began: in-process scoring goes in item order, so call k is item k.
_calls = [0]


@register_reward("_test_bad_items")
def bad_items(completion, example):
    """Item 0 of a step raises, item 1 returns NaN, the rest score 1."""
    k = _calls[0] % 8
    _calls[0] += 1
    if k == 0:
        raise RecursionError("maximum recursion depth exceeded")
    return math.nan if k == 1 else 1.0


@register_reward("_test_always_raises")
def always_raises(completion, example):
    raise KeyError("example['numbers']")


def step_with(model: Path, reward: CompositeReward) -> tuple[dict[str, float], trainer.Trainer]:
    cfg = ZeroConfig(
        model=str(model),
        task=TaskConfig(name="arithmetic"),
        rollout=RolloutConfig(group_size=4, max_new_tokens=8),
        algo=AlgoConfig(prompts_per_step=2, micro_batch=8, lr=1e-3, warmup_steps=1),
        train_pool=16,
        workers=0,
        threads=1,
        progress=False,
    )
    _calls[0] = 0
    with RewardPool(workers=0) as pool:
        t = trainer.build(cfg, pool)
        t.reward = reward
        return trainer.train_step(t, 0), t


def test_a_step_scores_failed_parts_zero_counts_them_and_goes_on(tiny_model):
    reward = CompositeReward({"format": 0.0, "math_accuracy": 0.0, "_test_bad_items": 1.0})
    out, t = step_with(tiny_model, reward)
    assert out["reward/errors"] == 2.0
    assert out["reward/_test_bad_items"] == 6 / 8
    assert "train/nan_skipped" not in out  # the NaN did not reach the advantages
    assert all(math.isfinite(v) for v in out.values())
    # The first group's advantages are those of the rewards [0, 0, 1, 1]: the bad items lost.
    assert [s["reward"] for s in t.last_samples[:4]] == [0.0, 0.0, 1.0, 1.0]
    assert [s["advantage"] < 0 for s in t.last_samples[:4]] == [True, True, False, False]
    # Samples show why an item scored 0.
    assert t.last_samples[0]["errors"] == {
        "_test_bad_items": "RecursionError: maximum recursion depth exceeded"
    }
    assert "nan" in t.last_samples[1]["errors"]["_test_bad_items"]
    assert "errors" not in t.last_samples[2]


def test_a_reward_failing_on_every_item_stops_the_step_with_its_error(tiny_model):
    reward = CompositeReward({"format": 0.0, "math_accuracy": 0.0, "_test_always_raises": 1.0})
    with pytest.raises(
        RewardError, match=r"'_test_always_raises' failed on item 0: KeyError.*all 8"
    ):
        step_with(tiny_model, reward)


def test_a_clean_step_reports_zero_errors(tiny_model):
    out, _ = step_with(tiny_model, CompositeReward({"format": 1.0, "math_accuracy": 1.0}))
    assert out["reward/errors"] == 0.0


def test_evaluation_without_a_pool_scores_a_failed_item_zero(tiny_model, monkeypatch):
    # `r1lab eval workers=0` grades in this process: the same guard applies there.
    from r1lab.evaluate import evaluate, load_model
    from r1lab.rewards import registry
    from r1lab.tasks import make_task

    real = registry.get_reward("math_accuracy")
    calls = []

    def first_raises(completion, example, literal=False):  # the arithmetic task's param
        calls.append(completion)
        if len(calls) == 1:
            raise RecursionError("maximum recursion depth exceeded")
        return real(completion, example, literal=literal)

    monkeypatch.setitem(registry._REGISTRY, "math_accuracy", first_raises)
    model, tok = load_model(str(tiny_model), "cpu")
    task = make_task(TaskConfig(name="arithmetic"))
    result = evaluate(
        model, tok, task, task.examples("test", 2), n=2, ks=[1], max_new_tokens=8, progress=False
    )
    assert len(calls) == 2 * 2 + 2  # sampled and greedy answers, all graded
    assert result.samples[0]["samples"][0]["correct"] is False


def test_parts_the_pool_killed_are_counted_as_timeouts(tiny_model):
    # The pool scores a part 0 when its worker overruns the time limit or dies; the step says
    # how many, apart from the parts that raised.
    reward = CompositeReward({"format": 0.0, "math_accuracy": 1.0})

    class KillingPool(RewardPool):
        def score(self, composite, completions, examples, progress=None):
            results = super().score(composite, completions, examples, progress)
            zero = dict.fromkeys(composite.names, 0.0)
            results[2] = composite.result(zero, timed_out=["math_accuracy"])
            results[5] = composite.result(zero, crashed=["format", "math_accuracy"])
            return results

    cfg = ZeroConfig(
        model=str(tiny_model),
        task=TaskConfig(name="arithmetic"),
        rollout=RolloutConfig(group_size=4, max_new_tokens=8),
        algo=AlgoConfig(prompts_per_step=2, micro_batch=8),
        train_pool=16,
        workers=0,
        threads=1,
        progress=False,
    )
    with KillingPool(workers=0) as pool:
        t = trainer.build(cfg, pool)
        t.reward = reward
        metrics = trainer.train_step(t, 0)
    assert metrics["reward/timeouts"] == 3.0
    assert metrics["reward/errors"] == 0.0
