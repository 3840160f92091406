"""The post-processing rules of cold-start data: which sampled completions become rows, and why not.

DeepSeek-R1 had people read its cold-start candidates; r1lab reads them by rule, with the
metrics every evaluation uses (`r1lab.metrics`), so "readable" means the same thing here as in
`r1lab eval`. A candidate is dropped for the first rule it fails, in this order (the exact rules:
docs/coldstart.md):

On the completion as sampled:
- `truncated`: cut by the token limit before it finished;
- `no_answer`: the task extracts no answer from it (an answer outside the tags is none);
- `wrong_answer`: the task's accuracy reward does not give it full marks;
- `mixed_language`: any word it wrote, anywhere (reasoning, summary, after the answer), is
  outside the scripts of the question's language (`metrics.mixed_language` over all its text).

On the row as written (the rewrite; its reasoning is the completion's):
- `wrong_answer`: the row itself is not graded right (a rewriter model's slip);
- `short_reasoning`: fewer than `min_claims` arithmetic claims (`metrics.arithmetic_claims`)
  in the reasoning: a guess is not a long chain of thought;
- `wrong_step`: a wrong step in the row (reasoning or summary) that it never revises
  (`metrics.unrevised_steps`: a wrong arithmetic claim or comparison must be stated again,
  rightly, after a reflection phrase that follows it; a wrong guess, `288 / 3 = 95?`, needs a
  reflection and a right step after it). Stricter than `metrics.self_corrects`, which excuses
  every wrong claim before one reflection: data teaches every step it holds;
- `mixed_language`: a word of the reasoning outside the language's scripts, or less than 95% of
  the summary's words in them (`metrics.readability`'s `one_language`);
- `repetition`, `long_paragraph`, `no_summary`: `metrics.readability`'s `no_repetition`,
  `paragraphs` and `summary` criteria.

Every rule can be switched off by leaving it out of `rules`; the order never changes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from r1lab import metrics
from r1lab.rewards.format import THINK_CLOSE
from r1lab.rewards.language import reasoning_text

CANDIDATE_RULES = ("truncated", "no_answer", "wrong_answer", "mixed_language")
"""Rules on the completion as sampled, in the order they are applied."""
ROW_RULES = (
    "wrong_answer",
    "short_reasoning",
    "wrong_step",
    "mixed_language",
    "repetition",
    "long_paragraph",
    "no_summary",
)
"""Rules on the row as written, in the order they are applied."""
RULES = ("truncated", "no_answer", "wrong_answer", "short_reasoning", "wrong_step")
RULES += ("mixed_language", "repetition", "long_paragraph", "no_summary", "duplicate")
"""Every rule's name (`duplicate`: the same completion of the same question was kept already,
applied when rows are collected)."""

# readability's criteria, named as the drop reasons they give.
_READABILITY = (
    ("repetition", "no_repetition"),
    ("long_paragraph", "paragraphs"),
    ("no_summary", "summary"),
)


def candidate_reason(
    completion: str,
    *,
    finished: bool,
    answer: str | None,
    correct: bool,
    language: str,
    rules: Collection[str] = RULES,
) -> str | None:
    """The first candidate rule `completion` fails (None: it passes them all).

    `answer` is what the task extracted (None: nothing), `correct` the task's accuracy verdict,
    `finished` False when the token limit cut it.
    """
    if "truncated" in rules and not finished:
        return "truncated"
    if "no_answer" in rules and (answer is None or not answer.strip()):
        return "no_answer"
    if "wrong_answer" in rules and not correct:
        return "wrong_answer"
    # Without a `</think>`, mixed_language reads the whole text (tags removed): every word the
    # completion wrote, so a switch of language after the reasoning cannot hide.
    everything = completion.replace(THINK_CLOSE, " ")
    if "mixed_language" in rules and metrics.mixed_language(everything, language):
        return "mixed_language"
    return None


def row_reason(
    row: str,
    *,
    language: str,
    is_correct: Callable[[str], bool],
    min_claims: int = 2,
    rules: Collection[str] = RULES,
) -> str | None:
    """The first row rule `row` fails (None: it is a row). `is_correct` grades a text with the
    task's accuracy reward."""
    if "wrong_answer" in rules and not is_correct(row):
        return "wrong_answer"
    reasoning = reasoning_text(row)
    claims = metrics.arithmetic_claims(reasoning)
    if "short_reasoning" in rules and len(claims) < min_claims:
        return "short_reasoning"
    # The whole row: a summary (a rewriter model writes its own) must not state a wrong step.
    if "wrong_step" in rules and metrics.unrevised_steps(row):
        return "wrong_step"
    readable = metrics.readability(row, language, finished=True)
    if "mixed_language" in rules and (
        metrics.mixed_language(row, language) or not readable["one_language"]
    ):
        return "mixed_language"
    for reason, criterion in _READABILITY:
        if reason in rules and not readable[criterion]:
            return reason
    return None
