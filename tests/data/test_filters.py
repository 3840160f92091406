"""The drop rules: each drops what it names, keeps what it should, in a fixed order."""

from __future__ import annotations

import pytest

from r1lab import metrics
from r1lab.data.filters import CANDIDATE_RULES, ROW_RULES, RULES, candidate_reason, row_reason
from r1lab.data.readable import rule_rewrite
from r1lab.tasks import ArithmeticTask

TASK = ArithmeticTask()
EX = {"question": "Compute 47 + 35", "answer": "82"}
WORK = "7+5=12, write 2 carry 1. 4+3+1=8, write 8. So 47 + 35 = 82."
GOOD = f"<think> {WORK} </think> <answer> 82 </answer>"


def candidate(text: str, *, finished: bool = True, language: str = "en", rules=RULES):
    answer = TASK.extract_answer(text)
    return candidate_reason(
        text,
        finished=finished,
        answer=answer,
        correct=TASK.is_correct(text, EX),
        language=language,
        rules=rules,
    )


def row(text: str, *, language: str = "en", rules=RULES, min_claims: int = 2):
    return row_reason(
        text,
        language=language,
        is_correct=lambda t: TASK.is_correct(t, EX),
        min_claims=min_claims,
        rules=rules,
    )


def test_every_rule_has_a_place_in_the_order():
    assert set(CANDIDATE_RULES) | set(ROW_RULES) | {"duplicate"} == set(RULES)
    assert len(set(RULES)) == len(RULES)


def test_a_right_worked_completion_passes_and_its_rewrite_is_a_row():
    assert candidate(GOOD) is None
    assert row(rule_rewrite(GOOD, "82", "en")) is None


# --- on the completion as sampled -------------------------------------------------------------


def test_a_completion_cut_by_the_token_limit_is_truncated_first():
    assert candidate(GOOD, finished=False) == "truncated"
    # Every rule is in order: a truncated wrong completion is counted as truncated.
    assert candidate(GOOD.replace("82 </answer>", "81 </answer>"), finished=False) == "truncated"
    rules = set(RULES) - {"truncated"}
    assert candidate(GOOD, finished=False, rules=rules) is None


def test_an_answer_outside_the_tags_is_no_answer():
    assert candidate(f"<think> {WORK} </think> The answer is 82.") == "no_answer"
    assert candidate(f"<think> {WORK} </think> <answer> </answer>") == "no_answer"
    assert candidate(f"<think> {WORK} </think> <answer> 82") == "no_answer"


def test_a_wrong_answer_is_dropped_even_after_right_work():
    assert candidate(f"<think> {WORK} </think> <answer> 83 </answer>") == "wrong_answer"
    rules = set(RULES) - {"wrong_answer"}
    assert candidate(f"<think> {WORK} </think> <answer> 83 </answer>", rules=rules) is None


@pytest.mark.parametrize(
    "text",
    [
        # clean start, then the reasoning switches language
        f"<think> {WORK} 所以答案是 82。 </think> <answer> 82 </answer>",
        # a second think block after a clean first one
        f"<think> {WORK} </think> <think> 检查 </think> <answer> 82 </answer>",
        # after the answer, where the R1-Zero format check would not look
        f"<think> {WORK} </think> <answer> 82 </answer> 好的",
        # between the reasoning and the answer
        f"<think> {WORK} </think> 答案 <answer> 82 </answer>",
        # no tags at all around the reasoning
        f"{WORK} 对 <answer> 82 </answer>",
    ],
)
def test_a_second_language_anywhere_in_the_completion_is_mixed(text):
    assert candidate(text) == "mixed_language"


def test_an_answer_in_the_wrong_language_is_mixed():
    # A Chinese question answered wholly in English: every Latin word is foreign to it.
    assert candidate(GOOD, language="zh") == "mixed_language"
    zh = "<think> 7+5=12，写 2 进 1。 所以 47 + 35 = 82。 </think> <answer> 82 </answer>"
    assert candidate(zh, language="zh") is None
    assert candidate(zh, language="en") == "mixed_language"
    # Single Latin letters are variables, not words, in a Chinese reasoning.
    assert candidate(zh.replace("所以", "设 x，所以"), language="zh") is None


# --- on the row as written --------------------------------------------------------------------


def test_a_guess_is_short_reasoning():
    guess = rule_rewrite("<think> This is easy. </think> <answer> 82 </answer>", "82", "en")
    assert row(guess) == "short_reasoning"
    one = rule_rewrite("<think> So 47 + 35 = 82. </think> <answer> 82 </answer>", "82", "en")
    assert row(one) == "short_reasoning"
    assert row(one, min_claims=1) is None
    assert row(guess, min_claims=0) is None
    # called without it, the rule asks what `r1lab coldstart` asks: two steps
    from r1lab.data.coldstart import ColdStartConfig

    two = rule_rewrite(
        "<think> 7+5=12. So 47 + 35 = 82. </think> <answer> 82 </answer>", "82", "en"
    )
    assert row_reason(one, language="en", is_correct=lambda t: True) == "short_reasoning"
    assert row_reason(two, language="en", is_correct=lambda t: True) is None
    assert ColdStartConfig().min_claims == 2


