"""Evaluation metrics against brute force and against the documented conventions."""

import itertools
import math
import statistics
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from r1lab.metrics import (
    DEFAULT_REFLECTION_PHRASES,
    VERDICTS,
    Claim,
    Comparison,
    _reflection_pattern,
    arithmetic_claims,
    as_read,
    comparisons,
    evaluate_expression,
    has_reflection,
    length_stats,
    maj_at_k_correct,
    majority_vote,
    mixed_language,
    pass_at_k,
    readability,
    reflection_rate,
    self_correction_rate,
    self_corrects,
    summary_text,
    unread_equations,
    unrevised_steps,
    wrong_summary,
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我算错了。等等，再看一遍", True),  # inside a sentence: no word boundary in Chinese
        ("让我检查一下这个结果", True),
        ("再检查：7+5=12", True),
        ("我们来验算", True),
        ("这一步错了", True),
        ("等", False),
        ("检查", False),  # "检查一下" / "再检查" only
        ("好的wait，看看", True),  # a CJK character is a boundary for an English phrase
        ("好的waiting", False),  # but a Latin letter still is not
        ("awaited 等待", False),
    ],
)
def test_chinese_reflection_phrases_match_inside_chinese_text(text, expected):
    assert has_reflection(text) is expected


def test_cjk_phrases_have_no_word_boundaries_and_latin_ones_keep_them():
    assert has_reflection("他说等等吧", ["等等"])
    assert has_reflection("x等等x", ["等等"])  # even between Latin letters
    assert not has_reflection("xwaitx", ["wait"]) and not has_reflection("wait2", ["wait"])
    assert has_reflection("等wait等", ["wait"])
    assert has_reflection("verify 验算", ["verify", "验算"])
    assert has_reflection("abc验算def", ["verify", "验算"])
    assert not has_reflection("verifying", ["verify", "验算"])


# --- arithmetic claims ------------------------------------------------------------------------


def test_evaluate_expression_is_exact_and_refuses_what_is_not_arithmetic():
    assert evaluate_expression("294 / 7") == 42
    assert evaluate_expression("1/3 + 1/3 + 1/3") == 1  # exact: floats would give 0.999...
    assert evaluate_expression("2 + 3 * 4") == 14 and evaluate_expression("(2 + 3) * 4") == 20
    assert evaluate_expression("8 - 3 - 2") == 3 and evaluate_expression("48 / 4 / 2") == 6
    assert evaluate_expression("-3 + 5") == 2 and evaluate_expression("--3") == 3
    assert evaluate_expression("6 × 7 ÷ 3") == 14 and evaluate_expression("9 − 4") == 5
    assert evaluate_expression("2 \\times 3 \\div 6 \\cdot 4") == 4
    assert evaluate_expression("7 / (3 - 3)") is None
    for bad in ("2**3", "2(3)", "3 +", "(1", "1)", "", "x + 1", "3 4", "1.5"):
        with pytest.raises(ValueError):
            evaluate_expression(bad)
    deep = "(" * 40 + "1" + ")" * 40  # deeper than any real trace: refused, never a crash
    with pytest.raises(ValueError):
        evaluate_expression(deep)
    # The limit exactly: 32 levels are read, 33 refused.
    assert evaluate_expression("(" * 32 + "1" + ")" * 32) == 1
    with pytest.raises(ValueError):
        evaluate_expression("(" * 33 + "1" + ")" * 33)
    assert evaluate_expression("-" * 5000 + "1") == 1  # unary minus does not recurse


def claims(text):
    return [(c.expression, c.value, c.right) for c in arithmetic_claims(text)]


def test_a_claim_may_open_with_a_bracket_it_closes():
    # Only an unclosed leading bracket is left out: `(2 + 3) * 4` is the whole expression.
    assert claims("(2 + 3) * 4 = 21, and (1 + 1) = 2.") == [
        ("(2 + 3) * 4", 21, False),
        ("(1 + 1)", 2, True),
    ]
    assert claims("(so 6 * 7 = 42)") == [("6 * 7", 42, True)]


def test_integers_of_up_to_100_digits_make_claims_and_longer_ones_none():
    # MAX_DIGITS exactly, for the value after `=` too (a runaway `999...` makes no claim).
    for digits, expected in ((100, 1), (101, 0)):
        n = "9" * digits
        assert len(arithmetic_claims(f"{n} + 0 = {n}")) == expected
        assert len(arithmetic_claims(f"0 + {'9' * 100} = {n}")) == expected


