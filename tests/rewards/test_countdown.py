"""Countdown: the grammar, each-number-once, exact arithmetic, and hostile equations."""

from __future__ import annotations

import re
import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r1lab.config import ConfigError
from r1lab.rewards import CompositeReward
from r1lab.rewards.countdown import countdown, parse_countdown

EX = {"numbers": [4, 5, 25], "target": 80}


def cd(answer: str, example=EX, **params) -> float:
    return countdown(f"<think>...</think> <answer>{answer}</answer>", example, **params)[0]


@pytest.mark.parametrize(
    "answer",
    ["(25 - 5) * 4", "4*(25-5)", " 4 * ( 25 - 5 ) ", "(25 - 5) * 4 = 80", "-(5 - 25) * 4"],
)
def test_correct(answer):
    assert cd(answer) == 1.0


def test_boxed_answer_without_tags():
    assert countdown("so \\boxed{(25 - 5) * 4}", EX)[0] == 1.0


@pytest.mark.parametrize(
    "answer, reason",
    [
        ("(25 - 5) * 4 = 81", "right-hand side"),
        ("80 = (25 - 5) * 4", "right-hand side"),
        ("(25 - 5) * 4 = 80 = 80", "right-hand side"),
        ("(25 - 5) * 4 == 80", "right-hand side"),
        ("80 = 80", "uses"),  # the target on both sides
        ("25 * 4 - 25", "uses"),  # 25 twice, 5 never
        ("25 * 4", "uses"),  # 5 unused
        ("(25 - 5) * 4 + 0", "uses"),  # a number not given
        ("25 * 4 - 5", "equals"),
        ("(25 - 5) ** 4", "not an arithmetic"),
        ("(25 - 5) // 4", "not an arithmetic"),
        ("(25 - 05) * 4", "not an arithmetic"),  # leading zero
        ("20.0 * 4", "not an arithmetic"),
        ("(25 - 5) x 4", "not an arithmetic"),
        ("__import__('os')", "not an arithmetic"),
        ("4 * (25 - 5", "not an arithmetic"),
        ("", "no answer"),
    ],
)
def test_wrong(answer, reason):
    value, info = countdown(f"<answer>{answer}</answer>", EX)
    assert value == 0.0
    assert reason in info["reason"]


# -- each number exactly once: the numbers are a multiset ------------------------------------
# TinyZero's validate_equation compares sorted lists of the integers written, and so does
# r1lab: TinyZero agrees (scores no reward) on every case below.


@pytest.mark.parametrize(
    "answer, numbers, target",
    [
        ("(25 - 5) * 4 + 5 - 5", [4, 5, 25], 80),  # every number appears, 5 three times
        ("(25 - 5) * 4 * 5 / 5", [4, 5, 25], 80),
        ("4 * 5 * 25 / 25", [4, 5, 25], 20),
        ("(25 - 5) * 4 + 5 - 5", [4, 5, 5, 25], 80),  # 5 given twice, used three times
        ("(25 - 5) * 4", [4, 5, 5, 25], 80),  # 5 given twice, used once
        ("25 * 4", [2, 4, 5], 100),  # 2 and 5 written together are not given
        ("(25 - 5) * 4 * 1", [4, 5, 25], 80),  # 1 is not given
        ("-5 + 25 * 4 - 15", [4, 5, 25], 80),  # 15 is not given
    ],
)
def test_each_given_number_is_used_exactly_as_often_as_given(answer, numbers, target):
    value, info = countdown(f"<answer>{answer}</answer>", {"numbers": numbers, "target": target})
    assert value == 0.0
    assert "uses" in info["reason"]


def test_a_number_given_twice_is_used_twice():
    assert cd("25 * 4 - 5 * 5", {"numbers": [4, 5, 5, 25], "target": 75}) == 1.0
    assert cd("-5 + 25 * 4 - 15", {"numbers": [4, 5, 15, 25], "target": 80}) == 1.0


