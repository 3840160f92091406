"""RL for all scenarios (DeepSeek-R1's last stage): general requests beside the task's questions,
rewarded by preference reward models where no rule can grade them.

- The prompt pool gets round(n x share / (1 - share)) of the micro-world's general training
  requests beside the task's n questions (`general_pool`), each tagged with its source, so the
  stream's seeded epochs mix them at `general.share` on average and a resumed run sees the same
  prompts.
- A question is scored by the task's rules, as in R1-Zero. A general request gets the task's
  format reward at its weight (`general_composite`: the output format is asked of every
  prompt) and, in the trainer's process, after the rule pool, the weighted sum of the reward
  models' scores (`add_model_rewards`, parts `rm_<name>`). A reward model's score that is not
  a finite number counts 0 and is reported as an error of that part, as a rule's would be.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SOURCE = "rl_source"
"""The example key naming where a training prompt came from."""
GENERAL = "general"


def is_general(example: Mapping[str, Any]) -> bool:
    return example.get(SOURCE) == GENERAL


def general_pool(share: float, n_questions: int, seed: int = 0) -> list[dict[str, Any]]:
    """The general training requests that make `share` of a pool with `n_questions` others."""
    from r1lab.tasks.general import GeneralTask

    n = round(n_questions * share / (1 - share))
    return [{**ex, SOURCE: GENERAL} for ex in GeneralTask(seed=seed).examples("train", n)]


@dataclass
class ModelReward:
    """One reward model in the reward: its name (the part is `rm_<name>`), scorer, weight."""

    name: str
    scorer: Any  # r1lab.rm.scorer.RewardModelScorer
    weight: float = 1.0


def load_model_rewards(general: Any, device: str, dtype: str) -> list[ModelReward]:
    """The reward models `general.reward_models` names, loaded (a checkpoint that is not an
    `r1lab rm` one is refused, naming it)."""
    from r1lab.rm.scorer import RewardModelScorer

    return [
        ModelReward(
            name,
            RewardModelScorer(
                path, part=general.parts.get(name, "full"), device=device, dtype=dtype
            ),
            float(general.weights.get(name, 1.0)),
        )
        for name, path in general.reward_models.items()
    ]


def general_composite(reward: Any, task: Any) -> Any:
    """The rule part of a general request's reward: the task's format reward, at the weight
    (and with the params) it has in the questions' reward."""
    from r1lab.rewards import CompositeReward

    fmt = task.rewards.format
    params = {fmt: reward.params[fmt]} if fmt in reward.params else None
    return CompositeReward({fmt: reward.weights.get(fmt, 0.0)}, params)


def add_model_rewards(
    model_rewards: Sequence[ModelReward],
    results: Sequence[Any],
    examples: Sequence[Mapping[str, Any]],
    texts: Sequence[str],
) -> list[Any]:
    """`results` with every general request's reward-model scores added to its parts and,
    weighted, to its total; the other results as they are."""
    from r1lab.rewards.composite import RewardResult

    out = list(results)
    general = [i for i, ex in enumerate(examples) if is_general(ex)]
    if not general or not model_rewards:
        return out
    questions = [examples[i]["question"] for i in general]
    completions = [texts[i] for i in general]
    scores = {m.name: m.scorer.score(questions, completions) for m in model_rewards}
    for k, i in enumerate(general):
        r = out[i]
        parts, total = dict(r.parts), r.total
        info = {**r.info, "errors": dict(r.info.get("errors", {}))}
        for m in model_rewards:
            s = scores[m.name][k]
            if not math.isfinite(s):
                info["errors"][f"rm_{m.name}"] = f"reward model score {s}"
                s = 0.0
            parts[f"rm_{m.name}"] = s
            total += m.weight * s
        if not info["errors"]:
            del info["errors"]
        out[i] = RewardResult(total, parts, info)
    return out