def test_claims_take_the_maximal_expression_and_positions_point_into_the_text():
    text = "7*9=63, write 3 carry 6. 8*9+6=77, write 7 carry 7."
    assert claims(text) == [("7*9", 63, True), ("8*9+6", 77, False)]
    got = arithmetic_claims(text)
    assert got[1] == Claim(25, 33, "8*9+6", 77, False)
    assert [text[c.start : c.end] for c in got] == ["7*9=63", "8*9+6=77"]
    assert claims("So 41 * 7 = 287, not 294.") == [("41 * 7", 287, True)]
    assert claims("3 - 5 = -2") == [("3 - 5", -2, True)]
    assert claims("3 - 5 = 2") == [("3 - 5", 2, False)]
    assert claims("(so 3+4=7)") == [("3+4", 7, True)]
    assert claims("((2+3)*4 = 20") == [("(2+3)*4", 20, True)]
    assert claims("所以294÷7=42。") == [("294÷7", 42, True)]
    assert claims("Guess: 294 / 7 = 41?") == [("294 / 7", 41, False)]
    text = "29 / 7 = 4 r 1. 294 / 7 = 45?"  # a tens-first check: the remainder is in the claim
    got = arithmetic_claims(text)
    assert [text[c.start : c.end] for c in got] == ["29 / 7 = 4 r 1", "294 / 7 = 45"]
    assert [c.remainder for c in got] == [1, None]
    assert claims("5/0 = 3") == [("5/0", 3, False)]
    assert claims("1+2=3\n4+5=10") == [("1+2", 3, True), ("4+5", 10, False)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # numbers inside larger tokens
        ("x2 = 4", []),
        ("v2+3=5", []),
        ("2x+3=5", []),
        ("3 x 4 = 12", []),
        ("3.5*2=7", []),
        ("1,000 + 5 = 1005", []),
        ("2+2 = 12x", []),
        ("1+2 = 3.5", []),
        ("500+500 = 1,000", []),
        # the value must be one integer
        ("2*6 = 3*4", []),
        ("1+1 = 1/2 + 3/2", []),
        ("1+1 = [2]", []),
        # chains: each = on its own, E stops at the previous =
        ("3*4 = 12 = 13", [("3*4", 12, True)]),
        ("2*6 = 12 = 3*4", [("2*6", 12, True)]),
        ("x = 3+4 = 8", [("3+4", 8, False)]),
        # lists and dates are not sums
        ("[4, 12, 3] = 19", []),
        ("4, 12, 3 = 19", []),
        ("On 2024-01-15 we met 3 friends.", []),
        ("2024-01-15 = 2008", [("2024-01-15", 2008, True)]),
        # a division with its remainder: right iff a = v * b + k, 0 <= k < b
        ("29 / 7 = 4 r 1.", [("29 / 7", 4, True)]),
        ("28 / 7 = 4 r 0", [("28 / 7", 4, True)]),
        ("29 / 7 = 4 r 2", [("29 / 7", 4, False)]),
        ("29 / 7 = 3 r 8", [("29 / 7", 3, False)]),
        ("36 / 5 = 7 余 1。", [("36 / 5", 7, True)]),
        ("36÷5=7余1", [("36÷5", 7, True)]),
        ("29 / 0 = 4 r 1", [("29 / 0", 4, False)]),
        ("29 / 7 = 4 rows", [("29 / 7", 4, False)]),
        ("29 / 7 = 4 r1", [("29 / 7", 4, False)]),
        ("29 / 7 = 4 r 1x", [("29 / 7", 4, False)]),
        # after anything but a / b the remainder is not read: E = v as usual, never hidden
        ("(20+9) / 7 = 4 r 1", [("(20+9) / 7", 4, False)]),
        ("29 * 7 = 4 r 1", [("29 * 7", 4, False)]),
        ("3 + 4 = 7 r 1", [("3 + 4", 7, True)]),
        # not equations, or not arithmetic
        ("a == 3", []),
        ("2+2 == 4", []),
        ("3+4 <= 7", []),
        ("3+4 => 7", []),
        ("n := 3+4", []),
        ("2**3=8", []),
        ("Step 2 3+4=7", []),
        ("7 = 7", []),
        ("3 +\n4 = 7", []),
        ("the answer is 42", []),
    ],
)
def test_claims_edge_cases_have_a_defined_reading(text, expected):
    assert claims(text) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789+-*/×÷() =xa.,\n等?[]", max_size=80))
def test_claims_never_crash_and_each_is_an_equation_in_the_text(text):
    for c in arithmetic_claims(text):
        stated = text[c.start : c.end]
        assert stated.startswith(c.expression) and stated.rstrip(")").endswith(str(c.value))
        assert "=" in stated
        assert c.right == (evaluate_expression(c.expression) == c.value)


