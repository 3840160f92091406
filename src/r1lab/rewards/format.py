"""Format rewards: does the completion follow the template the model was prompted with?

Four output formats, one reward each, all scored 1.0 (follows it) or 0.0 (does not), with the
reason for a 0 in the info dict:

- `format`: R1-Zero, `<think> reasoning </think> <answer> answer </answer>`;
- `format_prefill`: the prompt already ends in `<think>` (TinyZero style), so the completion is
  `reasoning </think> <answer> answer </answer>`;
- `format_readable`: r1lab's readable format of DeepSeek-R1's cold-start data and of the stages
  after it, `<think> reasoning </think> summary <answer> answer </answer>` (docs/coldstart.md
  says why these tokens); its strict reader `parse_readable` is the one `r1lab coldstart` uses;
- `format_cold_start`: the report's literal cold-start format,
  `|special_token|<reasoning>|special_token|<summary>`, for data written with a separator token.

Strictness, shared by all four (each rule has a test in tests/rewards/test_format.py):
- tags are exact and case-sensitive: `<think>`, `</think>`, `<answer>`, `</answer>`; `<Think>`,
  `<think >` or `<thinking>` are not tags, they are text (and text outside the tags fails);
- each tag appears exactly once (a tag quoted inside the reasoning counts: it fails), in order;
- only whitespace may come before the first tag, between `</think>` and `<answer>` (but for the
  readable format's summary), and after `</answer>`, where end-of-text tokens (`end_tokens`) are
  also allowed, any number of them;
- the reasoning and the answer must contain something other than whitespace and invisible
  characters (zero-width spaces, joiners, bidi marks, lone combining marks, private-use and
  unassigned code points, Hangul fillers: `has_content`) (`require_content`);
  the summary of the readable and cold-start formats must contain a letter or a digit:
  punctuation or end-of-text tokens alone summarise nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from r1lab.rewards.language import shows_nothing
from r1lab.rewards.registry import register_reward

# End-of-sequence / end-of-turn tokens a decoder may leave at the end of the text.
END_TOKENS = (
    "<|endoftext|>",
    "<|im_end|>",
    "</s>",
    "<|end_of_text|>",
    "<|eot_id|>",
    "<｜end▁of▁sentence｜>",
)

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
TAGS = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)


def strip_end_tokens(text: str, end_tokens: tuple[str, ...] | list[str] = END_TOKENS) -> str:
    """`text` without trailing whitespace and end-of-text tokens (any number, in any order)."""
    text = text.rstrip()
    changed = True
    while changed:
        changed = False
        for tok in end_tokens:
            if tok and text.endswith(tok):
                text = text[: -len(tok)].rstrip()
                changed = True
    return text


def has_content(text: str) -> bool:
    """Whether `text` shows a reader anything: a character that is neither whitespace nor
    invisible (`shows_nothing`: `<think>\u200b</think>` or a private-use character holds no
    reasoning)."""
    return any(not c.isspace() and not shows_nothing(c) for c in text)


def _check_tail(
    text: str, require_content: bool, end_tokens: tuple[str, ...] | list[str]
) -> tuple[float, dict[str, Any]]:
    """Score `ws <answer> content </answer> ws [end tokens]`: the part after `</think>`."""
    if not text.lstrip().startswith(ANSWER_OPEN):
        return 0.0, {"reason": "text between </think> and <answer>"}
    body = strip_end_tokens(text.lstrip()[len(ANSWER_OPEN) :], end_tokens)
    if not body.endswith(ANSWER_CLOSE):
        return 0.0, {"reason": "text after </answer>, or no </answer>"}
    answer = body[: -len(ANSWER_CLOSE)]
    if require_content and not has_content(answer):
        return 0.0, {"reason": "empty answer"}
    return 1.0, {}


def _tag_counts(text: str) -> dict[str, int]:
    return {tag: text.count(tag) for tag in TAGS}


@register_reward("format")
def format_reward(
    completion: str,
    example: Mapping[str, Any],
    *,
    require_content: bool = True,
    end_tokens: tuple[str, ...] | list[str] = END_TOKENS,
) -> tuple[float, dict[str, Any]]:
    """1.0 if the completion is exactly `<think> ... </think> <answer> ... </answer>`, else 0.0."""
    counts = _tag_counts(completion)
    bad = [tag for tag, n in counts.items() if n != 1]
    if bad:
        return 0.0, {"reason": f"tag count: {', '.join(f'{t} x{counts[t]}' for t in bad)}"}
    text = completion.lstrip()
    if not text.startswith(THINK_OPEN):
        return 0.0, {"reason": "text before <think>"}
    # Every tag occurs exactly once, so this split is unambiguous.
    reasoning, _, tail = text[len(THINK_OPEN) :].partition(THINK_CLOSE)
    if ANSWER_OPEN in reasoning or ANSWER_CLOSE in reasoning:
        return 0.0, {"reason": "tags out of order"}
    if require_content and not has_content(reasoning):
        return 0.0, {"reason": "empty reasoning"}
    return _check_tail(tail, require_content, end_tokens)


@register_reward("format_prefill")
def format_prefill(
    completion: str,
    example: Mapping[str, Any],
    *,
    require_content: bool = True,
    end_tokens: tuple[str, ...] | list[str] = END_TOKENS,
) -> tuple[float, dict[str, Any]]:
    """For prompts ending in `<think>`: 1.0 if the completion is `... </think> <answer> ... </answer>`.

    The prompt opened the reasoning, so a `<think>` in the completion is a second opening tag and
    fails; everything before `</think>` is reasoning.
    """
    counts = _tag_counts(completion)
    expected = {THINK_OPEN: 0, THINK_CLOSE: 1, ANSWER_OPEN: 1, ANSWER_CLOSE: 1}
    bad = [tag for tag, n in counts.items() if n != expected[tag]]
    if bad:
        return 0.0, {"reason": f"tag count: {', '.join(f'{t} x{counts[t]}' for t in bad)}"}
    reasoning, _, tail = completion.partition(THINK_CLOSE)
    if ANSWER_OPEN in reasoning or ANSWER_CLOSE in reasoning:
        return 0.0, {"reason": "tags out of order"}
    if require_content and not has_content(reasoning):
        return 0.0, {"reason": "empty reasoning"}
    return _check_tail(tail, require_content, end_tokens)


@dataclass(frozen=True)
class Readable:
    """A completion in the readable format, in parts (each stripped of surrounding whitespace)."""

    reasoning: str
    summary: str
    """The text between `</think>` and `<answer>`: what a user reads."""
    answer: str


# A letter or a digit of any script: what a summary must hold to say anything.
_SAYS_SOMETHING = re.compile(r"[^\W_]")


def parse_readable(
    text: str, end_tokens: tuple[str, ...] | list[str] = END_TOKENS
) -> tuple[Readable | None, str]:
    """(the parts, "") if `text` is exactly in the readable format, else (None, why not).

    `<think> reasoning </think> summary <answer> answer </answer>`, strictly: each of the four
    tags exactly once and in order; only whitespace before `<think>`, and after `</answer>`
    (end-of-text tokens allowed there); reasoning and answer non-empty, and a summary holding a
    letter or a digit. A summary without an answer, an answer outside the tags, a second think
    block or R1-Zero's format (nothing between `</think>` and `<answer>`) are not the format.
    """
    counts = _tag_counts(text)
    bad = [f"{tag} x{n}" for tag, n in counts.items() if n != 1]
    if bad:
        return None, f"tag count: {', '.join(bad)}"
    body = strip_end_tokens(text, end_tokens).strip()
    if not body.startswith(THINK_OPEN):
        return None, "text before <think>"
    if not body.endswith(ANSWER_CLOSE):
        return None, "text after </answer>"
    # Every tag occurs exactly once, so these splits are unambiguous.
    reasoning, _, rest = body[len(THINK_OPEN) :].partition(THINK_CLOSE)
    summary, _, tail = rest.partition(ANSWER_OPEN)
    if ANSWER_OPEN in reasoning or ANSWER_CLOSE in reasoning or ANSWER_CLOSE in summary:
        return None, "tags out of order"
    answer = tail[: -len(ANSWER_CLOSE)]
    for name, part in (("reasoning", reasoning), ("summary", summary), ("answer", answer)):
        if not has_content(part):
            return None, f"empty {name}"
    if not _says_something(summary, end_tokens):
        return None, "empty summary: no letter or digit"
    return Readable(reasoning.strip(), summary.strip(), answer.strip()), ""


def _says_something(summary: str, end_tokens: tuple[str, ...] | list[str]) -> bool:
    """Whether a summary holds a letter or a digit once its end-of-text tokens are set aside."""
    for tok in end_tokens:
        if tok:
            summary = summary.replace(tok, " ")
    return _SAYS_SOMETHING.search(summary) is not None


@register_reward("format_readable")
def format_readable_reward(
    completion: str,
    example: Mapping[str, Any],
    *,
    end_tokens: tuple[str, ...] | list[str] = END_TOKENS,
    true_summary: bool = False,
) -> tuple[float, dict[str, Any]]:
    """1.0 if the completion is exactly `<think> ... </think> summary <answer> ... </answer>`
    (`parse_readable`) and, with `true_summary`, every equation its summary states holds; else
    0.0 with the reason.

    The summary is what a user reads, and a model imitates its shape with numbers nothing
    computed (`So 75 + 1 = 75, since 75 * 6 = 405.` over a right answer: docs/r1.md), which
    neither the shape nor the accuracy reward sees. `true_summary` is off by default: on the
    micro-world pipeline it did not lower the rate in stage 2's 30 steps and, as the task's
    format everywhere, cost stage 3 most of its right divisions (docs/r1.md, "A summary that
    says what was computed"); `eval/wrong_summary_rate` measures it either way. The rule is
    `metrics.false_equations` (the summary's `a op b = c` claims of integers, full-width forms
    and markdown emphasis read as a reader reads them; its known limits: r1lab.metrics'
    docstring), and it fails closed: an equation of numbers no claim reads
    (`metrics.unread_equations`: `2^3 = 9`, `7 x 6 = 41`, `1/2 = 0.5`) fails too, true or not.
    A summary with no equation is true; the reasoning may slip and revise, as it is the
    accuracy reward's to judge.
    """
    parts, why = parse_readable(completion, end_tokens)
    if parts is None:
        return 0.0, {"reason": why}
    if true_summary:
        from r1lab.metrics import false_equations, unread_equations  # metrics imports us

        wrong = false_equations(parts.summary)
        if wrong:
            return 0.0, {"reason": f"summary states a wrong equation: {wrong[0]}"}
        unread = unread_equations(parts.summary)
        if unread:  # what cannot be checked fails rather than passes
            return 0.0, {"reason": f"summary states an equation no rule reads: {unread[0]}"}
    return 1.0, {}


@register_reward("format_cold_start")
def format_cold_start(
    completion: str,
    example: Mapping[str, Any],
    *,
    token: str = "|special_token|",
    require_content: bool = True,
    end_tokens: tuple[str, ...] | list[str] = END_TOKENS,
) -> tuple[float, dict[str, Any]]:
    """1.0 if the completion is `token reasoning token summary` (R1 cold-start format), else 0.0.

    Exactly two occurrences of `token`; only whitespace before the first; the summary runs to the
    end of the text (trailing end-of-text tokens allowed) and, as `format_readable`'s, must hold
    a letter or a digit (with `require_content`): `...` is what a user would read.
    """
    if not token:
        raise ValueError("format_cold_start: `token` must be a non-empty string")
    if completion.count(token) != 2:
        return 0.0, {"reason": f"{token} x{completion.count(token)}, expected 2"}
    text = completion.lstrip()
    if not text.startswith(token):
        return 0.0, {"reason": f"text before the first {token}"}
    reasoning, _, summary = text[len(token) :].partition(token)
    summary = strip_end_tokens(summary, end_tokens)
    if require_content and not has_content(reasoning):
        return 0.0, {"reason": "empty reasoning"}
    if require_content and not has_content(summary):
        return 0.0, {"reason": "empty summary"}
    if require_content and not _says_something(summary, end_tokens):
        return 0.0, {"reason": "empty summary: no letter or digit"}
    return 1.0, {}
