"""Math accuracy: answer extraction, reference normalisation, equivalence, and hostile answers."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r1lab.rewards.math import (
    MAX_ANSWER_CHARS,
    MAX_DEPTH,
    MAX_DIGITS,
    MAX_NUMBERS,
    MAX_POWERS,
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
        # Boxes written together are one answer; a box after other words starts a new one.
        ("\\boxed{1} and \\boxed{-2}", "1, -2"),
        ("$\\boxed{1}$, $\\boxed{2}$ or $\\boxed{3}$.", "1, 2, 3"),
        ("\\(\\boxed{1}\\) \\quad\\text{and}\\quad \\(\\boxed{2}\\)", "1, 2"),
        ("\\boxed{1}\\boxed{2}", "1, 2"),
        ("\\boxed{4} so \\boxed{4}, \\boxed{4}", "4"),
        ("\\boxed{1} no, wait: \\boxed{2}", "2"),
        ("<answer>\\boxed{1} or \\boxed{2}</answer>", "1, 2"),
        ("<answer>\\boxed{1}. No, wait: \\boxed{2}</answer>", "1, 2"),  # in the tags, all count
        ("\\boxed{} \\boxed{2}", None),  # an empty box is no answer, not the answer 2
        ("<answer>\\boxed{2}\\boxed{}</answer>", None),
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
        ("so $\\fbox{7}$.", "7"),
        ("$\\boxed{1}$ and $\\boxed{-2}$.", "1, -2"),
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
    assert nesting_depth("(a)(b)((c))") == 2  # a closed bracket gives its level back


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
    ("3", "**3**"),
    ("120", "5!"),
    ("120", "The answer is 5!"),
    ("x^2", "The answer is **x**2**."),
    ("(1, 2]", "\\left(1, 2\\right]"),
    ("[0, \\infty)", "[0,\\infty)"),
    ("\\{1, 2\\}", "\\{2, 1\\}"),
    ("1, 2", "2, 1"),
    ("10\\%", "0.1"),
    ("18", "18 dollars"),
    ("42", "The answer is 42."),
    ("5", "x = 5"),
    ("\\text{(B)}", "B"),
    # Structured answers compared whole.
    ("\\begin{pmatrix} 2 \\\\ -1 \\end{pmatrix}", "\\begin{pmatrix}2\\\\-1\\end{pmatrix}"),
    ("19, 46, and 82", "19, 46, \\text{ and } 82"),
    ("1, -2", "-2 \\text{ and } 1"),
    ("$1$ and $2$ and $3$", "3, 2, 1"),
    ("x = 1 or x = 2", "x = 2, x = 1"),
    ("\\pm 2", "-2, 2"),
    ("(1, 2), (3, 4)", "(3,4), (1,2)"),
    ("AB = 4, CD = 5", "4, 5"),
    # Text answers compared as text.
    ("\\text{odd}", "odd"),
    ("odd", "\\textbf{Odd}"),
    ("\\text{Evelyn}", "Evelyn."),
    ("28\\%", "28 percent"),
    ("0.4", ".4"),
    ("34", "Final answer: the largest $n$ is 34."),
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
    ("\\text{odd}", "even"),
    ("\\text{odd}", "not odd"),
    ("5", "five"),
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


# -- false positives: what a policy under RL would try ---------------------------------------
# (gold, answer inside <answer> tags, expected reward). A structured gold is compared whole, an
# answer listing several values never matches a single value, and an answer that cannot be read
# faithfully scores 0.

HACKS = [
    # Issue 10's cases: the last number of a structured or multi-valued gold.
    ("\\begin{pmatrix} 2 \\\\ -1 \\end{pmatrix}", "-1", 0),
    ("\\begin{pmatrix} 5 \\\\ -1 \\end{pmatrix}", "-1", 0),
    ("19, 46, and 82", "82", 0),
    ("$\\boxed{1}$ and $\\boxed{-2}$.", "-2", 0),
    ("$1$ and $2$", "2", 0),
    ("$1$ and $2$ and $3$", "3", 0),
    ("1331 and 1728", "1728", 0),  # huggingface/Math-Verify#47: verify() is any-match
    ("\\text{odd}", "odd", 1),
    ("$1$ and $2$ and $3$", "\\boxed{1,2,3}", 1),
    ("$\\boxed{1}$ and $\\boxed{-2}$.", "\\boxed{-2}, \\boxed{1}", 1),
    ("S_{MBCN}:S=7:32", "7:32", 1),
    # Partial answers against a structured gold.
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "2", 0),
    # Several candidates against one value.
    ("2", "\\boxed{1}\\boxed{2}", 0),
    ("3", "\\boxed{1}, \\boxed{2}, \\boxed{3}", 0),
    ("2", "\\boxed{1} or \\boxed{2}", 0),
    ("3", "\\boxed{2} \\text{ hmm } \\boxed{3}", 0),
    ("3", "\\boxed{2} / \\boxed{3}", 0),
    ("3", "\\boxed{2}\\hspace{1cm}\\boxed{3}", 0),
    ("3", "2 and 3", 0),
    ("3", "2 (or 3)", 0),
    ("3", "2, or maybe 3", 0),
    ("(1, 3)", "1 or 3", 0),
    ("(1, 3)", "1, 3", 0),  # an interval or a point is one value; a list of two is not it
    # Prose: the last number is not the answer.
    ("82", "19 then 82", 0),
    ("2", "3, not 2", 0),
    ("2", "It is not 3, it is 2", 0),
    ("1000", "the number is 10 which is 1000", 0),
    ("5", "The answer is 5!", 0),  # 120
    ("2", "at least 2", 0),
    ("2", "2 or more", 0),
    # A qualifier after a braced group is still outside it (braces close: depth 0 again).
    ("1/2", "\\frac{1}{2} \\text{ or more}", 0),
    ("1/2", "\\frac{1}{2} at most", 0),
    ("2", "x_{1} = 2 \\text{ at least}", 0),
    ("2", "\\sqrt{4} negative", 0),
    # An approximation of a percentage: 50% is 0.5 (the percent parses unevaluated).
    ("0.5", "50\\% \\approx 0.5", 1),
    ("0.5", "50\\% \\approx 0.6", 0),
    # Rounded to the decimals the approximation shows (none: within 0.5).
    ("7.4", "7.4 \\approx 7", 1),
    ("7.6", "7.6 \\approx 7", 0),
    # A phantom takes room and shows nothing: `\\phantom{4}+3` is no 7, nor a 3 to trust.
    ("7", "\\phantom{4}+3", 0),
    ("3", "\\phantom{4}+3", 0),
    # An operation's braced operand is a value, not a hidden one.
    ("12", "3 \\cdot {4}", 1),
    ("2", "approximately 2", 0),
    ("2", "negative 2", 0),
    ("2", "2 thousand", 0),
    ("2", "2 \\text{ for } n \\text{ even}", 0),
    ("2", "If n is even, 2", 0),
    # An empty box beside the answer.
    ("2", "\\boxed{} \\boxed{2}", 0),
    # A second value math-verify drops or merges: every value shown must be accounted for.
    # Inside text or another font (math-verify drops text, and reads `\mathbf{4}` half).
    ("3", "3 \\text{(or 4)}", 0),
    ("3", "3 \\text{ (maybe 4)}", 0),
    ("3", "3 \\textbf{or 4}", 0),
    ("3", "3 \\mbox{ or 4}", 0),
    ("3", "3 \\textit{alternatively 4}", 0),
    ("3", "3 \\text{4}", 0),
    ("3", "3\\text{ 4}", 0),
    ("3", "3 \\text{4.}", 0),
    ("3", "3 \\text{#4}", 0),
    ("3", "3 \\ \\text{(}4\\text{)}", 0),
    ("3", "3 \\mathbf{4}", 0),
    ("3", "3\\mathrm{4}", 0),
    ("3", "3 \\mathit{4}", 0),
    ("3", "3 \\textnormal{4}", 0),
    ("3", "3 \\,\\text{or}\\,\\textbf{4}", 0),
    ("3", "3 \\text{\\,or\\,4}", 0),
    ("3", "3 \\text{\\textbf{4}}", 0),
    ("3", "3 \\\\\\text{(or 4)}", 0),
    # Beside it with nothing between: read as a sum (`1 2` is 3, `{3}{4}` is 7).
    ("3", "1 2", 0),
    ("7", "{3}{4}", 0),
    ("7", "3 '4'", 0),
    ("3", "\\boxed{\\boxed{3} 4}", 0),
    ("7", "3(4)", 0),
    ("7", "(3)\\;(4)", 0),
    ("7", "3\\;\\binom{4}{1}", 0),
    ("403", "3 400", 0),
    ("7", "3^\\circ4", 0),
    ("2", "1^{\\prime}2", 0),
    ("3", "3 \\\\mathbf{4}", 0),  # math-verify reads the doubled backslash as one
    # As a subscript, or on the far side of a relation other than `=`.
    ("3", "3_{4}", 0),
    ("3", "3_4", 0),
    ("3", "3 \\approx 4", 0),
    ("3", "3 ≈ 4", 0),
    ("4", "3 \\equiv 4", 0),
    # Right answers in every dress above still score.
    ("3", "\\text{3}", 1),
    ("3", "\\mathbf{3}", 1),
    ("3", "\\textbf{3} \\text{ apples}", 1),
    ("5", "5\\text{ cm}^2", 1),
    ("1000", "1{,}000", 1),
    ("3", "\\log_2 8", 1),
    ("10", "\\binom{5}{2}", 1),
    ("\\frac{\\sqrt{2}}{2}", "\\frac{\\sqrt2}{2}", 1),
    ("2", "\\sqrt[3]{8}", 1),
    ("\\begin{pmatrix} 3 \\\\ 4 \\end{pmatrix}", "\\begin{pmatrix}3\\\\4\\end{pmatrix}", 1),
    ("3", "x \\approx 3", 1),
    ("1/3", "x = \\frac{1}{3} \\approx 0.333", 1),
    ("\\pi", "\\pi \\approx 3.14", 1),
    ("1/3", "x = 1/3 \\approx 1.3", 0),  # an approximation that is not one: two values
    ("3", "x = 3 \\approx 4", 0),
    ("5", "12 \\in (5)", 0),
    ("4", "2 + 2 = 4", 1),
    ("3", "x = \\frac{6}{2} = 3", 1),
    # A value math-verify drops without any listed rule noticing: changing it changes nothing.
    ("2", "26'\\parallel\\frac{2}{1}", 0),
    ("6", "69'\\left.\\right|\\frac{6}{1}", 0),
    ("1 < x < 2", "(1, 2)", 1),
    ("12", "3 \\times 4", 1),
    ("14", "2(3+4)", 1),
    ("1.5", "1\\frac{1}{2}", 1),
    ("0.5", "\\frac 1 2", 1),
    ("1", "\\frac3{3}", 1),
    ("30", "30^\\circ", 1),
]

# Already 0 before the fix (math-verify reads these whole); kept so that the new reading of
# prose, boxes and "or" cannot open them.
GUARDS = [
    ("5", "5!", 0),
    ("S_{MBCN}:S=7:32", "32", 0),
    ("(3, 4)", "4", 0),
    ("x = 1 or x = 2", "2", 0),
    ("x = 1, y = 2", "y = 2", 0),
    ("\\pm 3", "3", 0),
    ("\\{1, 2, 3\\}", "\\{1, 3\\}", 0),
    ("19, 46, and 82", "19, 46", 0),
    ("19, 46, and 82", "19, 46, 82, 100", 0),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "(1, 2)", 0),
    ("2", "1 or 2 or 3", 0),
    ("3", "x = 2 \\text{ or } 3", 0),
    ("3", "1, 2, 3", 0),
    ("2", "1; 2", 0),
    ("2", "1 \\quad 2", 0),
    ("2", "x \\in \\{1, 2, 3\\}", 0),
    ("3", "\\boxed{2 \\text{ or } 3}", 0),
    ("\\frac{1}{3}", "1/2 or 1/3", 0),
    ("x=2", "x = 1 or x = 2", 0),
    ("2", "\\pm 2", 0),
    ("-2", "\\pm 2", 0),
    ("2", "2 \\pm 1", 0),
    ("39", " or ".join(str(i) for i in range(40)), 0),
    ("2", "(1, 3)", 0),
    ("2", "[2, 3]", 0),
    ("2", "x \\ge 2", 0),
    ("2", "1 < x < 3", 0),
    ("1 < x < 3", "x > 1", 0),
    ("x > 1", "x > 1 or x \\le 1", 0),
    ("2", "x \\in \\mathbb{R}", 0),
    ("4", "2 squared", 0),
    ("2", "\\text{not } 2", 0),
    ("\\text{odd}", "\\text{odd or even}", 0),
    ("2", "\\boxed{2} \\boxed{}", 0),
    # Values hidden in formatting, spacing, comments or other digits: 0 before and after.
    ("3", "3 \\color{red}{4}", 0),
    ("4", "3 \\color{red}4", 0),
    ("3", "3 \\tag{4}", 0),
    ("3", "3 \\phantom{4}", 0),
    ("3", "3 \\overset{4}{}", 0),
    ("3", "3 \\underbrace{}_{4}", 0),
    ("3", "3 \\,4", 0),
    ("3", "3~4", 0),
    ("3", "3 <!-- 4 -->", 0),
    ("3", "3 ~~4~~", 0),
    ("3", "3 ４", 0),
    ("3", "3³", 0),
    ("3", "3 % 4", 0),
    ("4", "3 \\ne 4", 0),
]


@pytest.mark.parametrize("gold, answer, expected", HACKS + GUARDS)
def test_reward_hacks_and_structured_answers(gold, answer, expected):
    assert acc(f"<think>...</think> <answer>{answer}</answer>", gold) == expected


def test_several_boxes_without_tags_are_one_answer():
    assert acc("So \\boxed{1} and \\boxed{2}.", "2") == 0.0
    assert acc("So \\boxed{1} and \\boxed{2}.", "1, 2") == 1.0
    assert acc("So \\boxed{1}\\boxed{2}", "\\boxed{2}") == 0.0
    # A box after more reasoning is a new final answer, not a second candidate.
    assert acc("I guess \\boxed{1}. No: redoing it gives \\boxed{2}.", "2") == 1.0


def test_the_answer_block_wins_over_boxes_outside_it():
    # One answer per completion: a second value outside the tags is never a second chance.
    assert acc("<answer>1</answer> or maybe \\boxed{2}", "2") == 0.0
    assert acc("\\boxed{2} <answer>1</answer>", "2") == 0.0
    assert acc("\\boxed{2} <answer>1</answer>", "1") == 1.0


@pytest.mark.parametrize(
    "gold, answer, reason",
    [
        ("2", "1 or 2", "number of values: answer 2, reference 1"),
        ("\\{1,2\\}", "1", "number of values: answer 1, reference 2"),
        ("2", "3, not 2", "answer ambiguous: formulas separated by words"),
        ("5", "$ $", "empty answer"),
        ("", "5", "empty answer"),
        ("5", "odd", "text answer, math reference"),
        ("odd", "5", "math answer, text reference"),
        ("odd", "even", "not equal"),
        ("5", "6", "not equal"),
        ("?", ";", "reference does not parse"),  # punctuation alone is no answer, not text
        ("5", "\\frac{", "answer does not parse"),
        ("\\frac{", "5", "reference does not parse"),
        ("5", "５", "answer ambiguous: a digit that is not 0-9"),
        ("5", "五", "answer ambiguous: a digit that is not 0-9"),  # numeric, not a digit
        ("5", "Ⅴ", "answer ambiguous: a digit that is not 0-9"),
        ("5", "\\text{(or 4)}5", "answer ambiguous: a digit in text or formatting"),
        ("5", "3 4", "answer ambiguous: two numbers side by side"),
        ("5", "5_2", "answer ambiguous: a number with a subscript"),
        ("2", "{3}_{1}", "answer ambiguous: a subscript holding a digit under a group"),
        ("2", "3 < 2", "answer ambiguous: a relation between two values"),
        ("5", "3 \\approx 4", "answer ambiguous: an approximation that is not one"),
        (
            "2",
            "26\\parallel\\frac{2}{1}",
            "answer ambiguous: the number 26 does not change the value",
        ),
    ],
)
def test_a_zero_says_why(gold, answer, reason):
    # Each way to miss has its own reason: the reason is what a user reads to trust a zero.
    value, info = math_accuracy(f"<answer>{answer}</answer>", {"answer": gold})
    assert (value, info["reason"]) == (0.0, reason)


_NUMBER = st.integers(-50, 50)
_JOIN = st.sampled_from([", ", " or ", " and ", "\\text{ or }", "; ", " \\quad "])


@settings(max_examples=40, deadline=None)
@given(st.lists(_NUMBER, min_size=2, max_size=5, unique=True), _JOIN, st.booleans())
def test_several_values_never_match_one(values, join, boxed):
    items = [f"\\boxed{{{v}}}" if boxed else str(v) for v in values]
    several = join.join(items)
    for v in values:
        assert not math_equal(str(v), several)
        assert not math_equal(several, str(v))


@settings(max_examples=40, deadline=None)
@given(_NUMBER, _NUMBER, st.sampled_from(["then", "hmm", "apples", "because", "wait"]))
def test_two_numbers_in_prose_match_neither(a, b, word):
    if a != b:
        assert not math_equal(str(b), f"{a} {word} {b}")
        assert not math_equal(str(a), f"{a} {word} {b}")


@settings(max_examples=30, deadline=None)
@given(_NUMBER)
def test_one_value_in_any_dress_matches(v):
    for dress in (f"${v}$", f"\\boxed{{{v}}}", f"The answer is {v}.", f"x = {v}", f"{v} apples"):
        assert math_equal(str(v), dress), dress


# A wrapper that hides, merges or relates a second value `b` beside the answer `a`.
_HIDERS = [
    "\\text{{{b}}}",
    "\\text{{ (or {b})}}",
    "\\textbf{{or {b}}}",
    "\\textit{{{b}}}",
    "\\mbox{{ {b}}}",
    "\\mathbf{{{b}}}",
    "\\mathrm{{{b}}}",
    "\\boldsymbol{{{b}}}",
    "\\operatorname{{{b}}}",
    "\\emph{{{b}}}",
    "\\color{{red}}{{{b}}}",
    "\\tag{{{b}}}",
    "\\phantom{{{b}}}",
    "\\cancel{{{b}}}",
    "\\underbrace{{}}_{{{b}}}",
    "\\stackrel{{{b}}}{{}}",
    "_{{{b}}}",
    "\\approx {b}",
    "\\sim {b}",
    "\\neq {b}",
    "\\to {b}",
    "\\Rightarrow {b}",
    "\\,{b}",
    "\\;{b}",
    "\\ {b}",
    "~{b}",
    " {b}",
    "{{{b}}}",
    "({b})",
    "\\left[{b}\\right]",
    "^\\circ {b}",
    "\\hspace{{1em}}{b}",
]


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 999), st.integers(0, 999), st.sampled_from(_HIDERS), st.booleans())
def test_a_hidden_second_value_matches_neither(a, b, hider, after):
    if a == b:
        return
    hidden = hider.format(b=b)
    answer = f"{a} {hidden}" if after else f"{hidden} {a}"
    for gold in (a, b, a + b):
        assert acc(f"<answer>{answer}</answer>", str(gold)) == 0.0, (answer, gold)


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
    "many boxes": "\\boxed{1}" * 5_000,
    # Named constants and exponentials: bounded by 10 and e^|a| (their digits are not computed).
    "floor of a power of pi": "\\lfloor \\pi^{10^{7}} \\rfloor",
    "floor of an exponential": "\\lfloor e^{10^{7}} \\rfloor",
    "floor of a hyperbolic cosine": "\\lfloor \\cosh(10^{7}) \\rfloor",
    "huge binomial": "\\binom{10^{7}}{5 \\cdot 10^{6}}",
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", list(HOSTILE))
# Alone, and as a side of an approximation, whose sides are compared before the whole answer's
# digits guard (`9^{9^{9^{9}}} \\approx 2` hung there).
@pytest.mark.parametrize("form", ["{}", "{} \\approx 2", "x = {} \\approx 2"])
def test_hostile_answers_score_zero_quickly(name, form):
    start = time.perf_counter()
    assert acc(f"<answer>{form.format(HOSTILE[name])}</answer>", "2") == 0.0
    assert time.perf_counter() - start < 1.5


@pytest.mark.timeout(60)
def test_a_tower_deep_enough_to_overflow_sympy_scores_zero():
    # 341 levels, 681 characters: under every length and nesting limit, and sympy's own
    # recursion overflows on the parsed tower (issue 10, section 2).
    tower = "^".join(["2"] * 341)
    start = time.perf_counter()
    value, info = math_accuracy(f"<answer>{tower}</answer>", {"answer": "2"})
    assert value == 0.0 and "powers" in info["reason"]
    assert time.perf_counter() - start < 1.5
    # Behind that cheap guard, the size guard holds it too, where sympy's recursion overflowed.
    from math_verify import LatexExtractionConfig, parse

    from r1lab.rewards.math import _read, _too_big

    config = [LatexExtractionConfig(boxed_match_priority=0)]
    parsed = parse(f"\\boxed{{{tower}}}", config, fallback_mode="no_fallback")[0]
    assert _too_big(parsed, MAX_DIGITS)
    # And the faithfulness check does not parse it once per number: 341 numbers is too many.
    assert _read(tower, None).kind == "ambiguous"


def test_the_size_bound_gives_up_on_expressions_nested_past_60_levels():
    # Past 60 levels the bound is infinite (too big to compute) rather than a deep recursion;
    # at 60 it still bounds: 7 plus sixty symbols is a number of about 61 digits' bound.
    import sympy

    from r1lab.rewards.math import _log10_bound

    def nested(levels: int) -> sympy.Expr:
        expr = sympy.Integer(7)
        for _ in range(levels):
            expr = sympy.Add(expr, sympy.Symbol("y"), evaluate=False)
        return expr

    assert _log10_bound(nested(60)) == pytest.approx(60 + math.log10(7))
    assert _log10_bound(nested(61)) == math.inf


def _number_expressions():
    import sympy

    leaves = st.one_of(
        st.integers(-999, 999).map(sympy.Integer),
        st.integers(-(10**80), 10**80).map(sympy.Integer),  # past a float's exact integers
        st.floats(-1e6, 1e6, allow_nan=False).map(sympy.Float),
        st.sampled_from([sympy.pi, sympy.E, sympy.I, sympy.GoldenRatio, sympy.EulerGamma]),
    )
    small = st.integers(0, 6).map(sympy.Integer)
    # Exponentials and binomials of leaves (of a sum, e^{e^{10^{80}}} would take forever here).
    argument = st.one_of(
        st.integers(-999, 999).map(sympy.Integer),
        st.floats(-1e3, 1e3, allow_nan=False).map(sympy.Float),
        st.sampled_from([sympy.pi, sympy.E, sympy.I]),
    )
    functions = st.one_of(
        st.integers(0, 300).map(lambda n: sympy.factorial(n, evaluate=False)),
        argument.map(lambda a: sympy.exp(a, evaluate=False)),
        argument.map(lambda a: sympy.cosh(a, evaluate=False)),
        st.tuples(st.integers(-300, 300), st.integers(-300, 300)).map(
            lambda nk: sympy.binomial(*nk, evaluate=False)
        ),
    )

    def node(children):
        pair = st.tuples(children, children)
        return st.one_of(
            pair.map(lambda ab: sympy.Add(*ab, evaluate=False)),
            pair.map(lambda ab: sympy.Mul(*ab, evaluate=False)),
            st.tuples(children, small).map(lambda ab: sympy.Pow(*ab, evaluate=False)),
        )

    return st.recursive(leaves | functions, node, max_leaves=6)


@settings(max_examples=200, deadline=None)
@given(_number_expressions())
def test_the_size_bound_is_never_below_the_value(expr):
    # The digits guard refuses on this bound, so a bound under the value would let a huge number
    # be computed: sums, products, powers, exponentials and binomials of integers, floats and
    # named constants (pi, e, i), left unevaluated as parsed.
    import sympy

    from r1lab.rewards.math import _log10_bound

    value = abs(sympy.N(expr.doit(), 30))
    if value.is_finite and value != 0:
        assert _log10_bound(expr) >= float(sympy.log(value, 10)) - 1e-9


def test_guards_report_their_reason():
    value, info = math_accuracy("<answer>" + "1" * 2000 + "</answer>", {"answer": "1"})
    assert value == 0.0 and "longer" in info["reason"]
    value, info = math_accuracy(
        "<answer>" + "(" * 20 + "1" + ")" * 20 + "</answer>", {"answer": "1"}
    )
    assert value == 0.0 and "nested" in info["reason"]


def test_each_guard_refuses_exactly_past_its_limit():
    # A right answer at each limit is still graded; one step past it is refused with the reason.
    # (The limits are the module's constants: a limit that drifts by one fails here.)
    def graded(answer: str, gold: str) -> tuple[float, str]:
        value, info = math_accuracy(f"<answer>{answer}</answer>", {"answer": gold})
        return value, info.get("reason", "")

    n = MAX_ANSWER_CHARS
    assert graded("0" * (n - 1) + "1", "1") == (1.0, "")
    assert graded("0" * n + "1", "1") == (0.0, f"answer longer than {n} chars")
    d = MAX_DEPTH
    assert graded("(" * d + "1" + ")" * d, "1") == (1.0, "")
    assert graded("(" * (d + 1) + "1" + ")" * (d + 1), "1") == (
        0.0,
        f"answer nested deeper than {d}",
    )
    # The same limits hold between two answers (majority voting compares predictions), on
    # either side: an answer past them equals nothing.
    for long in ("0" * n + "1", "(" * (d + 1) + "1" + ")" * (d + 1)):
        assert not math_equal("1", long) and not math_equal(long, "1")
    k = MAX_NUMBERS
    assert graded("+".join(["1"] * k), str(k)) == (1.0, "")
    assert graded("+".join(["1"] * (k + 1)), str(k + 1)) == (
        0.0,
        f"answer ambiguous: more than {k} numbers",
    )
    # Powers: a product of p factors a^b is a^{pb} (the reference side holds the powers).
    for p, equal in ((MAX_POWERS, True), (MAX_POWERS + 1, False)):
        assert math_equal(" \\cdot ".join(["a^{b}"] * p), f"a^{{{p} b}}") is equal
    # Digits: 10^{MAX_DIGITS + 1} is bounded at MAX_DIGITS + 1 digits, one over.
    over = f"10^{{{MAX_DIGITS + 1}}}"
    assert math_equal(f"10^{{{MAX_DIGITS - 1}}}", f"{{10}}^{{{MAX_DIGITS - 1}}}")
    assert not math_equal(over, "{10}" + over[2:])


def test_a_truncated_last_box_falls_back_at_most_four_boxes_and_joins_at_most_64():
    # A completion cut inside its boxes: the last closed box is found among the last four.
    for unclosed, found in ((3, "7"), (4, None)):
        assert last_boxed("\\boxed{7}" + " \\boxed{" * unclosed) == found
    boxes = "".join(f"\\boxed{{{i}}}" for i in range(70))
    assert last_boxed(boxes).split(", ") == [str(i) for i in range(6, 70)]


@pytest.mark.parametrize(
    "text, box",
    [
        ("\\boxed{\\boxed{3} 4}", "\\boxed{3} 4"),
        ("x \\boxed{\\boxed{3}}", "\\boxed{3}"),
        ("\\boxed{\\boxed{3} \\boxed{4}}", "\\boxed{3} \\boxed{4}"),
        ("\\boxed{1}, so finally \\boxed{\\boxed{2} 4}", "\\boxed{2} 4"),
    ],
)
def test_a_box_in_a_box_is_part_of_the_outer_box(text, box):
    # The final answer is the outer box, whatever it holds; never a box written before it.
    assert last_boxed(text) == box
    assert acc(text, "1") == 0.0


@pytest.mark.parametrize(
    "text, stripped",
    [
        ("5.", "5"),
        ("5. .", "5"),
        ("x = 5 .", "x = 5"),
        ("5...", "5..."),  # an ellipsis is not a full stop
        ("$5$", "5"),
        ("\\(5\\)", "5"),
        ("\\[ 5 \\]", "5"),
        ("\\$5", "\\$5"),  # an escaped dollar is a currency sign, not a delimiter
        ("**5**", "5"),  # markdown bold
        ("x**2", "x**2"),  # Python's power
    ],
)
def test_delimiters_bold_and_a_final_full_stop_are_not_the_answer(text, stripped):
    from r1lab.rewards.math import _strip_delims

    assert _strip_delims(text) == stripped


def test_a_comparison_that_raises_is_unequal(monkeypatch):
    # sympy can raise anything on hostile input; a raise is never a match.
    import math_verify

    def raises(*args, **kwargs):
        raise RuntimeError("sympy gave up")

    from r1lab.rewards.math import _compare

    monkeypatch.setattr(math_verify, "verify", raises)
    _compare.cache_clear()  # a cached comparison would not call verify at all
    try:
        assert not math_equal("2.0", "2.00")
        assert math_accuracy("<answer>2.00</answer>", {"answer": "2.0"}) == (
            0.0,
            {"pred": "2.00", "reason": "not equal"},
        )
    finally:
        _compare.cache_clear()  # nor may the patched results outlive the patch


def test_the_answer_shown_in_info_is_cut_at_80_characters():
    long = "0" * 100 + "75"
    spaced = "75" + "\\," * 40 + " + 0"  # equal, but left to compute
    for answer, gold, literal in ((long, "75", False), (long, "76", False), (spaced, "75", True)):
        info = math_accuracy(f"<answer>{answer}</answer>", {"answer": gold}, literal=literal)[1]
        assert info["pred"] == answer[:80]


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


@pytest.mark.parametrize(
    "gold, pred, literal_score",
    [
        ("75", "75", 1.0),
        ("75", "75.0", 1.0),
        ("75", "\\boxed{75}", 1.0),
        ("75", "x = 75", 1.0),
        ("75", "\\text{75}", 1.0),
        ("7", "{7}", 1.0),  # a group around a number is the number
        ("-7", "{{-7}}", 1.0),
        ("1234", "1,234", 1.0),
        ("0.5", "\\frac{1}{2}", 1.0),  # a fraction in lowest terms is a number as written
        ("0.5", "1/2", 1.0),
        ("0.75", "\\frac34", 1.0),  # one digit a side, no braces
        ("-3", "-3", 1.0),
        ("75", "+75", 1.0),
        ("75", "--75", 0.0),  # -(-75): a sign to work out
        ("-75", "+-75", 0.0),
        ("75", "450 / 6", 0.0),  # the question restated
        ("75", "\\frac{450}{6}", 0.0),
        ("75", "75/1", 0.0),
        ("0.5", "\\frac{2}{4}", 0.0),
        ("75", "76 - 1", 0.0),
        ("75", "75 + 0*x", 0.0),
        ("6", "\\log_2 64", 0.0),
        ("10", "\\binom{5}{2}", 0.0),
        ("4", "2 + 2 = 4", 0.0),
        ("\\sqrt{2}", "\\frac{2}{\\sqrt{2}}", 1.0),  # no number as written to ask for
    ],
)
def test_literal_asks_a_number_for_a_number(gold, pred, literal_score):
    completion = f"<answer> {pred} </answer>"
    score, info = math_accuracy(completion, {"answer": gold}, literal=True)
    assert score == literal_score
    if not literal_score:
        assert info["reason"] == "left to compute: the reference is a number"
    assert math_accuracy(completion, {"answer": gold})[0] == 1.0  # off, math-verify's equality


@pytest.mark.parametrize(
    "gold, pred, said",
    [
        ("75", "75\\%", "a bare number, the answer a percentage"),
        ("0.75", "75\\%", "a bare number, the answer a percentage"),
        ("75", "75 percent", "a bare number, the answer a percentage"),
        ("75\\%", "75", "a percentage, the answer a bare number"),
        ("30", "30^\\circ", "a bare number, the answer in degrees"),
    ],
)
def test_literal_asks_the_references_unit(gold, pred, said):
    # math-verify takes `75\%` for 75 and for 0.75: one answer, two values. With `literal` the
    # answer is the number as the reference writes it.
    completion = f"<answer> {pred} </answer>"
    assert math_accuracy(completion, {"answer": gold})[0] == 1.0
    assert math_accuracy(completion, {"answer": gold}, literal=True) == (
        0.0,
        {"pred": pred, "reason": f"unit: the reference is {said}"},
    )
    assert math_accuracy(f"<answer> {gold} </answer>", {"answer": gold}, literal=True)[0] == 1.0


@pytest.mark.parametrize("answer", ["3\\> 4", "3\\left. 4", "3\\big 4", "3\\, 4"])
def test_latex_spacing_between_two_numbers_joins_nothing(answer):
    # `\>`, `\left.` and `\big` are spacing or invisible delimiters: two numbers side by side.
    score, info = math_accuracy(f"<answer> {answer} </answer>", {"answer": "34"})
    assert score == 0.0 and info["reason"] == "answer ambiguous: two numbers side by side"