@settings(max_examples=200, deadline=None)
@given(st.integers(-999, 999), st.sampled_from("+-*"), st.integers(0, 999), st.integers(-5, 5))
def test_a_generated_equation_is_right_iff_its_value_is(a, op, b, off):
    value = {"+": a + b, "-": a - b, "*": a * b}[op] + off
    assert claims(f"so {a} {op} {b} = {value}.") == [(f"{a} {op} {b}", value, off == 0)]


# --- self-correction --------------------------------------------------------------------------

DIVISION = (
    "<think> 294 / 7 = 41. Let me check: 1*7=7, write 7. 4*7=28, write 28. So 41 * 7 = 287, "
    "not 294. Wait, 41 is too small. 294 / 7 = 42. Check: 2*7=14, write 4 carry 1. "
    "4*7+1=29, write 29. So 42 * 7 = 294. Correct. </think> <answer> 42 </answer>"
)
COLUMNS = (
    "7*9=63, write 3 carry 6. 8*9+6=77, write 7 carry 7. Wait, 8*9+6=78, not 77. "
    "Write 8 carry 7. 6*9+7=61, write 61. So 687 * 9 = 6183."
)


def test_the_briefs_examples_self_correct():
    assert self_corrects(DIVISION, True)
    assert self_corrects(COLUMNS, True)
    assert self_corrects("<think> 3+4=8. 等等，3+4=7。</think> <answer> 7 </answer>", True)


def test_what_is_not_a_self_correction():
    # correct answer, but ...
    assert not self_corrects("<think> Wait, 3+4=7. </think> <answer> 7 </answer>", True)
    assert not self_corrects("<think> 3+4=8. So 3+4=7. </think> <answer> 7 </answer>", True)
    # a reflection, then another wrong claim
    assert not self_corrects("<think> 3+4=8. Wait, 3+4=9. </think> <answer>7</answer>", True)
    # a reflection, then no claim at all
    assert not self_corrects("<think> 3+4=8. Wait, no. </think> <answer> 7 </answer>", True)
    # the reflection comes before the wrong claim, not after it
    assert not self_corrects("<think> Wait. 3+4=8. 3+4=7. </think> <answer>7</answer>", True)
    # right, wrong, right with a reflection before the slip only
    text = "<think> 1+1=2. Let me check: 2+2=5. 2+3=5. </think> <answer> 5 </answer>"
    assert not self_corrects(text, True)
    # everything right but the final answer is graded wrong
    assert not self_corrects(COLUMNS, False) and not self_corrects(DIVISION, False)


def test_self_correction_order_conditions():
    # a second slip caught by a second reflection is a correction
    text = "3+4=8. Wait, 3+4=7. 7*2=15. Wait, 7*2=14."
    assert self_corrects(text, True)
    # the reflection must follow the LAST wrong claim: a first phrase in between is not enough
    assert not self_corrects("3+4=8. Wait, 3+4=7. 7*2=15. So 7*2=14.", True)
    # the claim after the reflection must start after the phrase (the phrase itself is no claim)
    assert self_corrects("3+4=8 wait 3+4=7", True)
    assert not self_corrects("3+4=8. 3+4=7. wait", True)
    assert self_corrects("3+4=8. wait 3+4=7.", True)
    # only claims count as the thing corrected: a wrong sentence is not a wrong equation
    assert not self_corrects("Seven is eight. Wait, 3+4=7.", True)
    # a custom phrase list
    assert self_corrects("3+4=8. Hmm, 3+4=7.", True, ["hmm"])
    assert not self_corrects("3+4=8. Hmm, 3+4=7.", True)


def test_only_the_reasoning_is_read_for_self_correction():
    # the wrong claim is in the answer: the reasoning holds none
    text = "<think> Wait, 3+4=7. </think> <answer> 3+4=8 </answer>"
    assert not self_corrects(text, True)
    # a correction written in the answer block is not the reasoning's
    text = "<think> 3+4=7 </think> <answer> 3+4=8, wait, 3+4=7 </answer>"
    assert not self_corrects(text, True)
    assert self_corrects("<think> 3+4=8, wait, 3+4=7 </think> <answer> 7 </answer>", True)


def test_self_correction_rate():
    texts = [DIVISION, COLUMNS, "Wait, 3+4=7.", DIVISION]
    assert self_correction_rate(texts, [True, True, True, False]) == 0.5
    assert self_correction_rate(texts, [True] * 4) == 0.75
    with pytest.raises(ValueError, match="grades"):
        self_correction_rate(texts, [True])
    with pytest.raises(ValueError):
        self_correction_rate([], [])


