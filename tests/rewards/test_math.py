"""Math accuracy: answer extraction, reference normalisation, equivalence, and hostile answers."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r1lab.rewards.math import (
    extract_answer,
    last_boxed,
    math_accuracy,
    math_equal,
    nesting_depth,
    reference_answer,
)


def acc(completion: str, answer) -> float:
    return math_accuracy(completion, {"answer": answer})[0]


# -- extraction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("<think>2+3</think> <answer>5</answer>", "5"),
        ("<think>x</think><answer> \\boxed{7} </answer>", "7"),
        ("<answer>first</answer> then <answer>last</answer>", "last"),
        ("so the answer is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("\\boxed{1} and finally \\boxed{2}", "2"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("\\boxed{3} then \\boxed{4", "3"),  # truncated last box: the one before it
        ("\\boxed 5 apples", "5"),
        ("\\fbox{6}", "6"),
        ("\\boxed{a{b}c}", "a{b}c"),
        ("no answer here", None),
        ("<answer>   </answer>", None),
        ("<answer>unclosed", None),
        ("", None),
    ],
)
def test_extract_answer(completion, expected):
    assert extract_answer(completion) == expected


def test_last_boxed_stays_linear_on_many_unclosed_boxes():
    text = "\\boxed{" * 20_000
    start = time.perf_counter()
    assert last_boxed(text) is None
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    "ref, expected",
    [
        ("Natalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72", "72"),
        ("... so in total\n#### 1,234", "1234"),
        ("#### $18", "18"),
        ("The area is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        (42, "42"),
        (0.5, "0.5"),
        (" 7 ", "7"),
    ],
)
def test_reference_answer(ref, expected):
    assert reference_answer(ref) == expected


def test_nesting_depth():
    assert nesting_depth("\\frac{\\sqrt{2}}{2}") == 2
    assert nesting_depth("(1, 2]") == 1
    assert nesting_depth("))((") == 2


# -- equivalence -----------------------------------------------------------------------------

EQUAL = [
    ("1/2", "0.5"),
    ("\\frac{1}{2}", "\\dfrac12"),
    ("0.5", "\\frac{1}{2}"),
    ("\\frac12", "1/2"),
    ("5", "5.0"),
    ("5", "$5$"),
    ("1234", "1,234"),
    ("-3", "- 3"),
    ("\\sqrt{2}/2", "\\frac{\\sqrt2}{2}"),
    ("(x+1)^2", "x^2 + 2x + 1"),
    ("x^2", "x**2"),
    ("(1, 2]", "\\left(1, 2\\right]"),
    ("[0, \\infty)", "[0,\\infty)"),
    ("\\{1, 2\\}", "\\{2, 1\\}"),
    ("1, 2", "2, 1"),
    ("10\\%", "0.1"),
    ("18", "18 dollars"),
    ("42", "The answer is 42."),
    ("5", "x = 5"),
    ("\\text{(B)}", "B"),
]
UNEQUAL = [
    ("1/2", "1/3"),
    ("0.5", "0.51"),
    ("(1, 2]", "[1, 2]"),
    ("(1, 2]", "(1, 2)"),
    ("\\{1, 2\\}", "\\{1, 3\\}"),
    ("x + 1", "x + 2"),
    ("72", "96"),
    ("5", ""),
    ("", "5"),
]


@pytest.mark.parametrize("gold, pred", EQUAL)
def test_equal(gold, pred):
    assert math_equal(gold, pred)


@pytest.mark.parametrize("gold, pred", UNEQUAL)
def test_unequal(gold, pred):
    assert not math_equal(gold, pred)


def test_gold_goes_first():
    # math-verify compares a relation with an interval only when the *prediction* is the set.
    assert acc("<answer>(1, 2)</answer>", "1 < x < 2") == 1.0
    assert acc("<answer>1 < x < 2</answer>", "(1, 2)") == 0.0


# -- the reward ------------------------------------------------------------------------------


def test_bare_number_in_answer_tags():
    assert acc("<think>2 + 3 = 5</think> <answer>5</answer>", "5") == 1.0


def test_gsm8k_and_math_references():
    assert acc("<answer>1,234</answer>", "so\n#### 1,234") == 1.0
    assert acc("<answer>1234</answer>", "so\n#### 1,234") == 1.0
    assert acc("<answer>\\dfrac12</answer>", "Hence $\\boxed{\\frac{1}{2}}$.") == 1.0
    assert acc("<answer>0.25</answer>", "Hence $\\boxed{\\frac{1}{2}}$.") == 0.0


def test_boxed_without_tags_counts():
    assert acc("Thinking... the answer is \\boxed{12}.", 12) == 1.0


def test_no_answer_scores_zero_with_reason():
    value, info = math_accuracy("I don't know", {"answer": "5"})
    assert value == 0.0 and info["reason"] == "no answer"


def test_missing_reference_is_an_error():
    with pytest.raises(KeyError, match="answer"):
        math_accuracy("<answer>5</answer>", {"question": "?"})
    assert math_accuracy("<answer>5</answer>", {"ref": "5"}, answer_key="ref")[0] == 1.0


def test_unicode_and_empty_completions():
    assert acc("<answer>５</answer>", "5") in (0.0, 1.0)  # must not crash
    assert acc("", "5") == 0.0
    assert acc("<answer>答案是 5</answer>", "5") == 1.0


# -- hostile answers: 0, fast, in this process -----------------------------------------------

HOSTILE = {
    "power tower": "9^{9^{9^{9}}}",
    "plain power tower": "9^9^9^9",
    "python power tower": "9**9**9**9",
    "huge factorial": "(10^{10})!",
    "huge expansion": "(x+1)^{100000}",
    "100 kB answer": "1+" * 50_000 + "1",
    "deep nesting": "\\frac{" * 300 + "1" + "}{2}" * 300,
    "deep parentheses": "(" * 60 + "1" + ")" * 60,
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_answers_score_zero_quickly(name):
    start = time.perf_counter()
    assert acc(f"<answer>{HOSTILE[name]}</answer>", "2") == 0.0
    assert time.perf_counter() - start < 1.5


def test_guards_report_their_reason():
    value, info = math_accuracy("<answer>" + "1" * 2000 + "</answer>", {"answer": "1"})
    assert value == 0.0 and "longer" in info["reason"]
    value, info = math_accuracy(
        "<answer>" + "(" * 20 + "1" + ")" * 20 + "</answer>", {"answer": "1"}
    )
    assert value == 0.0 and "nested" in info["reason"]


def test_works_off_the_main_thread():
    # math-verify's SIGALRM timeouts raise ValueError off the main thread unless disabled.
    out = {}
    t = threading.Thread(target=lambda: out.update(v=acc("<answer>\\frac{2}{4}</answer>", "0.5")))
    t.start()
    t.join(30)
    assert out == {"v": 1.0}


def test_importing_rewards_does_not_import_torch():
    code = "import sys, r1lab.rewards; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_no_completion_crashes(text):
    value, _ = math_accuracy(text, {"answer": "5"})
    assert value in (0.0, 1.0)
