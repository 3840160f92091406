"""The readable output format of the cold-start data, and the rule that rewrites a completion into it.

DeepSeek-R1 writes its cold-start data as `|special_token|<reasoning_process>|special_token|<summary>`.
r1lab's concrete tokens (docs/coldstart.md says why):

    <think> {reasoning} </think> {summary} <answer> {answer} </answer>

- `<think>` and `</think>` are what R1 and Qwen reasoning models emit, single tokens in the
  micro-world tokenizer, and where every r1lab metric already splits reasoning from summary
  (`r1lab.rewards.language.reasoning_text`, `r1lab.metrics.readability`).
- The summary is what a user reads: one short sentence in the question's language, ending in the
  answer in `<answer>` tags, so the tasks' accuracy rewards (the last `<answer>`) grade the row
  as they grade any completion.

`parse_readable` is the format's strict reader (one of each tag, in order, nothing around them).
It lives with the format rewards (`r1lab.rewards.format`), whose `format_readable` reward is it as
a score, so the cold-start data and the RL stage after it read the format alike; it is imported
here for the data code. `rule_rewrite` writes a completion's reasoning, verbatim but for
whitespace, with a summary built by rule from that reasoning (`summarize`).
"""

from __future__ import annotations

import re

from r1lab.metrics import arithmetic_claims, evaluate_expression
from r1lab.rewards.format import (  # noqa: F401 - Readable, parse_readable: re-exported
    ANSWER_CLOSE,
    ANSWER_OPEN,
    TAGS,
    THINK_CLOSE,
    THINK_OPEN,
    Readable,
    parse_readable,
)
from r1lab.rewards.language import reasoning_text

# The summary sentence, per language. `final` is the equation that gives the answer, `check`
# an equation that verifies it (multiplying a quotient back). A language without a table gets
# the equation alone, which has no words and so is in every language (metrics.readability).
SUMMARY = {
    "en": {
        "checked": "So {final}, since {check}.",
        "final": "So {final}.",
        "answer": "The answer is {answer}.",
    },
    "zh": {
        "checked": "所以 {final}，因为 {check}。",
        "final": "所以 {final}。",
        "answer": "答案是 {answer}。",
    },
}

_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*")
_LINE_SPACE = re.compile(r" ?\n ?")
_INTEGER = re.compile(r"-?\d+")


def format_readable(reasoning: str, summary: str, answer: str) -> str:
    """`<think> reasoning </think> summary <answer> answer </answer>`."""
    return (
        f"{THINK_OPEN} {reasoning.strip()} {THINK_CLOSE} {summary.strip()} "
        f"{ANSWER_OPEN} {answer.strip()} {ANSWER_CLOSE}"
    )


def clean_reasoning(completion: str) -> str:
    """The reasoning of a completion, whitespace tidied and nothing else changed.

    With a `</think>`: `reasoning_text` (from the first `<think>` to the last `</think>`, as every
    r1lab metric reads it). Without: the text before the last `<answer>` (all of it if none),
    tags removed. Runs of spaces become one; blank-line paragraph breaks stay (one blank line).
    """
    if THINK_CLOSE in completion:
        text = reasoning_text(completion)
    else:
        cut = completion.rfind(ANSWER_OPEN)
        text = completion if cut < 0 else completion[:cut]
        for tag in TAGS:
            text = text.replace(tag, " ")
    paragraphs = _BLANK_LINES.split(text.strip())
    tidy = [_LINE_SPACE.sub("\n", _SPACES.sub(" ", p)).strip() for p in paragraphs]
    return "\n\n".join(p for p in tidy if p)


def _value(expression: str) -> int | None:
    """The integer value of an arithmetic expression with an operator, else None."""
    try:
        value = evaluate_expression(expression)
    except ValueError:
        return None
    if value is None or value.denominator != 1 or not re.search(r"\d\s*[-+*/×÷]", expression):
        return None
    return int(value)


def final_equations(reasoning: str, answer: str) -> tuple[str | None, str | None]:
    """(final, check): the equation that gives `answer` and one that verifies it, or None.

    - final: when the answer is itself an expression (countdown), `answer = its value`; when it
      is an integer, the last right arithmetic claim of the reasoning whose value is the answer
      (`So 294 / 7 = 42` stated or guessed); else None.
    - check: for an integer answer, the last right claim after `final` in which the answer is
      an operand (`42 * 7 = 294`, multiplying back); else None.
    """
    answer = answer.strip()
    value = _value(answer)
    if value is not None:
        return f"{answer} = {value}", None
    if not _INTEGER.fullmatch(answer):
        return None, None
    n = int(answer)
    # A quotient with its remainder (`29 / 7 = 4 r 1`) is a step, never the answer's equation.
    claims = [c for c in arithmetic_claims(reasoning) if c.right and c.remainder is None]
    finals = [c for c in claims if c.value == n]
    if not finals:
        return None, None
    last = finals[-1]
    final = f"{' '.join(last.expression.split())} = {last.value}"
    operand = re.compile(rf"(?<![\d.]){re.escape(str(n))}(?![\d.])")
    checks = [c for c in claims if c.start > last.start and operand.search(c.expression)]
    check = f"{' '.join(checks[-1].expression.split())} = {checks[-1].value}" if checks else None
    return final, check


def summarize(reasoning: str, answer: str, language: str) -> str:
    """The summary sentence (without the answer tags) for a reasoning and its answer, in
    `language`: the final equation, with its check when the reasoning verified it, else the
    answer in words (SUMMARY; a language without a table: the bare equation or answer)."""
    final, check = final_equations(reasoning, answer)
    table = SUMMARY.get(language)
    if table is None:
        return final or answer.strip()
    if final and check:
        return table["checked"].format(final=final, check=check)
    if final:
        return table["final"].format(final=final)
    return table["answer"].format(answer=answer.strip())


def rule_rewrite(completion: str, answer: str, language: str) -> str:
    """A completion in the readable format: its reasoning (`clean_reasoning`), a summary by rule
    (`summarize`) and `answer`, the answer the task extracted from it."""
    reasoning = clean_reasoning(completion)
    return format_readable(reasoning, summarize(reasoning, answer, language), answer)