# --- comparisons and revised steps -----------------------------------------------------------


def compared(text: str) -> list[tuple[int, int, str, bool]]:
    return [(c.a, c.b, c.relation, c.holds) for c in comparisons(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "287 vs 294: 2 = 2, 8 < 9, less, no.",
            [(287, 294, "<", True), (2, 2, "=", True), (8, 9, "<", True)],
        ),
        ("294 vs 294: same", [(294, 294, "=", True)]),
        ("300 vs 294: 3 = 2, more", [(300, 294, ">", True), (3, 2, "=", False)]),
        (
            "35 对比 41：4 = 4，5 = 5，相等，所以 8。",
            [(35, 41, "=", False), (4, 4, "=", True), (5, 5, "=", True)],
        ),
        ("8 对比 11：1 位 > 1 位，大", [(8, 11, ">", False), (1, 1, ">", False)]),
        ("3 digits < 2 digits", [(3, 2, "<", False)]),
        (
            "-1 vs 15: no. 15 vs 15: yes! 16 vs 15: yes!",
            [(-1, 15, "≠", True), (15, 15, "=", True), (16, 15, "=", False)],
        ),
        (
            "28 对比 42：不对。 42 对比 42：对！ 41 对比 42：对！",
            [(28, 42, "≠", True), (42, 42, "=", True), (41, 42, "=", False)],
        ),
        (
            "150 vs 168: 1 = 1, 5 < 6, less by 18 = 3 * 6",
            [(150, 168, "<", True), (1, 1, "=", True), (5, 6, "<", True)],
        ),
        ("12 vs 10: much less", [(12, 10, "<", False)]),
        ("12 vs 10: more, yes", [(12, 10, ">", False)]),  # every verdict of the clause must hold
        ("12 vs 10: 1 = 1. Less is more.", [(1, 1, "=", True)]),  # the clause ended at `.`
        ("12 vs 10: 1 = 1, nothing said", [(1, 1, "=", True)]),  # no verdict: no `vs` claim
        (
            "4 != 5, 4 <= 4, 5 >= 6, 7 ≠ 7",
            [(4, 5, "≠", True), (4, 4, "≤", True), (5, 6, "≥", False), (7, 7, "≠", False)],
        ),
        ("4, 12, 3 = 19", [(3, 19, "=", False)]),
    ],
)
def test_comparisons_are_read_and_judged(text, expected):
    assert compared(text) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.integers(-999, 999), st.sampled_from(["<", ">", "=", "≠", "≤", "≥"]), st.integers(-999, 999)
)
def test_a_generated_relation_holds_iff_it_is_true(a, relation, b):
    truth = {"<": a < b, ">": a > b, "=": a == b, "≠": a != b, "≤": a <= b, "≥": a >= b}
    assert compared(f"so {a} {relation} {b}.") == [(a, b, relation, truth[relation])]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 999), st.integers(0, 999), st.sampled_from(sorted(VERDICTS)))
def test_a_generated_verdict_holds_iff_it_is_true(a, b, word):
    relation = VERDICTS[word]
    truth = {"<": a < b, ">": a > b, "=": a == b, "≠": a != b}[relation]
    assert compared(f"Then {a} vs {b}: {word}. Next.") == [(a, b, relation, truth)]
    assert compared(f"{a} 对比 {b}：{word}。") == [(a, b, relation, truth)]


@pytest.mark.parametrize(
    "text",
    [
        "6 + 1 = 7",  # an expression's last operand is no number compared
        "7 - 8 = -1",
        "3*4 = 12 = 13",  # a chain, as arithmetic_claims reads it
        "1 < 2 < 3",
        "2^3 = 8",
        "f(2) = 4",
        "1,000 = 1000",
        "3.5 = 7",
        "x = 3 < 4",
        "x2 = 5",
        "3 < 2 + 5",
        "12 vs 10 less",  # no colon
        "so 5 > 3x",  # the 3 is part of a larger token
        "12 < 13.5",
        "9" * 101 + " > 5",  # past MAX_DIGITS, either side: no comparison, never a crash
        "5 < " + "9" * 101,
    ],
)
def test_what_is_no_comparison(text):
    assert comparisons(text) == []


