"""Length shaping: DAPO's soft overlong punishment and the cosine length-scaled correctness reward.

Both read the completion's length in tokens from the reserved example key `num_tokens` (the caller
knows it; counting tokens here would need the tokenizer).

`overlong_penalty` (DAPO, Yu et al. 2025), with L = num_tokens, L_max = `max_length`, L_cache =
`cache_length`:  0 if L <= L_max - L_cache;  ((L_max - L_cache) - L) / L_cache, falling linearly
from 0 to -1, if L_max - L_cache < L <= L_max;  -1 if L > L_max. `max_length` defaults to the
example's `max_tokens` (the generation limit) and `cache_length` to a fifth of it (DAPO: 4096 of
20480).

`cosine_length` (Yeo et al. 2025, "Demystifying Long Chain-of-Thought Reasoning in LLMs"):

    r(L) = min + (max - min) * (1 + cos(pi * t)) / 2,   t = clamp(L, 0, max_length) / max_length

For a correct answer r runs from `max_value_correct` at t = 0 down to `min_value_correct` at
t = 1: shorter correct answers earn more. For a wrong answer it runs from `min_value_wrong` at t = 0
up to `max_value_wrong` at t = 1: a long wrong answer (one that kept trying) is penalised less
than a short one. That is the paper's convention; the defaults keep every correct reward positive
and every wrong one negative, and min <= max is enforced so the sign cannot silently flip (one
public implementation shipped defaults with min and max swapped for wrong answers, which rewards
giving up early). The length is clamped to [0, max_length], so the value never leaves its range.
Correctness is `example["correct"]` when the caller set it, else the `accuracy` reward >= 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from r1lab.rewards.registry import get_reward, register_reward, split_result


def _num_tokens(example: Mapping[str, Any], reward: str) -> int:
    if "num_tokens" not in example:
        raise KeyError(f"{reward} needs the completion's length in tokens in example['num_tokens']")
    return int(example["num_tokens"])


@register_reward("overlong_penalty")
def overlong_penalty(
    completion: str,
    example: Mapping[str, Any],
    *,
    max_length: int | None = None,
    cache_length: int | None = None,
) -> float:
    """DAPO soft overlong punishment in [-1, 0] (see the module docstring)."""
    length = _num_tokens(example, "overlong_penalty")
    if max_length is None:
        if "max_tokens" not in example:
            raise KeyError("overlong_penalty needs max_length, or example['max_tokens']")
        max_length = int(example["max_tokens"])
    cache = max_length // 5 if cache_length is None else int(cache_length)
    if not 0 < cache <= max_length:
        raise ValueError(f"overlong_penalty: need 0 < cache_length <= max_length, got {cache}")
    start = max_length - cache
    if length <= start:
        return 0.0
    if length <= max_length:
        return (start - length) / cache
    return -1.0


@register_reward("cosine_length")
def cosine_length(
    completion: str,
    example: Mapping[str, Any],
    *,
    max_length: int = 1024,
    min_value_correct: float = 0.5,
    max_value_correct: float = 1.0,
    min_value_wrong: float = -1.0,
    max_value_wrong: float = -0.5,
    accuracy: str = "math_accuracy",
    accuracy_params: Mapping[str, Any] | None = None,
) -> tuple[float, dict[str, Any]]:
    """Correctness scaled by length on a cosine (see the module docstring). `accuracy_params`
    are the `accuracy` reward's (the trainer passes the task's: arithmetic's `literal`)."""
    if max_length <= 0:
        raise ValueError(f"cosine_length: max_length must be positive, got {max_length}")
    if min_value_correct > max_value_correct or min_value_wrong > max_value_wrong:
        raise ValueError(
            "cosine_length: need min_value <= max_value for both correct and wrong answers "
            f"(got correct [{min_value_correct}, {max_value_correct}], "
            f"wrong [{min_value_wrong}, {max_value_wrong}])"
        )
    length = _num_tokens(example, "cosine_length")
    if "correct" in example:
        correct = bool(example["correct"])
    else:
        score, _ = split_result(
            get_reward(accuracy)(completion, example, **(accuracy_params or {}))
        )
        correct = score >= 1 - 1e-9
    t = min(max(length, 0), max_length) / max_length
    shape = (1.0 + math.cos(math.pi * t)) / 2.0  # 1 at t = 0, 0 at t = 1
    if correct:
        value = min_value_correct + (max_value_correct - min_value_correct) * shape
    else:
        value = max_value_wrong - (max_value_wrong - min_value_wrong) * shape
    return value, {"correct": correct}
