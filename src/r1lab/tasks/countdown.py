"""Countdown, the TinyZero task: reach the target with each given number used exactly once.

    r1lab eval --task.name countdown

Numbers are drawn from 1..`max_number`; the target is the value of a random left-to-right
expression over all of them with `+ - *` (so every problem is solvable by construction) and lies
in 1..`max_target`. The reference answer is that expression; grading is the `countdown` reward,
which accepts any correct equation, not only the reference.

A `zh_fraction` of the questions is asked in Chinese; every example carries its `language`, and
the split is decided by the English wording (`split_key`), so a test problem is held out in both
languages. `trace_stats` counts the candidates a completion tries (logged as `eval/candidates`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from r1lab.tasks.base import RewardSpec, reward_score
from r1lab.tasks.splits import in_split

QUESTION = {
    "en": "Using the numbers [{nums}], create an equation that equals {target}",
    "zh": "用数字 [{nums}] 写一个等于 {target} 的算式",
}
# How the micro-world's search traces open a candidate ("Try 4 + 12 - 3:" / "试 4 + 12 - 3："):
# a candidate is an expression of at least two numbers right after the word.
_CANDIDATE = re.compile(r"(?<![A-Za-z])(?:Try|试)\s*(?:\(\s*)*\d+\s*(?:\)\s*)*[-+*/]")


@dataclass(frozen=True)
class Problem:
    numbers: tuple[int, ...]
    target: int
    solution: str

    @property
    def question(self) -> str:
        """The English wording, which also decides the problem's split."""
        return self.ask("en")

    def ask(self, language: str) -> str:
        nums = ", ".join(map(str, self.numbers))
        return QUESTION[language].format(nums=nums, target=self.target)


def sample_problem(
    rng: random.Random, count: int = 3, max_number: int = 25, max_target: int = 150
) -> Problem:
    while True:
        numbers = [rng.randint(1, max_number) for _ in range(count)]
        order = numbers[:]
        rng.shuffle(order)
        expr, value = str(order[0]), order[0]
        for n in order[1:]:
            op = rng.choice("+-*")
            # Bracket the running expression so the written solution evaluates left to right.
            expr = f"({expr}) {op} {n}" if op == "*" and " " in expr else f"{expr} {op} {n}"
            value = value + n if op == "+" else value - n if op == "-" else value * n
        if 1 <= value <= max_target:
            return Problem(tuple(numbers), value, expr)


@dataclass
class CountdownTask:
    """Countdown with 3 numbers by default, seeded, with a hash-disjoint train/test split."""

    seed: int = 0
    count: int = 3
    max_number: int = 25
    max_target: int = 150
    test_fraction: float = 0.1
    zh_fraction: float = 0.0
    """Share of questions asked in Chinese (0 draws nothing: the examples are v1's exactly)."""
    name: str = "countdown"
    rewards: RewardSpec = field(
        default_factory=lambda: RewardSpec(
            weights={"format": 0.5, "countdown": 1.0}, accuracy="countdown", format="format"
        )
    )

    def sample(self, rng: random.Random, split: str) -> Problem:
        while True:
            p = sample_problem(rng, self.count, self.max_number, self.max_target)
            if in_split(p.question, split, self.test_fraction):
                return p

    def examples(self, split: str, n: int | None = None) -> list[dict[str, Any]]:
        n = 256 if n is None else n
        rng = random.Random(f"countdown/{self.seed}/{split}")
        out = []
        for i in range(n):
            p = self.sample(rng, split)
            language = "zh" if self.zh_fraction and rng.random() < self.zh_fraction else "en"
            out.append(
                {
                    "id": f"countdown-{split}-{i}",
                    "question": p.ask(language),
                    "answer": p.solution,
                    "language": language,
                    "split_key": p.question,
                    "numbers": list(p.numbers),
                    "target": p.target,
                }
            )
        return out

    def trace_stats(self, completion: str) -> dict[str, float]:
        """Search effort of a completion: `candidates`, the equations it tries in its reasoning."""
        from r1lab.rewards.language import reasoning_text

        return {"candidates": float(len(_CANDIDATE.findall(reasoning_text(completion))))}

    def extract_answer(self, completion: str) -> str | None:
        from r1lab.rewards.math import extract_answer

        return extract_answer(completion)

    def is_correct(self, completion: str, example: Mapping[str, Any]) -> bool:
        from r1lab.rewards import get_reward

        return reward_score(get_reward("countdown")(completion, example)) >= 1 - 1e-9

    def equivalent(self, a: str, b: str, example: Mapping[str, Any]) -> bool:
        # Two equations are the same answer when both are valid: every correct equation reaches
        # the target, so voting groups all correct ones together and wrong ones by their text.
        from r1lab.rewards import get_reward

        countdown = get_reward("countdown")

        def ok(x: str) -> bool:
            return reward_score(countdown(f"<answer>{x}</answer>", example)) >= 1 - 1e-9

        return a.strip() == b.strip() or (ok(a) and ok(b))
