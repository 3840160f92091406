"""Format rewards: one test per strictness rule (see r1lab.rewards.format), plus property tests."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r1lab.rewards.format import (
    END_TOKENS,
    TAGS,
    format_cold_start,
    format_prefill,
    format_readable_reward,
    format_reward,
    has_content,
    strip_end_tokens,
)
from r1lab.rewards.registry import get_reward

GOOD = "<think>2 + 3 = 5</think> <answer>5</answer>"


def score(fn, text, **params):
    return fn(text, {}, **params)[0]


# -- format (R1-Zero) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        GOOD,
        "<think>a</think><answer>b</answer>",  # no whitespace needed between blocks
        "  \n<think>\nmulti\nline\n</think>\n\n<answer>\n5\n</answer>\n",
        "<think>思考: 2 + 3 = 5 ✓</think> <answer>五</answer>",  # unicode content
        "<think>see <Think> and <thinking></think> <answer>5</answer>",  # not tags: text
    ],
)
def test_format_accepts(text):
    assert score(format_reward, text) == 1.0


@pytest.mark.parametrize("tok", END_TOKENS)
def test_format_allows_each_end_token(tok):
    assert score(format_reward, GOOD + tok) == 1.0
    assert score(format_reward, GOOD + " \n" + tok + "\n") == 1.0


def test_format_allows_several_end_tokens():
    assert score(format_reward, GOOD + "<|im_end|><|endoftext|><|endoftext|>") == 1.0


def test_format_end_token_only_at_the_end():
    assert score(format_reward, "<think>a</think><|im_end|><answer>5</answer>") == 0.0
    assert score(format_reward, "<|endoftext|>" + GOOD) == 0.0


def test_format_custom_end_tokens():
    assert score(format_reward, GOOD + "<eos>") == 0.0
    assert score(format_reward, GOOD + "<eos>", end_tokens=["<eos>"]) == 1.0


@pytest.mark.parametrize(
    "text, reason",
    [
        ("Sure! " + GOOD, "text before <think>"),
        ("<think>a</think> so: <answer>5</answer>", "text between"),
        (GOOD + " Hope that helps.", "text after"),
        ("<think>a</think>", "tag count"),
        ("<answer>5</answer>", "tag count"),
        ("<think>a <answer>5</answer>", "tag count"),
        ("<think>a</think> <answer>5", "tag count"),
        ("<answer>5</answer> <think>a</think>", "text before <think>"),
        ("<think>a <answer>5</answer></think>", "out of order"),
        ("<think>a <answer>5</think> </answer>", "out of order"),  # one answer tag inside
        ("<think>a </answer>5</think> <answer>", "out of order"),
        ("<think>a</think> </answer>5<answer>", "text between"),
        ("<think>a <think>b</think></think> <answer>5</answer>", "tag count"),
        ("<think>a</think> <answer>5</answer> <answer>6</answer>", "tag count"),
        ("<think>a</think><think>b</think> <answer>5</answer>", "tag count"),
        ("<Think>a</Think> <answer>5</answer>", "tag count"),
        ("<think >a</think> <answer>5</answer>", "tag count"),
        ("<thinking>a</thinking> <answer>5</answer>", "tag count"),
        ("<think> \n </think> <answer>5</answer>", "empty reasoning"),
        ("<think>a</think> <answer>  </answer>", "empty answer"),
        ("", "tag count"),
    ],
)
def test_format_rejects(text, reason):
    value, info = format_reward(text, {})
    assert value == 0.0
    assert reason in info["reason"]


def test_format_require_content_can_be_relaxed():
    assert score(format_reward, "<think></think> <answer></answer>", require_content=False) == 1.0
    assert score(format_reward, "<think></think> <answer></answer>") == 0.0


# -- format_prefill (prompt ends in <think>) ------------------------------------------------


def test_prefill_accepts():
    assert score(format_prefill, "2 + 3 = 5</think> <answer>5</answer>") == 1.0
    assert score(format_prefill, " 2 + 3 = 5\n</think>\n<answer>5</answer><|im_end|>") == 1.0


@pytest.mark.parametrize(
    "text",
    [
        "<think>2 + 3 = 5</think> <answer>5</answer>",  # a second opening tag
        "2 + 3 = 5 <answer>5</answer>",  # no </think>
        "  </think> <answer>5</answer>",  # empty reasoning
        "a</think> <answer>5</answer> extra",
        "a</think> b <answer>5</answer>",
        "a <answer>5</answer></think>",
        "a</think></think> <answer>5</answer>",
        "",
    ],
)
def test_prefill_rejects(text):
    assert score(format_prefill, text) == 0.0


@pytest.mark.parametrize(
    "text", ["a <answer> 5 </think> </answer>", "a </answer> 5 </think> <answer>"]
)
def test_prefill_says_an_answer_tag_inside_the_reasoning_is_out_of_order(text):
    assert format_prefill(text, {}) == (0.0, {"reason": "tags out of order"})


# -- format_readable (<think> reasoning </think> summary <answer> answer </answer>) ----------

READABLE = "<think> 7+5=12. So 47 + 35 = 82. </think> So 47 + 35 = 82. <answer> 82 </answer>"


@pytest.mark.parametrize(
    "text",
    [
        READABLE,
        "<think>a</think>b<answer>c</answer>",  # no whitespace needed around the summary
        "\n  <think>\n2 + 3 = 5\n</think>\nSo 5.\n<answer>\n5\n</answer>\n",
        "<think> 2 * 21 = 42，检查：42 / 2 = 21 </think> 所以 2 * 21 = 42。 <answer> 42 </answer>",
        "<think> see <Think> and <thinking> </think> So 5. <answer> 5 </answer>",  # text
        "<think> 2 + 3 = 5 </think> 5 <answer> 5 </answer>",  # a digit says something
    ],
)
def test_readable_accepts(text):
    assert score(format_readable_reward, text) == 1.0


@pytest.mark.parametrize("tok", END_TOKENS)
def test_readable_allows_each_end_token_at_the_end_only(tok):
    assert score(format_readable_reward, READABLE + tok) == 1.0
    assert score(format_readable_reward, READABLE + " \n" + tok + tok + "\n") == 1.0
    assert score(format_readable_reward, tok + READABLE) == 0.0


def test_readable_custom_end_tokens():
    assert score(format_readable_reward, READABLE + "<eos>") == 0.0
    assert score(format_readable_reward, READABLE + "<eos>", end_tokens=["<eos>"]) == 1.0


@pytest.mark.parametrize(
    "text, reason",
    [
        # R1-Zero's format has no summary: it is not the readable one
        ("<think> 7+5=12 </think> <answer> 82 </answer>", "empty summary"),
        ("<think> 7+5=12 </think> \n\t <answer> 82 </answer>", "empty summary"),
        # a summary of punctuation or end-of-text tokens summarises nothing
        ("<think> 7+5=12 </think> ... <answer> 82 </answer>", "empty summary"),
        ("<think> 7+5=12 </think> <|im_end|> <answer> 82 </answer>", "empty summary"),
        ("<think> 7+5=12 </think> _ <answer> 82 </answer>", "empty summary"),
        ("<think> \n </think> So 82. <answer> 82 </answer>", "empty reasoning"),
        ("<think> 7+5=12 </think> So 82. <answer>  </answer>", "empty answer"),
        # the answer outside the tags, or no answer block at all
        ("<think> 7+5=12 </think> The answer is 82.", "tag count"),
        ("<think> 7+5=12 </think> So 82. <answer> </answer> 82", "text after </answer>"),
        ("Sure! <think> 7+5=12 </think> So 82. <answer> 82 </answer>", "text before <think>"),
        ("<think> 7+5=12 </think> So 82. <answer> 82 </answer> Hope it helps.", "text after"),
        # tags quoted in the reasoning or the summary count
        ("<think> write <answer> 82 </answer> </think> So 82. <answer> 82 </answer>", "tag count"),
        ("<think> a </think> So <think> 82. <answer> 82 </answer>", "tag count"),
        ("<think> a </think> So 82 </think> <answer> 82 </answer>", "tag count"),
        # two think blocks: more reasoning hidden after the summary
        ("<think> a </think> So 82. <think> b </think> <answer> 82 </answer>", "tag count"),
        ("<think> a </think><think> b </think> So 82. <answer> 82 </answer>", "tag count"),
        ("<think> a </think> So 82. <answer> 82 </answer> <answer> 83 </answer>", "tag count"),
        # out of order
        ("<think> a <answer> 82 </answer> </think> So 82.", "text after </answer>"),
        ("<think> a </answer> b </think> So <answer> 82", "text after </answer>"),
        ("<answer> 82 </answer> <think> a </think> So 82.", "text before <think>"),
        ("<think> a </think> So </answer> 82 <answer>", "text after </answer>"),
        ("<think> a <answer> b </think> So 82. </answer>", "tags out of order"),
        # not tags
        ("<Think> a </Think> So 82. <answer> 82 </answer>", "tag count"),
        ("<thinking> a </thinking> So 82. <answer> 82 </answer>", "tag count"),
        ("", "tag count"),
    ],
)
def test_readable_rejects(text, reason):
    value, info = format_readable_reward(text, {})
    assert value == 0.0
    assert info["reason"].startswith(reason)


@pytest.mark.parametrize(
    "summary, said",
    [
        # the stage-2 policy's summaries (docs/r1.md): the cold start's sentence, invented numbers
        ("So 75 + 1 = 75, since 75 * 6 = 405.", "75 + 1 = 75"),
        ("So 450 / 6 = 75, since 75 * 6 = 405.", "75 * 6 = 405"),  # the check alone is wrong
        ("So 967 + 637 = 1606.", "967 + 637 = 1606"),
        ("所以 9*2=28。", "9*2=28"),
        ("So 75+1=75", "75+1=75"),
        ("So (70 + 5) * 6 = 451.", "(70 + 5) * 6 = 451"),
        ("So 29 / 7 = 4 r 2.", "29 / 7 = 4 r 2"),  # a wrong remainder
        ("So 450 / 6 = 75 and 6 * 75 = 450, and 6 * 7 = 43.", "6 * 7 = 43"),
    ],
)
def test_readable_fails_a_summary_that_states_a_wrong_equation(summary, said):
    text = f"<think> 450 / 6 = 75 </think> {summary} <answer> 75 </answer>"
    value, info = format_readable_reward(text, {}, true_summary=True)
    assert value == 0.0 and info["reason"] == f"summary states a wrong equation: {said}"
    # off (the default: docs/r1.md measured why), the reward reads the shape alone
    assert score(format_readable_reward, text) == 1.0


@pytest.mark.parametrize(
    "text",
    [
        "<think> 450 / 6 = 75 </think> So 450 / 6 = 75, since 75 * 6 = 450. <answer> 75 </answer>",
        "<think> 450 / 6 = 75 </think> The answer is 75. <answer> 75 </answer>",  # no equation
        "<think> 29 / 7 = 4 r 1 </think> So 29 / 7 = 4 r 1. <answer> 4 </answer>",
        # the reasoning may slip (revised or not): the format reads the summary, accuracy the rest
        "<think> 6 * 7 = 43. Wait, 6 * 7 = 42. </think> So 6 * 7 = 42. <answer> 42 </answer>",
        "<think> 6 * 7 = 43 </think> So 42. <answer> 42 </answer>",
        # a wrong equation in the answer is the accuracy reward's to grade
        "<think> 1 + 1 = 2 </think> So 2. <answer> 1 + 1 = 3 </answer>",
        # a comparison that holds is read (a digit-by-digit check), an algebra step is no claim
        "<think> 297 / 9 = 33 </think> So 297 / 9 = 33: 297 vs 297: 2 = 2. <answer> 33 </answer>",
        "<think> 2x = 4 </think> So 2x + 3 = 7 gives x = 2. <answer> 2 </answer>",
    ],
)
def test_readable_accepts_a_true_summary_or_one_without_equations(text):
    assert score(format_readable_reward, text, true_summary=True) == 1.0


@pytest.mark.parametrize(
    "summary",
    [
        "So 10% of 50 = 5.",  # true, but no claim reads it (nor a comparison `50 = 5`)
        "So 3 x 4 = 12.",  # an x for times
        "So 2^3 = 8.",
        "So 1/2 = 0.5.",
        "So 3*4 = 12 5*6 = 30.",  # two claims with nothing between: neither is read
    ],
)
def test_readable_with_the_check_fails_closed_on_an_equation_it_cannot_read(summary):
    text = f"<think> x </think> {summary} <answer> 5 </answer>"
    value, info = format_readable_reward(text, {}, true_summary=True)
    assert value == 0.0
    assert info["reason"].startswith("summary states an equation no rule reads: <unread: ")
    assert score(format_readable_reward, text) == 1.0  # off, the shape alone


def test_readable_is_registered_as_the_strict_reader_of_the_cold_start_data():
    from r1lab.data.readable import format_readable, parse_readable

    assert get_reward("format_readable") is format_readable_reward
    # What `r1lab coldstart` writes is what the reward accepts, and the reader splits it back.
    row = format_readable("7+5=12. So 47 + 35 = 82.", "So 47 + 35 = 82.", "82")
    assert score(format_readable_reward, row) == 1.0
    parts, why = parse_readable(row)
    assert why == "" and (parts.summary, parts.answer) == ("So 47 + 35 = 82.", "82")


# -- format_cold_start (|special_token|reasoning|special_token|summary) ---------------------


def test_cold_start_accepts():
    text = "|special_token|2 + 3 = 5, checked twice.|special_token|The answer is 5."
    assert score(format_cold_start, text) == 1.0
    assert score(format_cold_start, "\n" + text + "<|endoftext|>") == 1.0


def test_cold_start_custom_token():
    text = "<sep>reasoning<sep>summary"
    assert score(format_cold_start, text, token="<sep>") == 1.0
    assert score(format_cold_start, text) == 0.0


@pytest.mark.parametrize(
    "text",
    [
        "|special_token|only one token",
        "|special_token|a|special_token|b|special_token|c",
        "preamble |special_token|a|special_token|b",
        "|special_token| |special_token|summary",
        "|special_token|reasoning|special_token| <|endoftext|>",
        # A summary of punctuation, or of an end token before the end, says nothing.
        "|special_token|reasoning|special_token| ...",
        "|special_token|reasoning|special_token|_ -- <|im_end|> !",
        "",
    ],
)
def test_cold_start_rejects(text):
    assert score(format_cold_start, text) == 0.0


def test_cold_start_empty_token_is_an_error():
    with pytest.raises(ValueError, match="token"):
        format_cold_start("x", {}, token="")


def test_strip_end_tokens():
    assert strip_end_tokens("a </s> <|im_end|>\n") == "a"
    assert strip_end_tokens("</s> a") == "</s> a"


# -- properties ------------------------------------------------------------------------------

# Reasoning/answer text that cannot contain a tag or an end token, with something to read.
plain = st.text(alphabet=st.characters(blacklist_characters="<>|"), min_size=1).filter(has_content)
anything = st.text(alphabet=st.sampled_from(list("<>/|ta hinkswer_ \n5")) | st.characters())


@settings(max_examples=200, deadline=None)
@given(anything)
def test_no_input_crashes(text):
    for fn in (format_reward, format_prefill, format_readable_reward, format_cold_start):
        value, info = fn(text, {})
        assert value in (0.0, 1.0)
        assert value == 1.0 or info["reason"]


@settings(max_examples=100, deadline=None)
@given(plain, plain, st.sampled_from(["", " ", "\n", "\n\n"]))
def test_well_formed_scores_one(reasoning, answer, sep):
    text = f"<think>{reasoning}</think>{sep}<answer>{answer}</answer>"
    assert score(format_reward, text) == 1.0
    assert score(format_prefill, f"{reasoning}</think>{sep}<answer>{answer}</answer>") == 1.0
    cold_start = score(format_cold_start, f"|special_token|{reasoning}|special_token|{answer}")
    assert cold_start == (1.0 if re.search(r"[^\W_]", answer) else 0.0)  # the summary's rule


@settings(max_examples=100, deadline=None)
@given(plain, plain, plain, st.sampled_from(["", " ", "\n"]))
def test_well_formed_readable_scores_as_its_summary_says_something(reasoning, summary, answer, sep):
    text = f"<think>{reasoning}</think>{sep}{summary}{sep}<answer>{answer}</answer>"
    says = any(ch.isalnum() for ch in summary)
    assert score(format_readable_reward, text) == float(says)


@settings(max_examples=100, deadline=None)
@given(plain, plain, st.sampled_from(TAGS), st.integers(min_value=0))
def test_an_extra_tag_anywhere_scores_zero(reasoning, answer, tag, where):
    text = f"<think>{reasoning}</think> <answer>{answer}</answer>"
    at = where % (len(text) + 1)
    assert score(format_reward, text[:at] + tag + text[at:]) == 0.0
    # The readable format allows text where R1-Zero's allows none, so the tag goes between
    # characters, not inside another tag (`<<answer>answer>` would leave one `<answer>`).
    readable = f"<think>{reasoning}</think> So {answer}. <answer>{answer}</answer>"
    inside = {
        i
        for t in TAGS
        for m in re.finditer(re.escape(t), readable)
        for i in range(m.start() + 1, m.end())
    }
    cuts = [i for i in range(len(readable) + 1) if i not in inside]
    at = cuts[where % len(cuts)]
    assert score(format_readable_reward, readable[:at] + tag + readable[at:]) == 0.0
