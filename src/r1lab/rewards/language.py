"""Language consistency (DeepSeek-R1 stage 2): the share of the reasoning's words in the target language.

    language_consistency(completion, example)               # target: example["language"]
    language_consistency(completion, example, language="zh")  # -> (float in [0, 1], info)

The reasoning is everything from the first `<think>` to the last `</think>` (several think blocks
and the text between them all count, so mixing cannot hide after a first block); with `</think>`
but no `<think>` (a prefilled prompt), the text before the last `</think>`; with no `</think>`,
the whole completion (tags removed). Words are decided by script, so the reward needs no language
model and is exact:

- a word is a run of letters of one script; each CJK ideograph counts as one word (Chinese is not
  written with spaces), kana and hangul runs count as words of their script;
- a run of letters of any other script (Arabic, Thai, Devanagari, ...) is a word of script
  `other`, on target for no language: mixing in a script without a name here counts as mixing;
- full-width, half-width and mathematical letters are read as the letters they stand for
  (`ｔｈｅ` and `𝐭𝐡𝐞` are the English word `the`), and the Kangxi radicals as Han; characters
  that show nothing (zero-width, format, private use: `shows_nothing`) are dropped
  (`t\u200bh\u200be` is `the`);
- not words: digits, punctuation, math symbols, LaTeX commands (`\\frac`), Greek letters (they are
  math here), and single Latin or other letters (variables such as `x`);
- the target language picks the scripts that count as on-target: `en` Latin, `zh` Han
  ideographs, `ja` kana and Han, `ko` hangul, `ru` Cyrillic. It is the `language` param when
  given, else the example's `language` field ("en" or "zh" in the micro-world), else `en`.
  Latin script cannot tell English from French: that is a known limit of deciding by script.

Reasoning without a single word scores 0.0: no evidence of the target language is not consistency.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from r1lab.rewards.registry import register_reward

_LATIN = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f"
_CYRILLIC = "\u0400-\u04ff"
_HANGUL = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
_KANA = "\u3040-\u30ff\u31f0-\u31ff"
# Han ideographs: the unified blocks and extensions, compatibility ideographs, and the radicals
# (Kangxi and supplement), which are drawn as ideographs.
_HAN = (
    "\u2e80-\u2fdf\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
    "\U0002f800-\U0002fa1f\U00030000-\U000323af"
)
CJK = _HAN + _KANA + _HANGUL
"""The CJK characters (Han, kana, hangul), as the body of a regex character class: scripts written
without spaces between words, so a word boundary there means nothing."""
_GREEK = "\u0370-\u03ff\u1f00-\u1fff"

# One alternative per script; the group that matched names the script of the word. `other` is
# a run of letters of any script not named before it (Arabic, Thai, Devanagari, ...): a word,
# and never on target, so mixing in a script without a name is not invisible.
_WORDS = re.compile(
    rf"(?P<latex>\\[A-Za-z]+)"
    rf"|(?P<latin>[{_LATIN}]+)"
    rf"|(?P<cyrillic>[{_CYRILLIC}]+)"
    rf"|(?P<hangul>[{_HANGUL}]+)"
    rf"|(?P<kana>[{_KANA}]+)"
    rf"|(?P<han>[{_HAN}])"
    rf"|(?P<other>[^\W\d_{_LATIN}{_CYRILLIC}{CJK}{_GREEK}]+)"
)
_COMPATIBILITY_FORMS = ("<wide>", "<narrow>", "<small>", "<font>")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


# What shows a reader nothing: format and control characters (zero-width spaces and joiners,
# the byte-order mark, bidi marks), combining marks with nothing to sit on, characters no font
# draws (private use, unassigned code points, lone surrogates), and the letters and symbols drawn
# blank (Hangul fillers, the braille blank).
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc", "Mn", "Me", "Co", "Cn", "Cs"})
_BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def shows_nothing(c: str) -> bool:
    """Whether the character `c` shows a reader nothing (whitespace aside): zero-width, format
    and control characters, lone combining marks, private-use and unassigned code points, and
    blank glyphs. What the format rewards do not count as content and the claim reader reads
    as a space, so a policy cannot hide or fill with it."""
    return c in _BLANK_GLYPHS or unicodedata.category(c) in _INVISIBLE_CATEGORIES


def compatibility_base(c: str) -> str | None:
    """The one character that a full-width, half-width, small or mathematical form `c` stands
    for (`ｔ`, `𝐭` -> `t`; `７` -> `7`; `﹦` -> `=`), else None (superscripts and the like are
    not such forms: `³` is no `3`)."""
    tag, _, code = unicodedata.decomposition(c).partition(" ")
    return chr(int(code, 16)) if tag in _COMPATIBILITY_FORMS and " " not in code else None


@functools.lru_cache(maxsize=4096)
def _fold(c: str) -> str:
    # Compatibility forms of letters are the letters they stand for (`ｔｈｅ`, `𝐭𝐡𝐞` are the
    # English word `the`; half-width katakana are katakana); a combining mark belongs to the
    # letter before it (Devanagari vowel signs) and a character that shows nothing (zero-width,
    # private use: `shows_nothing`) splits no word (`t\u200bh\u200be` is `the`), so both are
    # dropped. Whitespace still separates words.
    if unicodedata.category(c)[0] == "M" or (shows_nothing(c) and not c.isspace()):
        return ""
    return compatibility_base(c) or c


LANGUAGE_SCRIPTS: dict[str, frozenset[str]] = {
    "en": frozenset({"latin"}),
    "zh": frozenset({"han"}),
    "ja": frozenset({"kana", "han"}),
    "ko": frozenset({"hangul"}),
    "ru": frozenset({"cyrillic"}),
}


def reasoning_text(completion: str) -> str:
    """The reasoning part of a completion (see the module docstring)."""
    close = completion.rfind("</think>")
    if close < 0:
        # The tag names are not words of the reasoning.
        for tag in ("<think>", "<answer>", "</answer>"):
            completion = completion.replace(tag, " ")
        return completion
    # From the first <think> to the last </think>: reasoning written between two think blocks
    # is reasoning too (the first block alone would let a policy hide its mixing after it).
    open_ = completion.find("<think>", 0, close)
    text = completion[open_ + len("<think>") if open_ >= 0 else 0 : close]
    return text.replace("<think>", " ").replace("</think>", " ")


def count_words(text: str) -> dict[str, int]:
    """Words per script in `text` (`latin`, `cyrillic`, `hangul`, `kana`, `han`, and `other`:
    any other script's letters but Greek), compatibility forms read as their letters."""
    if not text.isascii():
        text = _NON_ASCII.sub(lambda m: _fold(m.group()), text)
    counts = {"latin": 0, "cyrillic": 0, "hangul": 0, "kana": 0, "han": 0, "other": 0}
    for m in _WORDS.finditer(text):
        script = m.lastgroup
        if script == "latex" or (script in ("latin", "other") and len(m.group()) < 2):
            continue
        counts[script] += 1  # type: ignore[index]
    return counts


def whole_text(completion: str) -> str:
    """Every word a completion shows a reader: the text with its tags and end-of-text tokens
    removed (`<|im_end|>` is not English), reasoning, summary and answer alike."""
    from r1lab.rewards.format import END_TOKENS, TAGS

    for token in (*TAGS, *END_TOKENS):
        completion = completion.replace(token, " ")
    return completion


@register_reward("language_consistency")
def language_consistency(
    completion: str,
    example: Mapping[str, Any],
    *,
    language: str | None = None,
    include_summary: bool = False,
) -> tuple[float, dict[str, Any]]:
    """Share of the reasoning's words written in the target language's script(s); 0.0 without
    words. The target is `language` when given, else the example's `language` field, else `en`:
    a config that names a language means it for every question, a mixed-language task asks each
    question's own. `include_summary` counts every word of the completion (`whole_text`) instead:
    the report's reward reads the chain of thought only, so a summary in another language goes
    unseen (measured in docs/r1.md); this is the opt-in that sees it."""
    if language is None:
        language = example.get("language", "en")
    if language not in LANGUAGE_SCRIPTS:
        raise ValueError(
            f"language_consistency: unknown language '{language}'; "
            f"valid: {', '.join(LANGUAGE_SCRIPTS)}"
        )
    counts = count_words(whole_text(completion) if include_summary else reasoning_text(completion))
    total = sum(counts.values())
    if total == 0:
        return 0.0, {"words": 0}
    on_target = sum(n for script, n in counts.items() if script in LANGUAGE_SCRIPTS[language])
    return on_target / total, {"words": total}
