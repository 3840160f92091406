"""Multi-digit arithmetic: addition, multiplication and exact division, in English and Chinese.

    r1lab eval --task.name arithmetic

A problem is `a + b` (both 2-3 digits), `a * b` (2-3 digits times one digit) or, when `ops`
holds `/`, `a / b` (a multiple of a one-digit `b` with a two-digit quotient). Carrying makes one-shot answers to the
first two unreliable; division is the inverse problem of the micro-world: a one-shot answer is a
guess, and multiplying the guess back is an easier check than dividing. The reference is the
integer result; grading is the `math_accuracy` reward with `literal` on, so `834`, `834.0` and
`\\boxed{834}` are all right and `417 * 2` (the question restated, or any answer left to
compute) is not.

A `zh_fraction` of the questions is asked in Chinese (`计算 294 / 7`); every example carries
its `language` ("en" or "zh"). The train/test split is decided by the English wording of the
problem (`split_key`), so a test problem is held out in both languages.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from r1lab.tasks.base import RewardSpec, reward_score
from r1lab.tasks.splits import in_split

QUESTION = {"en": "Compute {a} {op} {b}", "zh": "计算 {a} {op} {b}"}


@dataclass(frozen=True)
class Problem:
    a: int
    b: int
    op: str  # "+", "*" or "/"

    @property
    def result(self) -> int:
        if self.op == "+":
            return self.a + self.b
        if self.op == "*":
            return self.a * self.b
        return self.a // self.b

    @property
    def question(self) -> str:
        """The English wording, which also decides the problem's split."""
        return self.ask("en")

    def ask(self, language: str) -> str:
        return QUESTION[language].format(a=self.a, op=self.op, b=self.b)


def sample_problem(rng: random.Random, ops: tuple[str, ...] = ("+", "*")) -> Problem:
    op = rng.choice(ops)
    if op == "/":
        b = rng.randint(2, 9)
        return Problem(rng.randint(10, 99) * b, b, op)
    a = rng.randint(10, 999)
    b = rng.randint(10, 999) if op == "+" else rng.randint(2, 9)
    return Problem(a, b, op)


@dataclass
class ArithmeticTask:
    """Addition, multiplication and division with a seeded, hash-disjoint train/test split."""

    seed: int = 0
    ops: tuple[str, ...] = ("+", "*")
    """Which problems: `+`, `*`, and `/` (the micro-world v2's inverse problem, issue 11)."""
    test_fraction: float = 0.1
    zh_fraction: float = 0.0
    """Share of questions asked in Chinese (0 draws nothing: the examples are v1's exactly)."""
    name: str = "arithmetic"
    rewards: RewardSpec = field(
        default_factory=lambda: RewardSpec(
            weights={"format": 0.5, "math_accuracy": 1.0},
            # `Compute 450 / 6` answered `450 / 6` restates the question: a number is asked for
            params={"math_accuracy": {"literal": True}},
            accuracy="math_accuracy",
            format="format",
        )
    )

    def sample(self, rng: random.Random, split: str) -> Problem:
        """One problem of `split`: rejection-sampled so the splits never share a problem."""
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
            language = "zh" if self.zh_fraction and rng.random() < self.zh_fraction else "en"
            out.append(
                {
                    "id": f"arithmetic-{split}-{i}",
                    "question": p.ask(language),
                    "answer": str(p.result),
                    "language": language,
                    "split_key": p.question,
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

        params = self.rewards.params.get(self.rewards.accuracy, {})
        score = get_reward(self.rewards.accuracy)(completion, example, **params)
        return reward_score(score) >= 1 - 1e-9

    def equivalent(self, a: str, b: str, example: Mapping[str, Any]) -> bool:
        # One vote only among answers graded alike: `450 / 6` equals `75` but is left to
        # compute, and `75\%` is no bare 75 (math_accuracy's `literal`).
        from r1lab.rewards.math import answer_unit, math_equal

        return math_equal(a, b) and answer_unit(a) == answer_unit(b)