@pytest.mark.parametrize(
    "answer, numbers, target",
    [
        # Each of these has the target's value; TinyZero scores the first four 1 (its eval
        # takes `**` and `//`, and its digit regex reads 2.5 as the numbers 2 and 5).
        # r1lab's grammar is + - * / on integers only.
        ("3 ** 2 * 1", [1, 2, 3], 9),
        ("25 // 5 * 4", [4, 5, 25], 20),
        ("2.5 * 10", [2, 5, 10], 25),
        ("(25 - 5) * 4.0", [0, 4, 5, 25], 80),
        # TinyZero scores these 0 too: Python's eval refuses them.
        ("(25 - 5) * 04", [4, 5, 25], 80),  # leading zero
        ("(25 - 5) * 4e0", [0, 4, 5, 25], 80),
        ("(25 - 5) * 4 + 1_0 - 10", [1, 4, 5, 10, 25], 80),
        ("(25 - 5)(4)", [4, 5, 25], 80),  # implicit multiplication
        ("(\u0662\u0665 - 5) * 4", [4, 5, 25], 80),  # Arabic-Indic digits 25
        ("(\uff12\uff15 - 5) * 4", [4, 5, 25], 80),  # fullwidth digits 25
        ("(25 \u2212 5) * 4", [4, 5, 25], 80),  # minus sign
        ("(25 - 5) \u00d7 4", [4, 5, 25], 80),  # multiplication sign
        ("(25 - 5) \u00f7 4", [4, 5, 25], 5),  # division sign
        ("(25 - 5)\u00a0* 4", [4, 5, 25], 80),  # no-break space
        ("(25 - 5)\n* 4", [4, 5, 25], 80),
    ],
)
def test_outside_the_grammar_even_with_the_right_value(answer, numbers, target):
    value, info = countdown(f"<answer>{answer}</answer>", {"numbers": numbers, "target": target})
    assert value == 0.0
    assert "not an arithmetic" in info["reason"]


# -- exact value, tabs, negative targets -------------------------------------------------------


def test_the_value_must_equal_the_target_exactly():
    # 50 + 1/99/98/97 is 50.0000010...: within TinyZero's 1e-5 (it scores 1), not the target.
    ex = {"numbers": [1, 50, 97, 98, 99], "target": 50}
    value, info = countdown("<answer>50 + 1/99/98/97</answer>", ex)
    assert value == 0.0
    assert "not 50" in info["reason"] and "941094" in info["reason"]  # the exact value, shown
    assert cd("50 + (99 - 98 - 1) * 97", ex) == 1.0
    assert cd("50 + 1/99/98/97 = 50", ex) == 0.0
    with pytest.raises(ConfigError, match="no param 'tolerance'"):
        CompositeReward({"countdown": 1.0}, params={"countdown": {"tolerance": 1e-5}})


@pytest.mark.parametrize(
    "answer", ["(25\t-\t5)\t*\t4", "4\t* (25 - 5)", "(25 - 5) * 4\t=\t80", "4*(25-5) =\t80"]
)
def test_tabs_are_whitespace(answer):
    assert cd(answer) == 1.0  # TinyZero agrees on the first two (it has no `=`)


def test_a_negative_target_may_be_written_on_the_right():
    ex = {"numbers": [4, 5, 25], "target": -5}
    for answer in ("5 * 4 - 25", "5 * 4 - 25 = -5", "5 * 4 - 25 = - 5", "5*4-25=-5"):
        assert cd(answer, ex) == 1.0, answer
    for answer in ("5 * 4 - 25 = 5", "5 * 4 - 25 = --5", "-5 = 5 * 4 - 25", "5 * 4 - 25 = -05"):
        assert cd(answer, ex) == 0.0, answer
    assert cd("(25 - 5) * 4 = -80") == 0.0


def test_reference_data_must_be_integers():
    # int() would truncate 25.5 to 25 and grade against a problem that was never asked.
    with pytest.raises(ValueError, match="integers"):
        countdown("<answer>1</answer>", {"numbers": [4, 5, 25.5], "target": 80})
    with pytest.raises(ValueError, match="integers"):
        countdown("<answer>1</answer>", {"numbers": [4, 5, 25], "target": 80.5})
    # Integral values in other types are the same numbers.
    assert cd("(25 - 5) * 4", {"numbers": ["4", 5.0, 25], "target": "80"}) == 1.0


def test_equals_suffix_can_be_disallowed():
    assert cd("(25 - 5) * 4 = 80", allow_equals=False) == 0.0


def test_exact_division():
    # 1 / 3 * 3 is exactly 1 with rationals (a float would give 0.9999999999999999).
    assert cd("1 / 3 * 3 + 1", {"numbers": [1, 1, 3, 3], "target": 2}) == 1.0
    assert cd("25 / 5 * 4", {"numbers": [4, 5, 25], "target": 20}) == 1.0
    assert cd("5 / 4 + 25", {"numbers": [4, 5, 25], "target": 26}) == 0.0  # 26.25


def test_division_by_zero_scores_zero():
    assert cd("4 / (5 - 5) + 25", {"numbers": [4, 5, 5, 25], "target": 1}) == 0.0


