"""Evaluation metrics against brute force and against the documented conventions."""

import itertools
import math
import statistics
from fractions import Fraction

import pytest
import torch

from r1lab.metrics import (
    DEFAULT_REFLECTION_PHRASES,
    _reflection_pattern,
    has_reflection,
    length_stats,
    maj_at_k_correct,
    majority_vote,
    pass_at_k,
    reflection_rate,
)

# --- pass@k -----------------------------------------------------------------------------------


def test_pass_at_k_matches_enumerating_every_k_subset():
    for n in range(1, 8):
        for c in range(n + 1):
            correct = [i < c for i in range(n)]
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(correct, k))
                brute = sum(any(s) for s in subsets) / len(subsets)
                assert math.isclose(pass_at_k(n, c, k), brute, rel_tol=1e-12, abs_tol=1e-15), (
                    n,
                    c,
                    k,
                )


def test_pass_at_k_exact_cases_and_large_n():
    for n in (1, 5, 16, 200):
        for c in range(n + 1):
            assert math.isclose(pass_at_k(n, c, 1), c / n, rel_tol=1e-12, abs_tol=1e-15)
        assert pass_at_k(n, 0, n) == 0.0
    assert pass_at_k(10, 3, 8) == 1.0  # only 7 wrong samples: every 8-subset holds a correct one
    # n = 1000 needs binomials of ~300 digits; compare with exact rational arithmetic
    exact = 1 - Fraction(math.comb(1000 - 7, 500), math.comb(1000, 500))
    assert math.isclose(pass_at_k(1000, 7, 500), float(exact), rel_tol=1e-12)


def test_pass_at_k_rejects_impossible_arguments():
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="1 <= k"):
        pass_at_k(4, 1, 0)
    with pytest.raises(ValueError, match="c <= n"):
        pass_at_k(4, 5, 1)


# --- majority voting --------------------------------------------------------------------------


def numeric(a: str, b: str) -> bool:
    return Fraction(a) == Fraction(b)


def test_majority_vote_groups_equivalent_answers():
    # "0.5", "1/2" and "0.50" are one answer with 3 votes; "2" has 2 string-identical votes
    assert majority_vote(["2", "0.5", "1/2", "2", "0.50"], numeric) == ("0.5", 3)
    # by string it would be a win for "2"
    assert majority_vote(["2", "0.5", "1/2", "2", "0.50"], str.__eq__) == ("2", 2)


def test_majority_vote_tie_goes_to_the_earliest_group():
    assert majority_vote(["3", "1", "1.0", "3.0"], numeric) == ("3", 2)
    assert majority_vote(["1", "3", "1.0", "3.0"], numeric) == ("1", 2)
    assert majority_vote(["1.0", "3", "3.0", "1"], numeric) == ("1.0", 2)


def test_none_never_wins():
    assert majority_vote([None, None, None, "7"], numeric) == ("7", 1)
    assert majority_vote([None, None], numeric) == (None, 0)
    assert majority_vote([], numeric) == (None, 0)


def test_exact_matches_skip_the_checker_and_groups_compare_with_their_first_member():
    calls = []

    def counting(a, b):
        calls.append((a, b))
        return numeric(a, b)

    assert majority_vote(["1", "2", "1", "2", "2", "1/1"], counting) == ("1", 3)
    assert calls == [("1", "2"), ("1", "1/1")]  # once per new spelling, never for repeats

    def within_one(a, b):  # not transitive
        return abs(float(a) - float(b)) <= 1

    # "2" is within one of "1" but not of the group's first member "0": a new group
    assert majority_vote(["0", "1", "2", "2"], within_one) == ("0", 2)


def test_maj_at_k_correct_uses_the_voted_groups_grade():
    answers = ["3", "1/2", "0.5", None, None]
    assert maj_at_k_correct(answers, [False, True, True, False, False], numeric)
    assert not maj_at_k_correct(answers[:1], [False], numeric)
    assert not maj_at_k_correct([None, None], [False, False], numeric)
    with pytest.raises(ValueError, match="grades"):
        maj_at_k_correct(answers, [True], numeric)


# --- reflection -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Wait, that is wrong.", True),
        ("WAIT", True),
        ("I am waiting for the result", False),
        ("we await it", False),
        ("Let me\n  check the sum", True),
        ("let me checkout the branch", False),
        ("I should re-check step 2", True),
        ("pre-check passed", False),
        ("Recheck: 3 + 4 = 7", True),
        ("Let me double check.", True),
        ("double-checked", False),
        ("I made a mistake", True),
        ("no mistakes here", False),
        ("verify(x)", True),
        ("so the answer is 7", False),
        ("", False),
    ],
)
def test_reflection_phrases_match_whole_words_ignoring_case(text, expected):
    assert has_reflection(text) is expected


def test_reflection_with_custom_phrases():
    assert has_reflection("Hmm. Let me see.", ["hmm"])
    assert not has_reflection("Wait.", ["hmm"])
    assert not has_reflection("a.b", [])
    assert has_reflection("3.14 again", ["3.14"]) and not has_reflection("3x14", ["3.14"])
    assert has_reflection("it is ok!", ["ok!"])  # ends in a non-word character
    with pytest.raises(ValueError, match="empty"):
        has_reflection("x", ["wait", " "])
    assert _reflection_pattern(tuple(DEFAULT_REFLECTION_PHRASES)) is _reflection_pattern(
        DEFAULT_REFLECTION_PHRASES
    )


def test_reflection_rate():
    texts = ["Wait, no.", "7", "waiting", "let me verify: 7"]
    assert reflection_rate(texts) == 0.5
    assert reflection_rate(texts, ["waiting"]) == 0.25
    with pytest.raises(ValueError):
        reflection_rate([])


# --- lengths ----------------------------------------------------------------------------------


def test_length_stats_match_statistics_and_torch_quantile():
    for lengths in ([5], [3, 1], [10, 200, 7, 7, 31, 64, 2, 90, 15, 8, 1]):
        got = length_stats(lengths)
        xs = torch.tensor(lengths, dtype=torch.float64)
        assert got["mean"] == pytest.approx(statistics.fmean(lengths))
        assert got["median"] == statistics.median(lengths)
        assert got["p90"] == pytest.approx(torch.quantile(xs, 0.9).item())
        assert (got["min"], got["max"]) == (min(lengths), max(lengths))
    assert length_stats([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])["p90"] == pytest.approx(9.1)
    with pytest.raises(ValueError):
        length_stats([])