def test_algebra_is_a_letter_on_the_equations_own_line_never_the_texts_last_letter():
    assert unread_equations("1 2 = 3, so x") == ["<unread: 1 2 = 3, so x>"]
    assert unread_equations("x\n+ 3 = 7") == ["<unread: x + 3 = 7>"]  # the x is a line above
    assert unread_equations("x + 3 = 7") == []


def test_a_summary_may_follow_a_prefilled_reasoning():
    # `</think>` first (the prompt opened the reasoning): what follows is still the summary.
    text = "</think> So it is 5. <answer>5</answer>"
    assert summary_text(text) == " So it is 5. "
    assert readability(text, "en")["summary"] is True
    # One word of another script is a mixed reasoning, however short.
    assert not readability("<think>算</think> It is 5. <answer>5</answer>", "en")["one_language"]


def test_a_comparison_of_100_digits_is_read():
    assert [c.holds for c in comparisons("9" * 100 + " > 5")] == [True]


def wrong_left(text: str, *phrases: str) -> list[str]:
    steps = unrevised_steps(text, phrases) if phrases else unrevised_steps(text)
    return [text[s.start : s.end] for s in steps]


def test_a_wrong_step_is_revised_only_by_restating_it_right_after_a_reflection():
    assert wrong_left("3+4=8. Wait, 3+4=7.") == []
    assert wrong_left("3+4=8. 等等，3 + 4 = 7。") == []  # spaces do not change the expression
    assert wrong_left("3+4=8. So 3+4=7.") == ["3+4=8"]  # no reflection
    assert wrong_left("3+4=8. 等等3+4=7。") == []  # restated right where the phrase ends
    assert wrong_left("Wait. 3+4=8. 3+4=7.") == ["3+4=8"]  # the reflection came before it
    assert wrong_left("3+4=8. Wait, 3+4=9.") == ["3+4=8", "3+4=9"]  # restated wrong again
    # a reflection about something else excuses nothing (self_corrects would)
    text = "9*2=28, so 9. 186 / 2 = 95? Wait, 96? 96*2=192."
    assert wrong_left(text) == ["9*2=28"]
    assert self_corrects(text, True)
    # comparisons: the same two numbers compared again, in either order
    assert wrong_left("35 vs 41: same. Wait, 35 vs 41: less.") == []
    assert wrong_left("35 vs 41: same. Wait, 41 vs 35: more.") == []
    assert wrong_left("35 vs 41: same. Wait, 35 vs 42: less.") == ["35 vs 41: same"]
    assert wrong_left("35 vs 41: same. Wait, 35 vs 41: more.") == [
        "35 vs 41: same",
        "35 vs 41: more",
    ]
    assert wrong_left("5 < 4. Let me check: 5 > 4.") == []
    # a claim is not revised by a comparison nor the other way round
    assert wrong_left("3+4=8. Wait, 8 = 7.") == ["3+4=8", "8 = 7"]
    assert wrong_left("3+4=8. Hmm, 3+4=7.", "hmm") == []
    assert wrong_left("3+4=8. Hmm, 3+4=7.") == ["3+4=8"]


def test_a_wrong_guess_needs_a_reflection_then_a_right_step():
    assert wrong_left("288 / 3 = 95? 95*3=285, less. Wait, 96? 96*3=288.") == []
    assert wrong_left("30 * 9 = 360 吗？ 所以 30 * 9 = 270。等等，40 * 9 = 360。") == []
    assert wrong_left("288 / 3 = 95? 95*3=285, less, so 96.") == ["288 / 3 = 95"]
    assert wrong_left("288 / 3 = 95? Wait, 96?") == ["288 / 3 = 95"]  # nothing checked after
    assert wrong_left("288 / 3 = 95. Wait, 96*3=288.") == ["288 / 3 = 95"]  # stated, not asked


def _unrevised_by_definition(text: str) -> list[tuple[int, int]]:
    """The module docstring's rule, written the slow and obvious way."""
    steps = sorted([*arithmetic_claims(text), *comparisons(text)], key=lambda s: s.start)
    pattern = _reflection_pattern(DEFAULT_REFLECTION_PHRASES)
    ok = [s.right if isinstance(s, Claim) else s.holds for s in steps]
    key = [
        "".join(s.expression.split()) if isinstance(s, Claim) else frozenset((s.a, s.b))
        for s in steps
    ]
    left = []
    for i, s in enumerate(steps):
        if ok[i]:
            continue
        phrase = pattern.search(text, s.end)
        after = [j for j, t in enumerate(steps) if phrase and t.start >= phrase.end()]
        question = isinstance(s, Claim) and text[s.end :].lstrip(" ").startswith(("?", "吗？"))
        if not any(ok[j] and (question or key[j] == key[i]) for j in after):
            left.append((s.start, s.end))
    return left


