"""Length shaping: DAPO's overlong punishment and the cosine length-scaled reward, signs included."""

from __future__ import annotations

import pytest

from r1lab.rewards.length import cosine_length, overlong_penalty


def ol(n: int, **params) -> float:
    return overlong_penalty("", {"num_tokens": n}, **params)


def test_overlong_piecewise():
    p = {"max_length": 1000, "cache_length": 200}
    assert ol(0, **p) == 0.0
    assert ol(800, **p) == 0.0  # L_max - L_cache: last length with no penalty
    assert ol(801, **p) == pytest.approx(-1 / 200)
    assert ol(900, **p) == pytest.approx(-0.5)
    assert ol(1000, **p) == pytest.approx(-1.0)
    assert ol(1001, **p) == -1.0
    assert ol(10**9, **p) == -1.0


def test_overlong_is_monotone():
    values = [ol(n, max_length=100, cache_length=30) for n in range(0, 120)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert min(values) == -1.0 and max(values) == 0.0


def test_overlong_defaults_from_max_tokens():
    # cache_length defaults to a fifth of max_length (DAPO: 4096 of 20480).
    ex = {"num_tokens": 4096, "max_tokens": 4096}
    assert overlong_penalty("", ex) == -1.0
    ex = {"num_tokens": 4096 - 819 // 2, "max_tokens": 4096}
    assert overlong_penalty("", ex) == pytest.approx((4096 - 819 - ex["num_tokens"]) / 819)


def test_overlong_errors():
    with pytest.raises(KeyError, match="num_tokens"):
        overlong_penalty("", {"max_tokens": 10})
    with pytest.raises(KeyError, match="max_tokens"):
        overlong_penalty("", {"num_tokens": 10})
    with pytest.raises(ValueError, match="cache_length"):
        ol(5, max_length=10, cache_length=20)
    with pytest.raises(ValueError, match="cache_length"):
        ol(5, max_length=10, cache_length=0)  # no window to ramp over


def test_overlong_window_may_span_the_whole_budget():
    # cache_length == max_length: the penalty ramps from the first token.
    assert [ol(n, max_length=4, cache_length=4) for n in range(6)] == [
        0,
        -0.25,
        -0.5,
        -0.75,
        -1,
        -1,
    ]


def cos(n: int, correct: bool, **params) -> float:
    return cosine_length("", {"num_tokens": n, "correct": correct}, max_length=100, **params)[0]


def test_cosine_correct_positive_and_shorter_is_better():
    values = [cos(n, True) for n in range(0, 101, 5)]
    assert all(v > 0 for v in values)
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    assert values[0] == pytest.approx(1.0) and values[-1] == pytest.approx(0.5)


def test_cosine_wrong_negative_and_longer_is_penalised_less():
    values = [cos(n, False) for n in range(0, 101, 5)]
    assert all(v < 0 for v in values)
    assert all(a < b for a, b in zip(values, values[1:], strict=False))
    assert values[0] == pytest.approx(-1.0) and values[-1] == pytest.approx(-0.5)


def test_cosine_clamps_length():
    assert cos(10_000, True) == cos(100, True)
    assert cos(10_000, False) == cos(100, False)
    assert cos(-5, True) == cos(0, True)


def test_cosine_midpoint():
    assert cos(50, True) == pytest.approx(0.75)
    assert cos(50, False) == pytest.approx(-0.75)


def test_cosine_rejects_flipped_ranges():
    # The open-r1 default for wrong answers (min 0.0, max -0.5) would reward short wrong answers.
    with pytest.raises(ValueError, match="min_value <= max_value"):
        cos(10, False, min_value_wrong=0.0, max_value_wrong=-0.5)
    with pytest.raises(ValueError, match="min_value <= max_value"):
        cos(10, True, min_value_correct=1.0, max_value_correct=0.5)


def test_cosine_correctness_from_the_accuracy_reward():
    right = "<think>2+3</think> <answer>5</answer>"
    ex = {"answer": "5", "num_tokens": 0}
    assert cosine_length(right, ex, max_length=10) == (pytest.approx(1.0), {"correct": True})
    assert cosine_length("<answer>6</answer>", ex, max_length=10)[0] == pytest.approx(-1.0)
    # An explicit `correct` wins over the accuracy reward.
    assert cosine_length(right, {**ex, "correct": False}, max_length=10)[0] == pytest.approx(-1.0)
    countdown = {"numbers": [2, 3], "target": 5, "num_tokens": 0}
    value, _ = cosine_length(
        "<answer>2 + 3</answer>", countdown, max_length=10, accuracy="countdown"
    )
    assert value == pytest.approx(1.0)


def test_cosine_edges_of_its_parameters():
    # A one-token budget is a budget; an empty one is refused by name, not by ZeroDivisionError.
    assert cosine_length("", {"num_tokens": 1, "correct": True}, max_length=1)[0] == 0.5
    with pytest.raises(ValueError, match="max_length must be positive"):
        cosine_length("", {"num_tokens": 1, "correct": True}, max_length=0)
    # equal ends are a flat reward, not a flipped range
    assert cos(30, True, min_value_correct=0.7, max_value_correct=0.7) == pytest.approx(0.7)
    assert cos(30, False, min_value_wrong=-0.7, max_value_wrong=-0.7) == pytest.approx(-0.7)


def test_cosine_needs_num_tokens():
    with pytest.raises(KeyError, match="num_tokens"):
        cosine_length("", {"correct": True})