def test_an_uncorrected_wrong_step_is_dropped_a_corrected_one_kept():
    slipped = "7+5=13, write 3 carry 1. 4+3+1=8, write 8. So 47 + 35 = 82."
    assert row(rule_rewrite(f"<think> {slipped} </think>", "82", "en")) == "wrong_step"
    fixed = slipped + " Wait, 7+5=12, not 13. So 47 + 35 = 82."
    assert row(rule_rewrite(f"<think> {fixed} </think>", "82", "en")) is None
    assert (
        row(rule_rewrite(f"<think> {slipped} </think>", "82", "en"), rules={"repetition"}) is None
    )


def test_a_wrong_step_is_revised_only_when_restated_right_after_a_reflection():
    # One reflection does not excuse a wrong claim it never revisits (metrics.self_corrects,
    # the eval metric, would call this a self-correction; a row would teach 7+5=13).
    slipped = "7+5=13, write 2 carry 1. 4+3+1=8, write 8. So 47 + 35 = 82."
    text = slipped + " Let me check: 4+3+1=8. Correct."
    assert metrics.self_corrects(text, True)
    assert row(rule_rewrite(f"<think> {text} </think>", "82", "en")) == "wrong_step"
    # A wrong comparison is a wrong step, every claim right or not.
    compared = WORK + " Check: 82 vs 80: 8 = 8, 2 > 0, less."
    assert row(rule_rewrite(f"<think> {compared} </think>", "82", "en")) == "wrong_step"
    fixed = compared + " Wait, 82 vs 80: more."
    assert row(rule_rewrite(f"<think> {fixed} </think>", "82", "en")) is None
    assert row(rule_rewrite(f"<think> {compared} </think>", "82", "en"), rules={"x"}) is None


def test_a_summary_that_states_a_wrong_step_is_dropped():
    # A rewriter model writes the summary: its equation is a step the user reads.
    assert row(f"<think> {WORK} </think> So 47 + 35 = 82. <answer> 82 </answer>") is None
    wrong = f"<think> {WORK} </think> So 47 + 35 = 83. <answer> 82 </answer>"
    assert row(wrong) == "wrong_step"
    assert row(f"<think> {WORK} </think> So 82 vs 80: same. <answer> 82 </answer>") == (
        "wrong_step"
    )


def test_a_checked_guess_is_no_wrong_step():
    ex = {"question": "Compute 288 / 3", "answer": "96"}
    guessed = (
        "288 / 3 = 95? 5*3=15, write 5 carry 1. 9*3+1=28, write 28. So 95 * 3 = 285. 285 vs 288: "
        "2 = 2, 8 = 8, 5 < 8, less, so 95 + 1 = 96. Wait, 96? 6*3=18, write 8 carry 1. "
        "9*3+1=28, write 28. So 96 * 3 = 288. 288 vs 288: 2 = 2, 8 = 8, 8 = 8, same."
    )
    text = rule_rewrite(f"<think> {guessed} </think>", "96", "en")
    ok = lambda t: TASK.is_correct(t, ex)  # noqa: E731
    assert row_reason(text, language="en", is_correct=ok) is None
    unchecked = guessed.replace("Wait, 96?", "So 96?")
    text = rule_rewrite(f"<think> {unchecked} </think>", "96", "en")
    assert row_reason(text, language="en", is_correct=ok) == "wrong_step"


def test_repeated_text_is_repetition():
    loop = " ".join(["4+3+1=8, write 8."] * 6)
    text = rule_rewrite(f"<think> {WORK} {loop} </think>", "82", "en")
    assert row(text) == "repetition"
    assert row(text, rules=set(RULES) - {"repetition"}) is None


def test_a_paragraph_over_150_words_is_a_long_paragraph():
    words = " ".join(f"step{i}" for i in range(150))
    text = rule_rewrite(f"<think> {WORK} {words} </think>", "82", "en")
    assert row(text) == "long_paragraph"
    split = rule_rewrite(f"<think> {WORK}\n\n{words} </think>", "82", "en")
    assert row(split) is None


def test_a_row_without_a_summary_or_with_a_foreign_one_is_dropped():
    bare = f"<think> {WORK} </think> <answer> 82 </answer>"
    assert row(bare) is None  # `<answer> 82 </answer>` is a summary to readability
    nothing = f"<think> {WORK} </think>"
    assert row(nothing) == "wrong_answer"
    assert row(nothing, rules=set(RULES) - {"wrong_answer"}) == "no_summary"
    foreign = f"<think> {WORK} </think> 所以是 82。 <answer> 82 </answer>"
    assert row(foreign) == "mixed_language"


def test_the_row_must_still_be_graded_right():
    assert row(f"<think> {WORK} </think> So 82. <answer> 83 </answer>") == "wrong_answer"
