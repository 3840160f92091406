"""Rule-based rewards: plain functions in a registry, combined by a weighted sum, scored in a pool.

    from r1lab.rewards import CompositeReward, RewardPool, get_reward
    get_reward("math_accuracy")(completion, {"answer": "42"})          # -> (1.0, {...})
    reward = CompositeReward({"format": 0.5, "math_accuracy": 1.0})
    with RewardPool(workers=2, timeout=10) as pool:
        results = pool.score(reward, completions, examples)            # list[RewardResult]

Built-in rewards (docs/rewards.md has every rule and param): `format`, `format_prefill`,
`format_readable`, `format_cold_start`, `math_accuracy`, `countdown`, `code`, `code_binary`, `language_consistency`,
`overlong_penalty`, `cosine_length`. The signature every reward shares, and the reserved example
keys (`num_tokens`, `max_tokens`, `correct`), are documented in r1lab.rewards.registry.

This package never imports torch: pool workers are fresh interpreters that import only it.
"""

from r1lab.rewards import code, countdown, format, language, length, math  # noqa: F401 - registers
from r1lab.rewards.composite import CompositeReward, RewardError, RewardResult
from r1lab.rewards.pool import RewardPool, score_batch
from r1lab.rewards.registry import (
    RESERVED_KEYS,
    get_reward,
    list_rewards,
    register_reward,
    reward_params,
)

__all__ = [
    "RESERVED_KEYS",
    "CompositeReward",
    "RewardError",
    "RewardPool",
    "RewardResult",
    "get_reward",
    "list_rewards",
    "register_reward",
    "reward_params",
    "score_batch",
]