PIECES = st.sampled_from(
    [
        "3+4=7.",
        "3+4=8.",
        "3 + 4 = 9?",
        "2*5=10",
        "2*5=11 吗？",
        "5 < 4.",
        "4 < 5,",
        "9 vs 9: same.",
        "9 vs 8: less, no.",
        "8 vs 9: less.",
        "Wait,",
        "等等，",
        "let me check",
        "so",
        "\n",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(PIECES, max_size=14))
def test_unrevised_steps_is_its_definition(pieces):
    text = " ".join(pieces)
    assert [(s.start, s.end) for s in unrevised_steps(text)] == _unrevised_by_definition(text)


def test_right_steps_need_no_revision():
    assert wrong_left("7+5=12, write 2 carry 1. 287 vs 294: 2 = 2, 8 < 9, less, no.") == []
    assert isinstance(unrevised_steps("3+4=8.")[0], Claim)
    assert isinstance(unrevised_steps("4 > 8.")[0], Comparison)


# --- language and readability -----------------------------------------------------------------


def test_mixed_language_is_judged_against_the_target_language():
    en_with_han = "<think> Add them: 3+4=7 对 </think> <answer> 7 </answer>"
    assert mixed_language(en_with_han, "en") and not mixed_language("<think>Add.</think>", "en")
    zh_with_latin = "<think> 三加四 is 七 </think> <answer> 7 </answer>"
    assert mixed_language(zh_with_latin, "zh") and not mixed_language("<think>三加四</think>", "zh")
    # single letters are variables, the answer is not the reasoning
    assert not mixed_language("<think> 设 x=3 </think> <answer> seven </answer>", "zh")
    assert mixed_language("<think>三加四</think>", "en")
    with pytest.raises(ValueError, match="valid: en, zh"):
        mixed_language("x", "fr")


READABLE = "<think> 7*9=63, write 3 carry 6. 8*9+6=78, write 8 carry 7. 6*9+7=61, write 61. </think> <answer> 6183 </answer>"  # noqa: E501
LOOP = "<think> write 3 carry 6. write 3 carry 6. write 3 carry 6. write 3 carry 6. </think> <answer> 3 </answer>"  # noqa: E501


def test_a_worked_trace_is_readable():
    assert readability(READABLE, "en") == {
        "one_language": True,
        "no_repetition": True,
        "paragraphs": True,
        "summary": True,
        "readable": True,
    }
    zh = "<think> 7*9=63，写 3 进 6。8*9+6=78，写 8 进 7。</think> <answer> 答案是 6183 </answer>"
    assert readability(zh, "zh")["readable"]
    assert not readability(zh, "en")["one_language"]


def test_runaway_repetition():
    assert not readability(LOOP, "en")["no_repetition"]
    assert not readability(LOOP, "en")["readable"]
    # three times in a row is not yet runaway: an 8-gram occurs twice
    three = "<think> write 3 carry 6. write 3 carry 6. write 3 carry 6. </think> <answer>3</answer>"
    assert readability(three, "en")["no_repetition"]
    # not in a row counts too: the same 8 words three times, apart
    phrase = "let me add the two numbers column by column"
    apart = f"<think> {phrase} 1. {phrase} 2. {phrase} 3. </think> <answer> 3 </answer>"
    assert not readability(apart, "en")["no_repetition"]
    twice = f"<think> {phrase} 1. {phrase} 2. </think> <answer> 3 </answer>"
    assert readability(twice, "en")["no_repetition"]
    # Chinese is counted by character
    zh_loop = "<think>" + "让我再算一遍。" * 4 + "</think> <answer> 3 </answer>"
    assert not readability(zh_loop, "zh")["no_repetition"]
    # case does not hide a loop
    loud = "<think> Write 3 carry 6. WRITE 3 CARRY 6. write 3 carry 6. Write 3 Carry 6. </think>"
    assert not readability(loud, "en")["no_repetition"]


def test_paragraph_length_limit():
    def para(n):
        return " ".join(f"w{i}" for i in range(n))

    ok = f"<think> {para(150)} </think> <answer> 7 </answer>"
    assert readability(ok, "en")["paragraphs"]
    assert not readability(f"<think> {para(151)} </think> <answer> 7 </answer>", "en")["paragraphs"]
    split = f"<think> {para(100)}\n\n{para(100)} </think> <answer> 7 </answer>"
    assert readability(split, "en")["paragraphs"]
    assert not readability(split.replace("\n\n", " "), "en")["paragraphs"]
    # </think> ends a paragraph: 100 + 100 words across it is fine
    across = f"<think> {para(100)} </think> <answer> {para(100)} </answer>"
    assert readability(across, "en")["paragraphs"]
    # each Han character is a word
    assert not readability("<think>" + "算" * 151 + "</think> <answer>7</answer>", "zh")[
        "paragraphs"
    ]


def test_summary_needs_a_finished_completion_with_text_after_think():
    assert readability(READABLE, "en", finished=False) == {
        "one_language": True,
        "no_repetition": True,
        "paragraphs": True,
        "summary": False,
        "readable": False,
    }
    assert not readability("<think> 3+4=7 </think>", "en")["summary"]
    assert not readability("<think> 3+4=7 </think> <answer> </answer>", "en")["summary"]
    assert not readability("3+4=7, so the answer is 7", "en")["summary"]
    assert readability("<think> 3+4=7 </think> The answer is 7.", "en")["summary"]


def test_one_language_checks_reasoning_and_summary_each():
    # 19 English words and 1 Han word: 95%, readable; 18 and 2: 90%, not
    words = " ".join(["word"] * 19)
    assert readability(f"<think> {words} 对 </think> <answer> 7 </answer>", "en")["one_language"]
    words = " ".join(["word"] * 18)
    assert not readability(f"<think> {words} 对对 </think> <answer>7</answer>", "en")[
        "one_language"
    ]
    # a foreign summary fails even after an English reasoning
    assert not readability("<think> add them </think> <answer> 答案是七 </answer>", "en")[
        "one_language"
    ]
    # no words at all (pure arithmetic) passes
    assert readability("<think> 3+4=7 </think> <answer> 7 </answer>", "zh")["one_language"]


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


# --- the summary's equations ------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, summary",
    [
        ("<think> a </think> So 42. <answer> 42 </answer>", " So 42. "),
        ("<think> a </think> So 42.", " So 42."),  # no answer block: to the end
        ("<think> a </think> b </think> c <answer> d </answer>", " c "),  # after the last
        ("<think> a </think> <answer> x </answer> <answer> y </answer>", " "),
        ("So 6 * 7 = 41. <answer> 42 </answer>", ""),  # no </think>: no summary
        ("", ""),
    ],
)
def test_summary_text_is_what_follows_the_last_think_up_to_the_answer(completion, summary):
    assert summary_text(completion) == summary