def test_no_answer_and_missing_fields():
    assert countdown("no tags", EX)[0] == 0.0
    with pytest.raises(KeyError, match="numbers"):
        countdown("<answer>1</answer>", {"target": 1})
    with pytest.raises(KeyError, match="target"):
        countdown("<answer>1</answer>", {"numbers": [1]})


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "answer",
    [
        "1+" * 5000 + "1",  # 10 kB
        "(" * 5000 + "1" + ")" * 5000,
        "(" * 100 + "4" + ")" * 100 + " * (25 - 5)",  # correct, but nested past the cap
        "-" * 5000 + "4",
        "9" * 10_000,
        "99999999999 * " * 20 + "1",
    ],
)
def test_hostile_equations_score_zero_quickly(answer):
    start = time.perf_counter()
    assert cd(answer) == 0.0
    assert time.perf_counter() - start < 0.5


def test_depth_cap():
    nested = "(" * 10 + "25 - 5" + ")" * 10 + " * 4"
    assert cd(nested) == 1.0
    assert cd(nested, max_depth=5) == 0.0
    chained = "4 * 25 - 5 - 5 + 5"  # operators nest in the AST without any parentheses
    assert cd(chained, {"numbers": [4, 5, 5, 25, 5], "target": 95}) == 1.0
    assert cd(chained, {"numbers": [4, 5, 5, 25, 5], "target": 95}, max_depth=3) == 0.0
    # The cap is inclusive: `1 + 2 + 3 + 4` nests three deep ((1 + 2) + 3) + 4, its numbers at 3.
    four = {"numbers": [1, 2, 3, 4], "target": 10}
    assert cd("1 + 2 + 3 + 4", four, max_depth=3) == 1.0
    assert cd("1 + 2 + 3 + 4", four, max_depth=2) == 0.0
    # nested on the right, in parentheses: the same count
    assert cd("1 + (2 + (3 + 4))", four, max_depth=3) == 1.0
    assert cd("1 + (2 + (3 + 4))", four, max_depth=2) == 0.0
    # redundant parentheses, capped on the text: four deep is allowed at 4, not at 3
    assert cd("((((1 + 2)))) + 3 + 4", four, max_depth=4) == 1.0
    assert cd("((((1 + 2)))) + 3 + 4", four, max_depth=3) == 0.0
    # the length cap is inclusive too: 13 characters
    assert cd("1 + 2 + 3 + 4", four, max_chars=13) == 1.0
    assert cd("1 + 2 + 3 + 4", four, max_chars=12) == 0.0


@pytest.mark.parametrize(
    "expr, value",
    [("1 + 2", 3), ("7 / 2", Fraction(7, 2)), ("-(3 - 10)", 7), ("2 * (3 + 4)", 14), ("0", 0)],
)
def test_parse_countdown(expr, value):
    assert parse_countdown(expr) == value


@pytest.mark.parametrize("expr", ["", "1 +", "1 / 0", "2 ** 3", "abs(1)", "1.5", "01", "1 2", "x"])
def test_parse_countdown_rejects(expr):
    assert parse_countdown(expr) is None


# -- properties ------------------------------------------------------------------------------

leaf = st.integers(min_value=0, max_value=100).map(lambda n: (str(n), Fraction(n)))


def _combine(children):
    def make(args):
        (a, va), op, (b, vb) = args
        if op == "/":
            value = None if vb in (None, 0) or va is None else va / vb
        elif va is None or vb is None:
            value = None
        else:
            value = {"+": va + vb, "-": va - vb, "*": va * vb}[op]
        return (f"({a} {op} {b})", value)

    return st.tuples(children, st.sampled_from("+-*/"), children).map(make)


trees = st.recursive(leaf, _combine, max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(trees)
def test_parse_matches_exact_evaluation(tree):
    text, value = tree
    assert parse_countdown(text) == value


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789+-*/() =.x")), max_size=60) | st.text())
def test_no_input_crashes(text):
    value = parse_countdown(text)
    assert value is None or isinstance(value, Fraction)
    assert countdown(f"<answer>{text}</answer>", EX)[0] in (0.0, 1.0)


@settings(max_examples=200, deadline=None)
@given(trees, st.integers(min_value=0, max_value=100), st.sampled_from(["add", "drop", "swap"]))
def test_scores_one_exactly_for_its_own_numbers_and_value(tree, other, change):
    text, value = tree
    if value is None or value.denominator != 1:
        return  # division by zero on the way, or a target that is not an integer
    numbers = [int(n) for n in re.findall(r"[0-9]+", text)]
    ex = {"numbers": numbers, "target": int(value)}
    assert cd(text, ex) == 1.0
    assert cd(text, {**ex, "target": int(value) + 1}) == 0.0
    # Any other multiset of numbers, even one with the same set of values, scores 0.
    changed = {
        "add": numbers + [other],
        "drop": numbers[1:],
        "swap": numbers[1:] + [numbers[0] + 1],
    }[change]
    assert cd(text, {**ex, "numbers": changed}) == 0.0
