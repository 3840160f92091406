"""Language consistency: words decided by script, exact proportions, the reasoning only."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r1lab.rewards.language import count_words, language_consistency, reasoning_text


def lc(text: str, language: str = "en") -> float:
    return language_consistency(text, {}, language=language)[0]


def test_pure_english_and_pure_chinese():
    assert lc("<think>Let me add the two numbers carefully.</think> <answer>5</answer>") == 1.0
    assert lc("<think>我们把两个数相加</think> <answer>5</answer>", "zh") == 1.0
    assert lc("<think>我们把两个数相加</think> <answer>5</answer>", "en") == 0.0


def test_mixed_counts_each_ideograph_as_a_word():
    # 2 English words (problem, is) and 4 ideographs.
    text = "<think>这个 problem is 简单</think>"
    assert count_words(reasoning_text(text)) == {
        "latin": 2,
        "cyrillic": 0,
        "hangul": 0,
        "kana": 0,
        "han": 4,
        "other": 0,
    }
    assert lc(text, "en") == pytest.approx(2 / 6)
    assert lc(text, "zh") == pytest.approx(4 / 6)


def test_digits_punctuation_math_and_latex_are_not_words():
    assert lc("<think>2 + 3 = 5; 5 * 7 = 35!</think>") == 0.0
    assert lc("<think>\\frac{a}{b} means division, x = 3</think>") == 1.0  # means, division
    assert lc("<think>so α + β = π here</think>") == 1.0  # Greek letters are math symbols
    text = "<think>因此 x = \\sqrt{2}</think>"
    assert lc(text, "zh") == 1.0  # single letters and LaTeX commands do not count


def test_empty_reasoning_scores_zero():
    assert language_consistency("", {})[0] == 0.0
    assert language_consistency("<think> 1 + 1 </think> <answer>2</answer>", {}) == (
        0.0,
        {"words": 0},
    )


def test_only_the_reasoning_counts():
    text = "<think>All English reasoning here.</think> <answer>答案是五</answer>"
    assert lc(text) == 1.0
    # Prefilled prompt: the completion starts inside the reasoning.
    assert lc("全部中文 reasoning</think> <answer>five</answer>", "zh") == pytest.approx(4 / 5)
    # No tags: the whole completion, tag names excluded.
    assert lc("just some words") == 1.0
    assert lc("<think>unfinished 中") == pytest.approx(1 / 2)
    # A prefilled reasoning left empty: the text after `</think>` is still not reasoning.
    assert reasoning_text("</think> <answer> forty five </answer>") == ""
    assert lc("</think> <answer> forty five </answer>") == 0.0


def test_include_summary_counts_every_word_the_reader_sees():
    # Chinese reasoning summarised in English, as stage 2 measured (docs/r1.md): the report's
    # reward reads the reasoning only and scores it 1; the opt-in sees the two English words.
    text = "<think>五乘九等于四十五</think> So the 145 * 9 = 1305. <answer> 1305 </answer>"
    assert lc(text, "zh") == 1.0
    whole = language_consistency(text, {"language": "zh"}, include_summary=True)
    assert whole == (pytest.approx(8 / 10), {"words": 10})
    # Tags and end-of-text tokens are not words; an answer in another language is.
    clean = "<think>五乘九</think> 所以是五 <answer> 五 </answer><|im_end|><|endoftext|>"
    assert language_consistency(clean, {}, language="zh", include_summary=True)[0] == 1.0
    sneaky = "<think>五乘九</think> 所以 <answer> forty five </answer>"
    assert language_consistency(sneaky, {}, language="zh", include_summary=True)[0] == 5 / 7


def test_other_scripts():
    assert lc("<think>Давайте посчитаем сумму</think>", "ru") == 1.0
    assert lc("<think>계산해 봅시다</think>", "ko") == 1.0
    assert lc("<think>計算してみましょう</think>", "ja") == 1.0
    assert lc("<think>Давайте count</think>", "en") == 0.5


def test_unknown_language_is_an_error():
    with pytest.raises(ValueError, match="valid: en, zh"):
        language_consistency("x", {}, language="xx")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.sampled_from(["en", "zh", "ja", "ko", "ru"]))
def test_always_a_proportion(text, language):
    value, info = language_consistency(text, {}, language=language)
    assert 0.0 <= value <= 1.0
    assert info["words"] >= 0


def test_the_target_language_is_the_examples_unless_a_param_names_one():
    zh = "<think>我们把两个数相加</think> <answer>5</answer>"
    en = "<think>add the two numbers</think> <answer>5</answer>"
    assert language_consistency(zh, {"language": "zh"})[0] == 1.0
    assert language_consistency(en, {"language": "zh"})[0] == 0.0
    assert language_consistency(en, {})[0] == 1.0  # no field: English
    # an explicit param wins over the example's field
    assert language_consistency(zh, {"language": "zh"}, language="en")[0] == 0.0
    assert language_consistency(en, {"language": "zh"}, language="en")[0] == 1.0
    with pytest.raises(ValueError, match="unknown language 'python'"):
        language_consistency(en, {"language": "python"})


def test_the_composite_reward_reads_each_examples_language():
    from r1lab.rewards import CompositeReward

    reward = CompositeReward({"language_consistency": 1.0})
    zh = "<think>我们相加</think> <answer>5</answer>"
    assert reward(zh, {"language": "zh"}).total == 1.0
    assert reward(zh, {"language": "en"}).total == 0.0
    pinned = CompositeReward(
        {"language_consistency": 1.0}, {"language_consistency": {"language": "en"}}
    )
    assert pinned(zh, {"language": "zh"}).total == 0.0
