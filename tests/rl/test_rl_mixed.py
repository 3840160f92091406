"""RL for all scenarios: general requests join the prompt stream, the task's rules score the
questions, reward models score the requests (which row gets which reward), and the held-out
evaluation grades requests by the hidden rule beside the reward models' scores."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from r1lab.config import ConfigError, FieldError, validate
from r1lab.rewards import CompositeReward, RewardPool
from r1lab.rewards.composite import RewardResult
from r1lab.rl import trainer
from r1lab.rl.config import AlgoConfig, GeneralConfig, RolloutConfig, ZeroConfig
from r1lab.rl.mixed import (
    SOURCE,
    ModelReward,
    add_model_rewards,
    general_composite,
    general_pool,
)
from r1lab.rm.scorer import RewardModelScorer
from r1lab.tasks import ArithmeticTask, TaskConfig


class FakeScorer:
    def __init__(self, values):
        self.values, self.calls = values, []

    def score(self, questions, completions):
        self.calls.append((list(questions), list(completions)))
        return [self.values[c] for c in completions]


def test_only_general_requests_get_the_reward_models_weighted():
    examples = [
        {"question": "Compute 1 + 1", "answer": "2"},
        {"question": "Say hello.", SOURCE: "general"},
        {"question": "Name two fruits.", SOURCE: "general"},
    ]
    texts = ["<answer> 2 </answer>", "hi", "apple"]
    results = [RewardResult(1.5, {"math_accuracy": 1.0, "format": 1.0})]
    results += [RewardResult(0.5, {"format": 1.0}), RewardResult(0.0, {"format": 0.0})]
    helpful = FakeScorer({"hi": 0.25, "apple": -1.0})
    harmless = FakeScorer({"hi": 2.0, "apple": float("nan")})
    rms = [ModelReward("helpful", helpful, 2.0), ModelReward("harmless", harmless, 1.0)]
    out = add_model_rewards(rms, results, examples, texts)
    assert out[0] is results[0]  # a question's reward is the rules' alone
    assert helpful.calls == [(["Say hello.", "Name two fruits."], ["hi", "apple"])]
    assert out[1].parts == {"format": 1.0, "rm_helpful": 0.25, "rm_harmless": 2.0}
    assert out[1].total == pytest.approx(0.5 + 2 * 0.25 + 2.0)
    assert "errors" not in out[1].info
    # A score that is not a number counts 0 and is an error of that part.
    assert out[2].parts["rm_harmless"] == 0.0 and out[2].total == pytest.approx(-2.0)
    assert out[2].info["errors"] == {"rm_harmless": "reward model score nan"}


def test_the_pool_holds_the_share_of_general_requests_and_their_format_rule():
    pool = general_pool(0.25, 30, seed=0)
    assert len(pool) == 10 and all(ex[SOURCE] == "general" for ex in pool)
    assert len({ex["question"] for ex in pool}) > 5 and all("kind" in ex for ex in pool)
    task = ArithmeticTask(seed=0)
    reward = CompositeReward({"math_accuracy": 1.0, "format": 0.5})
    assert general_composite(reward, task).weights == {"format": 0.5}


@pytest.mark.parametrize(
    ("general", "message"),
    [
        (GeneralConfig(share=0.3), "general.reward_models"),
        (GeneralConfig(share=1.0, reward_models={"a": "x"}), "general.share"),
        (GeneralConfig(share=0.3, reward_models={"a": "x"}, weights={"b": 1}), "general.weights"),
        (GeneralConfig(share=0.3, reward_models={"a": "x"}, parts={"a": "end"}), "general.parts.a"),
    ],
)
def test_general_settings_are_checked(general, message):
    with pytest.raises(FieldError, match=message):
        validate(ZeroConfig(general=general))


def mixed_config(model: Path, rm: Path, **kw) -> ZeroConfig:
    general = GeneralConfig(
        share=0.5,
        reward_models={"helpful": str(rm)},
        weights={"helpful": 2.0},
        parts={"helpful": "final"},
        eval_questions=6,
    )
    fields = dict(
        model=str(model),
        task=TaskConfig(name="arithmetic"),
        rollout=RolloutConfig(group_size=2, max_new_tokens=16, temperature=1.0),
        algo=AlgoConfig(prompts_per_step=8, micro_batch=8, lr=1e-3, warmup_steps=1),
        general=general,
        train_pool=32,
        eval_questions=2,
        eval_n=1,
        workers=0,
        threads=1,
        progress=False,
    )
    fields.update(kw)
    return validate(ZeroConfig(**fields))


def test_a_mixed_step_scores_questions_by_rule_and_requests_by_the_reward_model(
    tiny_model, tiny_rm
):
    torch.manual_seed(0)
    t = trainer.build(mixed_config(tiny_model, tiny_rm), RewardPool(workers=0))
    assert sum(1 for ex in t.stream.examples if ex.get(SOURCE) == "general") == 32
    out = trainer.train_step(t, 0)
    samples = t.last_samples
    general = [s for s in samples if "rm_helpful" in s["parts"]]
    questions = [s for s in samples if "math_accuracy" in s["parts"]]
    assert general and questions and len(general) + len(questions) == len(samples) == 16
    assert not any("math_accuracy" in s["parts"] for s in general)
    # A request's reward: the format at its weight (0.5) + 2 x the reward model's score of the
    # part after the reasoning, as the scorer gives it for that question and completion.
    scorer = RewardModelScorer(tiny_rm, part="final", device="cpu")
    scores = scorer.score([s["question"] for s in general], [s["completion"] for s in general])
    for s, score in zip(general, scores, strict=True):
        assert s["parts"]["rm_helpful"] == pytest.approx(score, abs=1e-5)
        assert s["reward"] == pytest.approx(0.5 * s["parts"]["format"] + 2 * score, abs=1e-5)
    for s in questions:
        assert s["reward"] == pytest.approx(
            s["parts"]["math_accuracy"] + 0.5 * s["parts"]["format"]
        )
    assert out["batch/general_share"] == pytest.approx(len(general) / 16)
    assert out["reward/rm_helpful"] == pytest.approx(sum(scores) / len(scores), abs=1e-5)
    assert out["reward/general/total"] == pytest.approx(
        sum(s["reward"] for s in general) / len(general), abs=1e-5
    )
    assert math.isfinite(out["loss/total"])


def test_the_evaluation_grades_requests_by_the_hidden_rule_beside_the_reward_model(
    tiny_model, tiny_rm
):
    t = trainer.build(mixed_config(tiny_model, tiny_rm), RewardPool(workers=0))
    metrics = trainer.run_eval(t, RewardPool(workers=0))
    for key in ("helpful_rate", "harmless_rate", "over_refusal_rate", "pass@1", "rm_helpful"):
        assert f"eval/general/{key}" in metrics, key
    assert "eval/pass@1" in metrics  # the questions' own evaluation is kept


def test_a_checkpoint_that_is_not_a_reward_model_is_refused(tiny_model):
    general = GeneralConfig(share=0.5, reward_models={"helpful": str(tiny_model)})
    cfg = validate(ZeroConfig(model=str(tiny_model), general=general, workers=0))
    with pytest.raises(ConfigError, match="not an r1lab rm checkpoint"):
        trainer.build(cfg, RewardPool(workers=0))