@pytest.mark.parametrize(
    "completion, wrong",
    [
        ("<think> 6*7=42 </think> So 6 * 7 = 42. <answer> 42 </answer>", False),
        ("<think> 6*7=42 </think> So 6 * 7 = 41. <answer> 42 </answer>", True),
        ("<think> 6*7=42 </think> So 6*7=42, since 42 / 7 = 5. <answer> 42 </answer>", True),
        ("<think> 6*7=41 </think> So 42. <answer> 42 </answer>", False),  # reasoning only
        ("<think> 6*7=42 </think> So 42. <answer> 6*7=41 </answer>", False),  # the answer's
        ("6 * 7 = 41 <answer> 41 </answer>", False),  # no </think>: nothing summarises
        ("<think> x </think> 所以 9*2=28。 <answer> 28 </answer>", True),
        ("<think> x </think> 8 vs 9: same. 50 = 5 <answer> 5 </answer>", False),  # no comparisons
        # a number no claim reads fails rather than passes unread; one in the reasoning is fine
        ("<think> x </think> So 2 + 2 = " + "9" * 5000 + " <answer> 4 </answer>", True),
        ("<think> x </think> So " + "9" * 101 + ". <answer> 4 </answer>", True),
        ("<think> x </think> So " + "9" * 100 + ". <answer> 4 </answer>", False),
        ("<think> " + "9" * 101 + " </think> So 4. <answer> 4 </answer>", False),
        ("<think> x </think> So **2 + 2 = 5**. <answer> 4 </answer>", True),
        ("<think> x </think> 所以 ２ ＋ ２ ＝ ５。 <answer> 4 </answer>", True),
        ("<think> x </think> So 2**3 = 8, not 2 * 3 = 6. <answer> 8 </answer>", False),
        # an operator spaced on one side is no emphasis: read, so a wrong one fails
        ("<think> x </think> So 7 *6 = 41. <answer> 41 </answer>", True),
        ("<think> x </think> So 7* 6 = 41. <answer> 41 </answer>", True),
        ("<think> x </think> So 6 * **7** = 41. <answer> 41 </answer>", True),
        (
            "<think> x </think> 所以 ４ * ９ = ３８，３８ * ９ = ３４２。 <answer> 342 </answer>",
            True,
        ),
    ],
)
def test_wrong_summary_reads_the_summarys_arithmetic_claims_only(completion, wrong):
    assert wrong_summary(completion) is wrong


