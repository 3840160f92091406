"""The readable format: its strict reader, the summary by rule, and the rule rewrite."""

from __future__ import annotations

import pytest

from r1lab import metrics
from r1lab.data.readable import (
    clean_reasoning,
    final_equations,
    format_readable,
    parse_readable,
    rule_rewrite,
    summarize,
)
from r1lab.tasks import ArithmeticTask, CountdownTask

DIVISION = (
    "<think> 294 / 7 = 41? Let me check: is 41 * 7 = 294? 1*7=7, write 7. 4*7=28, write 28. "
    "So 41 * 7 = 287. 287 is less than 294, so 41 is too small. Wait, 294 / 7 = 42? Let me "
    "check: is 42 * 7 = 294? 2*7=14, write 4 carry 1. 4*7+1=29, write 29. So 42 * 7 = 294. "
    "294 is 294, so 42 is right. </think> <answer> 42 </answer>"
)
DIVISION_ZH = (
    "<think> 294 / 7 = 42？ 检查一下：42 * 7 = 294 吗？ 2*7=14，写 4 进 1。 4*7+1=29，写 29。 "
    "所以 42 * 7 = 294。 294 等于 294，所以 42 是对的。 </think> <answer> 42 </answer>"
)
ADDITION = (
    "<think> 7+5=12, write 2 carry 1. 4+3+1=8, write 8. So 47 + 35 = 82. </think> "
    "<answer> 82 </answer>"
)
COUNTDOWN = (
    "<think> Try 25 - 21 + 8: 25 - 21 = 4, 4 + 8 = 12. 12 is not 143. Try 8 * 21 - 25: "
    "8 * 21 = 168, 168 - 25 = 143. 143 is 143. Yes! </think> <answer> 8 * 21 - 25 </answer>"
)
GOOD = "<think> 7+5=12. So 47 + 35 = 82. </think> So 47 + 35 = 82. <answer> 82 </answer>"


def example(question: str, answer: str, **extra) -> dict:
    return {"question": question, "answer": answer, **extra}


# --- parse_readable ---------------------------------------------------------------------------


def test_a_readable_row_parses_into_its_parts():
    parts, why = parse_readable(GOOD + "<|endoftext|>")
    assert why == ""
    assert parts.reasoning == "7+5=12. So 47 + 35 = 82."
    assert parts.summary == "So 47 + 35 = 82."
    assert parts.answer == "82"


@pytest.mark.parametrize(
    "text, why",
    [
        # a summary with no answer in tags
        ("<think> 7+5=12 </think> So 47 + 35 = 82.", "tag count"),
        # the answer outside the tags
        ("<think> 7+5=12 </think> The answer is 82. 82", "tag count"),
        # no summary: the R1-Zero format is not the readable one
        ("<think> 7+5=12 </think> <answer> 82 </answer>", "empty summary"),
        ("<think> 7+5=12 </think> So 82. <answer> </answer>", "empty answer"),
        ("<think> </think> So 82. <answer> 82 </answer>", "empty reasoning"),
        ("Sure. <think> 7+5=12 </think> So 82. <answer> 82 </answer>", "text before <think>"),
        ("<think> 7+5=12 </think> So 82. <answer> 82 </answer> 八十二", "text after </answer>"),
        # a second think block hides more reasoning after the summary
        ("<think> a </think> So 82. <think> b </think> <answer> 82 </answer>", "tag count"),
        ("<think> a <answer> 82 </answer> </think> So 82.", "text after </answer>"),
        ("<think> a </answer> b </think> So <answer> 82 </answer>", "tag count"),
    ],
)
def test_what_is_not_the_readable_format(text, why):
    parts, reason = parse_readable(text)
    assert parts is None
    assert reason.startswith(why)


def test_tags_in_the_wrong_order_are_not_the_format():
    parts, why = parse_readable("<think> x <answer> 1 </think> y </answer>")
    assert parts is None and why in ("tags out of order", "text after </answer>")
    parts, why = parse_readable("<think> x </think> s </answer> y <answer>")
    assert parts is None and why == "text after </answer>"


# --- the summary by rule ----------------------------------------------------------------------


def test_a_checked_division_is_summarised_with_its_check():
    reasoning = clean_reasoning(DIVISION)
    # The wrong guess (294 / 7 = 41) is never the final equation; the last check multiplies back.
    assert final_equations(reasoning, "42") == ("294 / 7 = 42", "42 * 7 = 294")
    assert summarize(reasoning, "42", "en") == "So 294 / 7 = 42, since 42 * 7 = 294."


