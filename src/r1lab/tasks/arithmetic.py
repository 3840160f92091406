"""Multi-digit arithmetic: addition and multiplication where carrying makes one-shot answers hard.

    r1lab eval --task.name arithmetic

A problem is `a + b` (both 2-3 digits) or `a * b` (2-3 digits times one digit). The reference is
the integer result; grading is the `math_accuracy` reward, so `834`, `834.0` and `\\boxed{834}`
are all right.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from r1lab.tasks.base import RewardSpec, reward_score
from r1lab.tasks.splits import in_split


@dataclass(frozen=True)
class Problem:
    a: int
    b: int
    op: str  # "+" or "*"

    @property
    def result(self) -> int:
        return self.a + self.b if self.op == "+" else self.a * self.b

    @property
    def question(self) -> str:
        return f"Compute {self.a} {self.op} {self.b}"


def sample_problem(rng: random.Random, ops: tuple[str, ...] = ("+", "*")) -> Problem:
    op = rng.choice(ops)
    a = rng.randint(10, 999)
    b = rng.randint(10, 999) if op == "+" else rng.randint(2, 9)
    return Problem(a, b, op)


@dataclass
class ArithmeticTask:
    """Addition and multiplication with a seeded, hash-disjoint train/test split."""

    seed: int = 0
    ops: tuple[str, ...] = ("+", "*")
    test_fraction: float = 0.1
    name: str = "arithmetic"
    rewards: RewardSpec = field(
        default_factory=lambda: RewardSpec(
            weights={"format": 0.5, "math_accuracy": 1.0},
            accuracy="math_accuracy",
            format="format",
        )
    )

    def sample(self, rng: random.Random, split: str) -> Problem:
        """One problem of `split`: rejection-sampled so the splits never share a question."""
        while True:
            p = sample_problem(rng, self.ops)
            if in_split(p.question, split, self.test_fraction):
                return p

    def examples(self, split: str, n: int | None = None) -> list[dict[str, Any]]:
        n = 256 if n is None else n
        rng = random.Random(f"arithmetic/{self.seed}/{split}")
        out = []
        for i in range(n):
            p = self.sample(rng, split)
            out.append(
                {
                    "id": f"arithmetic-{split}-{i}",
                    "question": p.question,
                    "answer": str(p.result),
                    "a": p.a,
                    "b": p.b,
                    "op": p.op,
                }
            )
        return out

    def extract_answer(self, completion: str) -> str | None:
        from r1lab.rewards.math import extract_answer

        return extract_answer(completion)

    def is_correct(self, completion: str, example: Mapping[str, Any]) -> bool:
        from r1lab.rewards import get_reward

        score = get_reward("math_accuracy")(completion, example)
        return reward_score(score) >= 1 - 1e-9

    def equivalent(self, a: str, b: str, example: Mapping[str, Any]) -> bool:
        from r1lab.rewards.math import math_equal

        return math_equal(a, b)