@pytest.mark.parametrize(
    "text, read",
    [
        ("So **75 + 1 = 75**.", "So   75 + 1 = 75  ."),
        ("So *75* and __76__", "So  75  and   76  "),
        ("So 7 *6 = 41, 7* 6 = 41, 6*7, 2**3 = 8", "So 7 *6 = 41, 7* 6 = 41, 6*7, 2**3 = 8"),
        ("6 * **7** = 42", "6 *   7   = 42"),
        ("(2)*(3) = 6; * a bullet; x_1 = 5", "(2)*(3) = 6; * a bullet; x_1 = 5"),
        ("**7\n* 6 = 41**", "**7\n* 6 = 41**"),  # emphasis never spans lines
        ("７５ ＋ １ ＝ ７５，对吗？", "75 + 1 = 75，对吗？"),  # Chinese punctuation stays
        ("𝟕 ∗ ٦ ﹦ ४१", "7 * 6 = 41"),  # mathematical, Arabic-Indic, Devanagari digits
        ("7·6 = 7⋅6 = 84 ∕ 2, 9 – 2 = 7", "7*6 = 7*6 = 84 / 2, 9 - 2 = 7"),
        ("10³ = 1000, 2\u00a0+\u20092 = 4", "10³ = 1000, 2 + 2 = 4"),  # superscripts stay
        ("plain ascii 6*7=42", "plain ascii 6*7=42"),
        ("6*7\u200b=\u206641\u0301", "6*7 = 41 "),  # what shows nothing is a space
        ("6\ue000*\U000f00007 = 4\u03781", "6 * 7 = 4 1"),  # private use, unassigned too
    ],
)
def test_as_read_reads_arithmetic_as_a_reader_does_and_keeps_every_offset(text, read):
    assert as_read(text) == read
    assert len(as_read(text)) == len(text)
    assert as_read(read) == read  # reading twice changes nothing


def test_every_step_rule_reads_the_text_as_read():
    # The shared readers (claims, comparisons), so every rule built on them: the wrong step
    # hidden in emphasis or full-width forms is seen, at the original text's offsets.
    for text in ("So **6*7=41**. The end.", "所以 ６*７＝４１。", "So 𝟔 ∗ 7 = 41."):
        claims = arithmetic_claims(text)
        assert [(c.value, c.right) for c in claims] == [(41, False)], text
        assert text[claims[0].end - 1] in "1１", text  # the offset is the original text's
        assert [s.start for s in unrevised_steps(text)] == [claims[0].start]
    assert [(c.a, c.b, c.holds) for c in comparisons("３５ ＜ ２９")] == [(35, 29, False)]
    revised = "<think> ６*７＝４１. Wait, 6*7=42. </think> <answer> 42 </answer>"
    assert self_corrects(revised, True)
    assert not unrevised_steps(revised)  # the same expression, restated right


@pytest.mark.parametrize(
    "text, unread",
    [
        ("So 7*6 = 41 8*2 = 16.", 2),  # two claims with no word between: neither read
        ("So 2^3 = 9. So 5! = 120. So 1/2 = 0.5.", 3),
        ("So 10% of 50 = 5.", 1),  # read as the comparison `50 = 5`, which does not hold
        ("So 7 x 6 = 41, and 3 X 4 = 12.", 2),
        ("So [4, 12] = 16 and (3+4) = 7.", 1),  # the bracket is read, the list is not
        ("So 75 + 1\n= 75, and 6 * 7 =\n42.", 2),  # no claim is read over a line break
        ("So 75 + 1 = 76, since 76 * 6 = 456.", 0),  # read (true or not, the claims decide)
        ("So 75 + 1 = 75.", 0),
        ("所以 450 ÷ 6 = 75，因为 75 × 6 = 450。", 0),
        ("297 vs 297: 2 = 2, 9 = 9, same.", 0),  # comparisons that hold
        ("x = 5, x2 = 4, 2x + 3 = 7, y = x + 3 = 8", 0),  # algebra
        ("\\frac{450}{6} = 74, the 3rd = 3, 75 plus 1 is 75", 0),  # known limits
    ],
)
def test_unread_equations_are_equations_of_numbers_no_claim_reads(text, unread):
    assert len(unread_equations(text)) == unread
    assert all(u.startswith("<unread: ") for u in unread_equations(text))