def test_a_tens_first_check_is_summarised_by_its_quotient_not_its_tens_fact():
    reasoning = "29 / 7 = 4 r 1. 294 / 7 = 42? 2*7=14, write 4 carry 1. 4*7+1=29, write 29."
    reasoning += " So 42 * 7 = 294."
    assert final_equations(reasoning, "42") == ("294 / 7 = 42", "42 * 7 = 294")
    # A right quotient with a remainder never states an answer: 29 / 7 is not 4.
    assert final_equations("29 / 7 = 4 r 1.", "4") == (None, None)
    assert summarize("29 / 7 = 4 r 1.", "4", "en") == "The answer is 4."


def test_the_summary_is_in_the_question_language():
    reasoning = clean_reasoning(DIVISION_ZH)
    assert summarize(reasoning, "42", "zh") == "所以 294 / 7 = 42，因为 42 * 7 = 294。"
    assert summarize("没有算式", "42", "zh") == "答案是 42。"
    assert summarize(clean_reasoning(ADDITION), "82", "zh") == "所以 47 + 35 = 82。"


def test_forward_arithmetic_states_the_last_equation_that_gives_the_answer():
    reasoning = clean_reasoning(ADDITION)
    # 4+3+1=8 is a right claim too, but its value is not the answer.
    assert final_equations(reasoning, "82") == ("47 + 35 = 82", None)
    assert summarize(reasoning, "82", "en") == "So 47 + 35 = 82."


def test_a_countdown_answer_is_its_own_equation():
    reasoning = clean_reasoning(COUNTDOWN)
    assert final_equations(reasoning, "8 * 21 - 25") == ("8 * 21 - 25 = 143", None)
    assert summarize(reasoning, "8 * 21 - 25", "en") == "So 8 * 21 - 25 = 143."


def test_without_an_equation_the_summary_states_the_answer():
    assert summarize("This is easy.", "82", "en") == "The answer is 82."
    # A wrong claim with the answer's value is not stated as the final equation.
    assert summarize("40 + 41 = 82 is my guess", "82", "en") == "The answer is 82."
    assert summarize("x is large", "1/2", "en") == "The answer is 1/2."
    # A language without a phrase table gets the bare equation: no words, so none foreign.
    assert summarize(clean_reasoning(ADDITION), "82", "ru") == "47 + 35 = 82"
    assert summarize("нет", "82", "ru") == "82"


def test_an_operand_only_counts_as_a_check_when_whole():
    # 420 * 7 holds "42" as digits, not as an operand; only 42 * 7 checks 42.
    reasoning = "294 / 7 = 42. 420 * 7 = 2940. 142 + 0 = 142."
    assert final_equations(reasoning, "42") == ("294 / 7 = 42", None)
    reasoning += " 42 * 7 = 294."
    assert final_equations(reasoning, "42") == ("294 / 7 = 42", "42 * 7 = 294")


# --- the rule rewrite -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, answer, ex, task, language",
    [
        (DIVISION, "42", example("Compute 294 / 7", "42"), ArithmeticTask(), "en"),
        (DIVISION_ZH, "42", example("计算 294 / 7", "42"), ArithmeticTask(), "zh"),
        (ADDITION, "82", example("Compute 47 + 35", "82"), ArithmeticTask(), "en"),
        (
            COUNTDOWN,
            "8 * 21 - 25",
            example("q", "8 * 21 - 25", numbers=[25, 21, 8], target=143),
            CountdownTask(),
            "en",
        ),
    ],
)
def test_the_rule_rewrite_is_readable_right_and_keeps_the_reasoning(
    completion, answer, ex, task, language
):
    row = rule_rewrite(completion, answer, language)
    parts, why = parse_readable(row)
    assert why == ""
    assert parts.reasoning == clean_reasoning(completion)
    assert parts.answer == answer
    assert metrics.readability(row, language)["readable"]
    assert not metrics.mixed_language(row, language)
    assert task.is_correct(row, ex)
    assert row == format_readable(
        parts.reasoning, summarize(parts.reasoning, answer, language), answer
    )


def test_reasoning_without_think_tags_is_the_text_before_the_answer():
    completion = "7+5=12, write 2 carry 1. So 47 + 35 = 82. <answer> 82 </answer> trailing"
    assert clean_reasoning(completion) == "7+5=12, write 2 carry 1. So 47 + 35 = 82."
    assert clean_reasoning("only text, no tags") == "only text, no tags"


def test_reasoning_spans_every_think_block_and_tidies_whitespace():
    completion = (
        "<think> a  b\t c\n\n\n\n d </think> between <think> e </think> <answer> 1 </answer>"
    )
    # From the first <think> to the last </think>, as every metric reads it.
    assert clean_reasoning(completion) == "a b c\n\nd between e"
    assert clean_reasoning("<think> x \n y </think>") == "x\ny"
