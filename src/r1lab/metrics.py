"""Evaluation metrics as pure functions: pass@k, majority voting, reflection and length stats.

Conventions (R1_SYSTEM.md section 3):
- pass@k is the unbiased estimator from n samples with c correct, not the fraction of k-sample
  draws a single run happened to see.
- Majority voting groups answers by the task's equivalence, not by string: `1/2` and `0.5` are
  one vote. An unextractable answer (None) never wins. Ties go to the group whose first member
  appears earliest, so a vote is reproducible from the sample order alone.
- Reflection is a phrase match on word boundaries, case-insensitive: "wait" counts in "Wait,"
  but not in "waiting" or "await". Inflections count only when listed ("mistake" does not
  match "mistakes").
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence

DEFAULT_REFLECTION_PHRASES: tuple[str, ...] = (
    "wait",
    "re-check",
    "recheck",
    "verify",
    "let me check",
    "mistake",
    "double-check",
    "double check",
    "check again",
)


# --- pass@k -----------------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n - c, k) / C(n, k).

    Computed as 1 - prod_{i = n-c+1}^{n} (1 - k / i) (Chen et al. 2021), which never forms the
    huge binomials. c = 0 gives exactly 0; n - c < k (every k-subset holds a correct sample)
    gives exactly 1.
    """
    if not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got n={n}, k={k}: sample at least k answers")
    if n - c < k:
        return 1.0
    all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        all_wrong *= 1.0 - k / i
    return 1.0 - all_wrong


# --- majority voting --------------------------------------------------------------------------


def _vote(
    answers: Sequence[str | None], equivalent: Callable[[str, str], bool]
) -> tuple[int | None, int]:
    """(index of the winning group's first member, group size); (None, 0) if no answer."""
    firsts: list[int] = []  # per group, the index of its first member
    counts: list[int] = []
    group_of: dict[str, int] = {}  # exact string -> group: equivalent() runs once per spelling
    for i, answer in enumerate(answers):
        if answer is None:
            continue
        g = group_of.get(answer)
        if g is None:
            # Compare with each group's first member only: a non-transitive checker (a numeric
            # tolerance, say) then still gives one deterministic grouping.
            g = next((j for j, f in enumerate(firsts) if equivalent(answers[f], answer)), None)
            if g is None:
                g = len(firsts)
                firsts.append(i)
                counts.append(0)
            group_of[answer] = g
        counts[g] += 1
    if not firsts:
        return None, 0
    best = max(range(len(firsts)), key=counts.__getitem__)  # max keeps the earliest of ties
    return firsts[best], counts[best]


def majority_vote(
    answers: Sequence[str | None], equivalent: Callable[[str, str], bool]
) -> tuple[str | None, int]:
    """The most frequent answer up to equivalence, and its number of votes.

    Answers that are the same string are grouped without calling `equivalent`; a new spelling is
    compared, as `equivalent(first_member, new)`, with the first member of each group in order
    and joins the first that matches. The winner is returned as its group's first member.
    None never wins; all None (or no answers) gives (None, 0). Ties: the group whose first
    member appears earliest in `answers` wins.
    """
    first, count = _vote(answers, equivalent)
    return (None, 0) if first is None else (answers[first], count)


def maj_at_k_correct(
    answers: Sequence[str | None],
    correct: Sequence[bool],
    equivalent: Callable[[str, str], bool],
) -> bool:
    """Whether the majority-voted answer is correct, from the per-sample grades.

    Uses the grades already given to the samples (the ones pass@k counts), so maj@k and pass@k
    agree by construction: the voted group is as correct as its first member. No answer, no
    credit. Pass the first k answers and grades for maj@k.
    """
    if len(answers) != len(correct):
        raise ValueError(f"{len(answers)} answers but {len(correct)} grades")
    first, _ = _vote(answers, equivalent)
    return first is not None and bool(correct[first])


# --- reflection -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _reflection_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    if any(not p.strip() for p in phrases):
        raise ValueError(f"reflection phrases must not be empty: {phrases!r}")
    # words of a phrase may be split by any whitespace ("let me\ncheck"); lookarounds rather
    # than \b so that a phrase may start or end with a non-word character.
    alternatives = [r"\s+".join(map(re.escape, p.split())) for p in phrases]
    if not alternatives:
        return re.compile(r"(?!)")  # matches nothing
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


def has_reflection(text: str, phrases: Sequence[str] = DEFAULT_REFLECTION_PHRASES) -> bool:
    """Whether `text` contains any of the phrases as whole words, ignoring case."""
    return _reflection_pattern(tuple(phrases)).search(text) is not None


def reflection_rate(
    texts: Sequence[str], phrases: Sequence[str] = DEFAULT_REFLECTION_PHRASES
) -> float:
    """Fraction of `texts` with at least one reflection phrase."""
    if not texts:
        raise ValueError("reflection_rate of no texts is undefined")
    pattern = _reflection_pattern(tuple(phrases))
    return sum(pattern.search(t) is not None for t in texts) / len(texts)


# --- lengths ----------------------------------------------------------------------------------


def _quantile(ordered: Sequence[float], q: float) -> float:
    # linear interpolation between closest ranks (numpy's and torch's default)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def length_stats(lengths: Sequence[float]) -> dict[str, float]:
    """mean, median, p90, min and max of response lengths (keys without a namespace)."""
    if not lengths:
        raise ValueError("length_stats of no lengths is undefined")
    ordered = sorted(float(x) for x in lengths)
    return {
        "mean": sum(ordered) / len(ordered),
        "median": _quantile(ordered, 0.5),
        "p90": _quantile(ordered, 0.9),
        "min": ordered[0],
        "max": ordered[-1],
    }
