"""Evaluation metrics as pure functions: pass@k, majority voting, reflection and length stats.

Conventions (R1_SYSTEM.md section 3):
- pass@k is the unbiased estimator from n samples with c correct, not the fraction of k-sample
  draws a single run happened to see.
- Majority voting groups answers by the task's equivalence, not by string: `1/2` and `0.5` are
  one vote. An unextractable answer (None) never wins. Ties go to the group whose first member
  appears earliest, so a vote is reproducible from the sample order alone.
- Reflection is a phrase match, case-insensitive. A phrase written in Latin (or any non-CJK)
  script matches on word boundaries: "wait" counts in "Wait," but not in "waiting" or "await";
  a CJK character next to it is a boundary ("好的wait，" counts), a Latin letter or digit is not.
  Inflections count only when listed ("mistake" does not match "mistakes"). A phrase holding a
  CJK character matches anywhere, without boundaries: Chinese is written without spaces, so
  "等等" must count inside "我算错了。等等，再看". It also counts inside longer words ("没错了",
  "that's right", holds "错了"): a known limit of phrase matching.
- Self-correction is stricter than reflection: saying "wait" checks nothing. A completion
  self-corrects iff, in its reasoning (r1lab.rewards.language.reasoning_text),
  (a) it states a wrong arithmetic claim `E = v` (below),
  (b) a reflection phrase starts after that wrong claim ends,
  (c) every claim that starts after that phrase ends is right, and at least one does, and
  (d) its final answer is correct (decided by the caller's grader).
  Equivalently: a reflection phrase follows the last wrong claim, and a claim follows the
  first such phrase. A second slip after the reflection, left uncorrected, is no correction.
- Claims and comparisons are read in the text as a reader sees it (`as_read`, of the same
  length, so offsets stay the text's): digits of any script and the full-width, small and
  mathematical forms of digits, letters and `+ - * / = < > ( )` as ASCII (`７５ ＋ １ ＝ ７５`
  is `75 + 1 = 75`; not NFKC, which makes `10³` the number 103, nor Chinese punctuation:
  `，` is no thousands separator), `∗ ⋅ ·` as `*`, `∕` as `/`, an en dash as `-`, any space
  as a space, and markdown emphasis as spaces (`**6*7=41**`), paired delimiters only, so an
  operator spaced on one side (`7 *6`) stays an operator.
- An arithmetic claim is a lone `=` (not `==`, `<=`, `>=`, `!=`, `:=`, `=>`) on one line,
  with an expression E just before it and an integer v just after it. E is the maximal run of
  integers, `+ - − * × / ÷ \\times \\cdot \\div`, parentheses and spaces before the `=`
  (in `8*9+6=77`, E is `8*9+6`), unmatched leading `(` dropped. E must parse whole (unary
  minus; no implicit multiplication, no powers) and hold a binary operator: a bare number
  computes nothing. v is the whole run after the `=`, unmatched trailing `)` dropped, and
  must be `-?digits`: `= 3*4`, `= 1/2`, `= 3.5`, `= 1,000` and `= [4, 12]` are not claims.
  A number of more than MAX_DIGITS (100) digits, in E or as v, makes no claim (nor comparison).
  E is evaluated exactly (fractions, no eval()); a division by zero makes the claim wrong.
  Defined edge cases:
  - a number glued to a Latin letter or digit, or to a `.`/`,` next to a digit (`x2`, `2x`,
    `3.5`, `1,000`), is part of a larger token; an E or v that it starts or ends makes no
    claim. Nor does an E right after a lone Latin letter (`3 x 4 = 12`: algebra, or x for
    times). CJK text is no glue: `所以294÷7=42。` claims `294÷7 = 42`;
  - `a = b = c`: each `=` is read on its own, E stopping at the previous `=`; so
    `3*4 = 12 = 13` claims only `3*4 = 12` (`12` is a bare number) and `2*6 = 12 = 3*4` only
    `2*6 = 12` (`3*4` is no integer);
  - lists are not sums: `[4, 12, 3] = 19` and `4, 12, 3 = 19` claim nothing;
  - a date is text, `On 2024-01-15` claims nothing (only an `= integer` right after it would
    make it the expression 2024-1-15);
  - a `?` after v changes nothing: a guess (`294 / 7 = 41?`) is checked like a statement;
  - a remainder after v (`29 / 7 = 4 r 1`, `29 / 7 = 4 余 1`) makes it a division with
    remainder when E is `a / b` of two integers: right iff a = v * b + k with 0 <= k < b (`r`
    and `R` must stand apart: `= 4 rows` is the claim 4). After any other E the remainder is
    not read and `E = v` is checked as usual, so `3 + 4 = 8 r 1` is a wrong claim.
- A comparison states how two integers relate; `comparisons` finds two kinds:
  - `a R b`, R one of `< > = ≠ ≤ ≥ != <= >=`, a and b integers (`-?digits`) standing alone:
    nothing glued to them (a digit, letter, `_`, `.`, `,`, `^`, `(`, `\\`, an operator) and,
    across spaces, no operator, parenthesis, relation or `!` beside the pair, so no expression
    is read as a number (`6 + 1 = 7` holds no comparison `1 = 7`, nor `1 < 2 < 3`, nor
    `3*4 = 12 = 13`). The same unit may follow each number (`3 digits > 2 digits`,
    `1 位 > 2 位`): the numbers are compared. `4, 12, 3 = 19` states `3 = 19` (wrong);
  - `a vs b: ...` (also `versus`, `对比`, either colon) up to the end of its clause (`.`, `;`,
    `!`, `?`, a newline, or their full-width forms), whose comma-separated items include a
    verdict (`VERDICTS`: `less`/`much less`/`小`/`小很多` say a < b, `more`/`大` a > b,
    `same`/`equal`/`yes`/`相等`/`对` a = b, `no`/`不对` a ≠ b), alone or starting its item
    (`less by 18 = 3 * 6`). It holds iff every verdict of the clause does
    (`287 vs 294: 2 = 2, 8 < 9, less, no.` holds; its digit pairs are comparisons too).
- A wrong step is a wrong arithmetic claim or a comparison that does not hold; it is revised
  (`unrevised_steps` lists those that are not) iff a reflection phrase starts after it and,
  after that phrase, the same step is stated again and is right: a claim of the same
  expression (spaces ignored), a comparison of the same two numbers (either order). A wrong
  guess (a claim whose value is followed by `?`, `？` or `吗？`: `288 / 3 = 95?`) asks rather than
  states: after a reflection phrase, any right step revises it. Stricter than self-correction,
  where one reflection excuses every wrong claim before it; the cold-start data's `wrong_step`
  rule (r1lab.data.filters) uses this one.
- Language metrics take the target language from each example's `language` (missing: "en").
  A completion mixes languages iff its reasoning holds a count_words word outside the
  target's scripts: a Han word for English, a Latin word (2+ letters) for Chinese, a word
  of any other script (`other`) for either.
- Readability is DeepSeek-R1's for its cold-start data. Words: each CJK character is one,
  any other whitespace-free run is one, lower-cased ("7*9=63," is one word). A completion is
  readable iff all four hold:
  - one language: the reasoning and the summary (the text after `</think>`, tags removed)
    each have >= 95% of their count_words words in the target's scripts; a part without any
    word (an empty reasoning, `<answer> 42 </answer>`) passes, as nothing in it is foreign;
  - no runaway repetition: no word 8-gram occurs 3+ times anywhere in the completion
    (overlaps count: a 4-word phrase said 4 times in a row makes one 8-gram occur 3 times).
    A worked trace changes its numbers every step and passes; a loop fails;
  - paragraphs: none longer than 150 words, splitting on blank lines and at `</think>`;
  - summary: the completion finished (not cut by the token limit) and has non-empty text
    after `</think>`, answer tags included (`<answer> 42 </answer>` is a summary).
- A summary is wrong iff it states a wrong arithmetic claim (read as above, so
  `**75 + 1 = 75**` and `７５ ＋ １ ＝ ７５` are) or holds a number of more than MAX_DIGITS
  digits (which no claim reads: it fails rather than passes unchecked). The summary is the text after the last `</think>` up to the `<answer>`
  after it (none without a `</think>`). Comparisons are not read in it: a bare `50 = 5` is as
  often an expression the reader cannot parse (`10% of 50 = 5`). A summary is what a user
  reads, and a policy can imitate its shape with numbers no step computed (`So 75 + 1 = 75,
  since 75 * 6 = 405.` over a right answer). Not read either, so a known limit: equations in
  words (`75 plus 1 is 75`), split over lines, or in notation the reader does not parse
  (`\\frac{450}{6} = 74`, `2^3 = 9`); `unread_equations` lists the last two kinds (but LaTeX
  and algebra), for a reward that must fail closed.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import NamedTuple

from r1lab.rewards.language import (
    CJK,
    LANGUAGE_SCRIPTS,
    compatibility_base,
    count_words,
    reasoning_text,
    shows_nothing,
)

DEFAULT_REFLECTION_PHRASES: tuple[str, ...] = (
    "wait",
    "re-check",
    "recheck",
    "verify",
    "let me check",
    "mistake",
    "double-check",
    "double check",
    "check again",
    "等等",
    "检查一下",
    "再检查",
    "验算",
    "错了",
)


# --- pass@k -----------------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n - c, k) / C(n, k).

    Computed as 1 - prod_{i = n-c+1}^{n} (1 - k / i) (Chen et al. 2021), which never forms the
    huge binomials. c = 0 gives exactly 0; n - c < k (every k-subset holds a correct sample)
    gives exactly 1.
    """
    if not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got n={n}, k={k}: sample at least k answers")
    if n - c < k:
        return 1.0
    all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        all_wrong *= 1.0 - k / i
    return 1.0 - all_wrong


# --- majority voting --------------------------------------------------------------------------


def _vote(
    answers: Sequence[str | None], equivalent: Callable[[str, str], bool]
) -> tuple[int | None, int]:
    """(index of the winning group's first member, group size); (None, 0) if no answer."""
    firsts: list[int] = []  # per group, the index of its first member
    counts: list[int] = []
    group_of: dict[str, int] = {}  # exact string -> group: equivalent() runs once per spelling
    for i, answer in enumerate(answers):
        if answer is None:
            continue
        g = group_of.get(answer)
        if g is None:
            # Compare with each group's first member only: a non-transitive checker (a numeric
            # tolerance, say) then still gives one deterministic grouping.
            g = next((j for j, f in enumerate(firsts) if equivalent(answers[f], answer)), None)
            if g is None:
                g = len(firsts)
                firsts.append(i)
                counts.append(0)
            group_of[answer] = g
        counts[g] += 1
    if not firsts:
        return None, 0
    best = max(range(len(firsts)), key=counts.__getitem__)  # max keeps the earliest of ties
    return firsts[best], counts[best]


def majority_vote(
    answers: Sequence[str | None], equivalent: Callable[[str, str], bool]
) -> tuple[str | None, int]:
    """The most frequent answer up to equivalence, and its number of votes.

    Answers that are the same string are grouped without calling `equivalent`; a new spelling is
    compared, as `equivalent(first_member, new)`, with the first member of each group in order
    and joins the first that matches. The winner is returned as its group's first member.
    None never wins; all None (or no answers) gives (None, 0). Ties: the group whose first
    member appears earliest in `answers` wins.
    """
    first, count = _vote(answers, equivalent)
    return (None, 0) if first is None else (answers[first], count)


def maj_at_k_correct(
    answers: Sequence[str | None],
    correct: Sequence[bool],
    equivalent: Callable[[str, str], bool],
) -> bool:
    """Whether the majority-voted answer is correct, from the per-sample grades.

    Uses the grades already given to the samples (the ones pass@k counts), so maj@k and pass@k
    agree by construction: the voted group is as correct as its first member. No answer, no
    credit. Pass the first k answers and grades for maj@k.
    """
    if len(answers) != len(correct):
        raise ValueError(f"{len(answers)} answers but {len(correct)} grades")
    first, _ = _vote(answers, equivalent)
    return first is not None and bool(correct[first])


# --- reflection -------------------------------------------------------------------------------


_HAS_CJK = re.compile(f"[{CJK}]")
_NON_CJK_WORD = f"[^\\W{CJK}]"  # a letter, digit or _ of a script written with spaces


@functools.lru_cache(maxsize=64)
def _reflection_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    if any(not p.strip() for p in phrases):
        raise ValueError(f"reflection phrases must not be empty: {phrases!r}")
    # words of a phrase may be split by any whitespace ("let me\ncheck"); lookarounds rather
    # than \b so that a phrase may start or end with a non-word character.
    bounded, free = [], []
    for p in phrases:
        (free if _HAS_CJK.search(p) else bounded).append(r"\s+".join(map(re.escape, p.split())))
    alternatives = []
    if bounded:
        alternatives.append(
            f"(?<!{_NON_CJK_WORD})(?:" + "|".join(bounded) + f")(?!{_NON_CJK_WORD})"
        )
    if free:
        alternatives.append("(?:" + "|".join(free) + ")")
    if not alternatives:
        return re.compile(r"(?!)")  # matches nothing
    return re.compile("|".join(alternatives), re.IGNORECASE)


def has_reflection(text: str, phrases: Sequence[str] = DEFAULT_REFLECTION_PHRASES) -> bool:
    """Whether `text` contains any of the phrases (whole words unless CJK), ignoring case."""
    return _reflection_pattern(tuple(phrases)).search(text) is not None


def reflection_rate(
    texts: Sequence[str], phrases: Sequence[str] = DEFAULT_REFLECTION_PHRASES
) -> float:
    """Fraction of `texts` with at least one reflection phrase."""
    if not texts:
        raise ValueError("reflection_rate of no texts is undefined")
    pattern = _reflection_pattern(tuple(phrases))
    return sum(pattern.search(t) is not None for t in texts) / len(texts)


# --- arithmetic claims and self-correction ----------------------------------------------------


class Claim(NamedTuple):
    """An equation `expression = value` stated in a text, and whether it is right."""

    start: int  # where the expression starts
    end: int  # just after the value
    expression: str
    value: int
    right: bool
    remainder: int | None = None  # stated after the value: `29 / 7 = 4 r 1`


# A run of what an arithmetic expression is made of, spaces included, never a newline.
_RUN = re.compile(r"(?:[0-9 \t+\-−*×/÷()]|\\(?:times|cdot|div)(?![A-Za-z]))+")
_EQUALS = re.compile(r"(?<![=<>!:])=(?![=>])")
_GLUE = re.compile(r"[A-Za-z0-9_]")  # a number touching one of these is part of a larger token
_INTEGER = re.compile(r"[-−]?\d+")
_TOKEN = re.compile(r"\s*(?:(\d+)|(\\times|\\cdot|\\div|[-−+*×/÷()]))")
_OPERATOR = {"+": "+", "-": "-", "−": "-", "*": "*", "×": "*", "\\times": "*", "\\cdot": "*"}
_OPERATOR |= {"/": "/", "÷": "/", "\\div": "/"}
_BINARY = re.compile(
    r"[\d)][ \t]*(?:[-−+*×/÷]|\\(?:times|cdot|div))"
)  # an operator after an operand
_MAX_NESTING = 32
# After a claim's value: its remainder (`= 4 r 1`, `= 4 余 1`), and the `a / b` it needs.
_REMAINDER = re.compile(r"[ \t]*(?:[rR][ \t]+|余[ \t]*)(\d+)(?![A-Za-z0-9_]|[.,]\d)")
_QUOTIENT = re.compile(r"[ \t]*(\d+)[ \t]*(?:/|÷|\\div)[ \t]*(\d+)[ \t]*")


MAX_DIGITS = 100
"""Digits of the longest integer the claim and comparison readers read; a longer one makes no
claim or comparison (Python refuses to convert 4,300 digits or more, and no worked step is this
long: a policy's runaway `1111...` must not stop a batch)."""


def _integer(digits: str) -> int | None:
    """`-?digits` (`−` as minus) as an int, None when longer than MAX_DIGITS digits."""
    digits = digits.replace("−", "-")
    return None if len(digits.lstrip("-")) > MAX_DIGITS else int(digits)


class _NotAnExpression(Exception):
    pass


def _tokens(expression: str) -> list[Fraction | str]:
    out: list[Fraction | str] = []
    pos = 0
    while pos < len(expression):
        m = _TOKEN.match(expression, pos)
        if m is None:
            raise _NotAnExpression
        number, symbol = m.groups()
        if number and len(number) > MAX_DIGITS:
            raise _NotAnExpression
        out.append(Fraction(int(number)) if number else _OPERATOR.get(symbol, symbol))
        pos = m.end()
    return out


def evaluate_expression(expression: str) -> Fraction | None:
    """The exact value of an integer expression (+ - * / × ÷, parentheses, unary minus), None if
    it divides by zero; ValueError if `expression` is not one. No eval(): a small parser."""
    try:
        tokens = _tokens(expression)
    except _NotAnExpression:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from None
    pos = 0

    def peek() -> Fraction | str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> Fraction | str:
        nonlocal pos
        if pos >= len(tokens):
            raise _NotAnExpression
        pos += 1
        return tokens[pos - 1]

    def atom(depth: int) -> Fraction:
        negative = False
        while peek() == "-":  # unary minus, in a loop: "------3" must not recurse
            take()
            negative = not negative
        token = take()
        if token == "(":
            if depth >= _MAX_NESTING:
                raise _NotAnExpression
            value = sum_(depth + 1)
            if take() != ")":
                raise _NotAnExpression
        elif isinstance(token, Fraction):
            value = token
        else:
            raise _NotAnExpression
        return -value if negative else value

    def product(depth: int) -> Fraction:
        value = atom(depth)
        while peek() in ("*", "/"):
            op, right = take(), atom(depth)
            if op == "*":
                value *= right
            elif right == 0:
                raise ZeroDivisionError
            else:
                value /= right
        return value

    def sum_(depth: int) -> Fraction:
        value = product(depth)
        while peek() in ("+", "-"):
            op, right = take(), product(depth)
            value = value + right if op == "+" else value - right
        return value

    try:
        value = sum_(0)
        if pos != len(tokens):
            raise _NotAnExpression
    except _NotAnExpression:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from None
    except ZeroDivisionError:
        return None
    return value


def _is_letter(c: str) -> bool:
    return c.isascii() and c.isalpha()


def _lhs(text: str, run: re.Match[str]) -> tuple[int, str] | None:
    """(start, text) of the expression that the run just before a `=` states, or None."""
    raw, start = run.group(), run.start()
    i, j = 0, len(raw)
    while i < j and raw[i] in " \t":
        i += 1
    before = text[start - 1 : start]
    if i == 0 and (_GLUE.match(before) or before in (".", ",")) and before:
        return None  # the run starts inside a token: x2+3, 3.5*2, 1,000 + 5
    if _is_letter(before) and not _is_letter(text[start - 2 : start - 1]):
        return None  # 3 x 4 = 12, 2 y = 6: algebra, or an x for times
    while j > i and raw[j - 1] in " \t":
        j -= 1
    while i < j and raw[i] == "(" and raw.count("(", i, j) > raw.count(")", i, j):
        i += 1
        while i < j and raw[i] in " \t":
            i += 1
    return (start + i, raw[i:j]) if i < j else None


def _glued_after(text: str, end: int) -> bool:
    """Whether the number ending at `end` goes on as a larger token: a letter, digit or `_`
    next to it, or a `.`/`,` followed by a digit (`12x`, `3.5`, `1,000`)."""
    after = text[end : end + 2]
    return bool(_GLUE.match(after[:1])) or (after[:1] in (".", ",") and after[1:2].isdigit())


def _rhs(text: str, run: re.Match[str]) -> tuple[int, int] | None:
    """(end, value) of the integer that the run just after a `=` states, or None."""
    raw, start = run.group(), run.start()
    i, j = 0, len(raw)
    while i < j and raw[i] in " \t":
        i += 1
    while j > i and raw[j - 1] in " \t":
        j -= 1
    if j == len(raw) and _glued_after(text, run.end()):
        return None  # the run ends at a token: = 12x, = 3.5, = 1,000 are no integers
    while j > i and raw[j - 1] == ")" and raw.count(")", i, j) > raw.count("(", i, j):
        j -= 1
        while j > i and raw[j - 1] in " \t":
            j -= 1
    value = raw[i:j]
    number = _integer(value) if _INTEGER.fullmatch(value) else None
    return None if number is None else (start + j, number)


# Characters a reader takes for an ASCII one, beyond the full-width and other compatibility
# forms (`compatibility_base`): operators written with another sign, and the en dash as a minus.
_LOOKALIKES = {"∗": "*", "⋅": "*", "·": "*", "∕": "/", "–": "-", "‒": "-"}
# The signs of arithmetic; not punctuation, whose full-width forms are Chinese text's own (the
# comma in `等等，3+4=7` is no thousands separator).
_READ_SIGNS = "+-*/=<>()"
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_DELIMITERS = re.compile(r"[*_]+")
_BLANKS = re.compile(r"[ \t]*")


@functools.lru_cache(maxsize=4096)
def _read_char(c: str) -> str:
    """The ASCII character a reader takes `c` for, else `c` (one character either way): a
    digit of any script, a letter or sign of arithmetic in a compatibility form (full-width,
    small, mathematical), a look-alike operator, a space (any space, and what shows nothing:
    zero-width and format characters, combining marks, private use: `shows_nothing`)."""
    if c in _LOOKALIKES:
        return _LOOKALIKES[c]
    if unicodedata.category(c) == "Zs" or shows_nothing(c):
        return " "  # a space, or nothing to see: zero-width and bidi marks, private use
    if unicodedata.category(c) == "Nd":  # a digit of any script: ٧, ७, 𝟕
        return str(unicodedata.decimal(c))
    base = compatibility_base(c)
    if base is not None and base.isascii() and (base.isalnum() or base in _READ_SIGNS):
        return base
    return c


def _emphasis(text: str) -> list[tuple[int, int]]:
    """Spans of markdown emphasis delimiters in `text` (`**` of `**75 + 1 = 75**`).

    A run of one to three `*` (or `_`) opens when it touches the next character and the
    nearest character before it across spaces is no operand (a digit or `)`); it closes when
    it touches the previous character and the nearest after it is no operand (a digit or
    `(`). A closer pairs with the latest unclosed opener of the same run on its line. So an
    operator between two operands is never emphasis, however it is spaced (`7 *6`, `7* 6`,
    `6*7`, `2**3`), and `6 * **7** = 42` is `6 * 7 = 42`. Linear in the text.
    """
    spans: list[tuple[int, int]] = []
    openers: dict[str, list[int]] = {}  # each run's unclosed openers on the current line
    done = 0  # where the previous run ended: every scan below covers only a gap between runs
    for m in _DELIMITERS.finditer(text):
        run, start, end = m.group(), m.start(), m.end()
        if text.find("\n", done, start) >= 0:
            openers = {}
        done = end
        if len(run) > 3 or len(set(run)) > 1:
            continue
        i = start - 1
        while i >= 0 and text[i] in " \t":
            i -= 1
        before = text[i] if i >= 0 else ""
        j = _BLANKS.match(text, end).end()
        after = text[j : j + 1]
        touches_previous = start > 0 and not text[start - 1].isspace()
        touches_next = end < len(text) and not text[end].isspace()
        if touches_previous and not (after and after in "0123456789(") and openers.get(run):
            opened = openers[run].pop()
            spans += [(opened, opened + len(run)), (start, end)]
        elif touches_next and not (before and before in "0123456789)"):
            openers.setdefault(run, []).append(start)
    return sorted(spans)


def as_read(text: str) -> str:
    """`text` as a reader reads its arithmetic, of the same length (offsets keep their place).

    Full-width, small and mathematical forms and digits of any script as ASCII (`７５ ＋ １ ＝
    ７５`, `𝟕`, `٧`; superscripts stay, `10³` is not `103`), `∗ ⋅ ·` as `*`, `∕` as `/`, the en
    dash as `-`, any space as ` `, and markdown emphasis (`_emphasis`) as spaces."""
    if not text.isascii():
        text = _NON_ASCII.sub(lambda m: _read_char(m.group()), text)
    if "*" in text or "_" in text:
        spans = _emphasis(text)
        if spans:
            parts, last = [], 0
            for a, b in spans:
                parts += [text[last:a], " " * (b - a)]
                last = b
            text = "".join([*parts, text[last:]])
    return text


def arithmetic_claims(text: str) -> list[Claim]:
    """The equations `E = v` stated in `text`, in order (the exact rule: the module docstring),
    read as a reader sees them (`as_read`): offsets are `text`'s, expressions the read ones."""
    if "=" not in text and "＝" not in text and "﹦" not in text:
        return []
    return _claims(as_read(text))


def _claims(text: str) -> list[Claim]:
    """`arithmetic_claims` of a text already read (`as_read`)."""
    claims: list[Claim] = []
    runs = list(_RUN.finditer(text))
    by_end = {m.end(): m for m in runs}
    by_start = {m.start(): m for m in runs}
    for eq in _EQUALS.finditer(text):
        left, right = by_end.get(eq.start()), by_start.get(eq.end())
        if left is None or right is None:
            continue
        lhs, rhs = _lhs(text, left), _rhs(text, right)
        if lhs is None or rhs is None or not _BINARY.search(lhs[1]):
            continue  # no bare number is a computation: 4, 12, 3 = 19 is a list
        remainder = _REMAINDER.match(text, rhs[0])
        division = _QUOTIENT.fullmatch(lhs[1]) if remainder else None
        if remainder and division:  # 29 / 7 = 4 r 1: integer division, the remainder stated
            a, b, k = (_integer(x) for x in (division[1], division[2], remainder[1]))
            if a is None or b is None or k is None:
                continue  # a number too long to read
            right = k < b and a == rhs[1] * b + k
            claims.append(Claim(lhs[0], remainder.end(), lhs[1], rhs[1], right, k))
            continue
        try:
            exact = evaluate_expression(lhs[1])
        except ValueError:
            continue  # not an expression: 2 3+4, 2**3, 2(3+4)
        claims.append(Claim(lhs[0], rhs[0], lhs[1], rhs[1], exact == rhs[1]))
    return claims


class Comparison(NamedTuple):
    """A comparison of two integers stated in a text (`a < b`, `a vs b: less`), and whether it
    holds."""

    start: int
    end: int
    a: int
    b: int
    relation: str  # <, >, =, ≠, ≤ or ≥ (a verdict word says which)
    holds: bool


_RELATIONS: dict[str, Callable[[int, int], bool]] = {
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "=": lambda a, b: a == b,
    "≠": lambda a, b: a != b,
    "≤": lambda a, b: a <= b,
    "≥": lambda a, b: a >= b,
}
_RELATION_ALIASES = {"!=": "≠", "<=": "≤", ">=": "≥"}
VERDICTS: dict[str, str] = {
    "much less": "<",
    "much more": ">",
    "less": "<",
    "more": ">",
    "same": "=",
    "equal": "=",
    "yes": "=",
    "no": "≠",
    "小很多": "<",
    "大很多": ">",
    "小": "<",
    "大": ">",
    "相等": "=",
    "对": "=",
    "不对": "≠",
}
"""The words that end a `vs` comparison, and the relation each one states."""
_INT = r"(?<!\d)[-−]?\d+(?!\d)"  # a whole run of digits: never backtracked into
# `a REL b` of bare integers, each with the same unit word or none (`1 digits < 2 digits`).
_RELATION = re.compile(
    rf"({_INT})((?:[ \t]+[A-Za-z]+|[ \t]*[{CJK}])?)[ \t]*(!=|<=|>=|[<>=≠≤≥])[ \t]*({_INT})\2"
)
_VS = re.compile(
    rf"({_INT})[ \t]*(?:vs\.?|versus|对比)[ \t]*({_INT})[ \t]*[:：]([^.;!?\n。；！？]*)"
)
_VERDICT_ITEM = re.compile(
    "(" + "|".join(map(re.escape, sorted(VERDICTS, key=len, reverse=True))) + r")(?:$|[ \t!！])"
)
_WHITESPACE = re.compile(r"\s+")
_QUESTION = re.compile(r"[ \t]*(?:吗[ \t]*)?[?？]")  # after a claim's value: a guess
_OPERAND_GLUE = re.compile(r"[0-9A-Za-z_.,^+\-−*×/÷(\\]")  # glued to an integer: an operand
_OPERAND_SIDE = "+-−*×/÷^()=<>≠≤≥!"  # before or after it across spaces: an operand


def _alone_before(text: str, start: int) -> bool:
    """Whether nothing before text[start:] makes the integer there an operand: no digit,
    letter, `.`/`,` glued to it, and no operator, `(` or relation before it (across spaces)."""
    if start and _OPERAND_GLUE.match(text, start - 1):
        return False
    i = start
    while i and text[i - 1] in " \t":
        i -= 1
    return not (i and text[i - 1] in _OPERAND_SIDE)


def _alone_after(text: str, end: int) -> bool:
    """Whether nothing after text[:end] makes the integer there an operand (as above)."""
    if _glued_after(text, end):
        return False
    i = end
    while i < len(text) and text[i] in " \t":
        i += 1
    return not (i < len(text) and text[i] in _OPERAND_SIDE)


def comparisons(text: str) -> list[Comparison]:
    """The comparisons of integers stated in `text`, in order (the exact rule: the module
    docstring), read as a reader sees them (`as_read`)."""
    return _comparisons(as_read(text))


def _comparisons(text: str) -> list[Comparison]:
    """`comparisons` of a text already read (`as_read`)."""
    found: list[Comparison] = []
    for m in _RELATION.finditer(text):
        if not (_alone_before(text, m.start()) and _alone_after(text, m.end())):
            continue
        a, b = _integer(m[1]), _integer(m[4])
        if a is None or b is None:
            continue
        relation = _RELATION_ALIASES.get(m[3], m[3])
        found.append(Comparison(m.start(), m.end(), a, b, relation, _RELATIONS[relation](a, b)))
    for m in _VS.finditer(text):
        a, b = _integer(m[1]), _integer(m[2])
        if a is None or b is None:
            continue
        verdicts = []
        for item in re.split(r"[,，]", m[3]):
            v = _VERDICT_ITEM.match(item.strip(" \t").lower())
            if v:
                verdicts.append(VERDICTS[v[1]])
        if verdicts:
            holds = all(_RELATIONS[r](a, b) for r in verdicts)
            found.append(Comparison(m.start(), m.end(), a, b, verdicts[0], holds))
    return sorted(found)


def unrevised_steps(
    text: str, phrases: Sequence[str] = DEFAULT_REFLECTION_PHRASES
) -> list[Claim | Comparison]:
    """The wrong steps of `text` that it never revises (the exact rule: the module docstring)."""
    read = as_read(text)  # read once for both; offsets are the text's
    steps: list[Claim | Comparison] = [*_claims(read), *_comparisons(read)]
    steps.sort(key=lambda s: s.start)
    pattern = _reflection_pattern(tuple(phrases))

    def right(s: Claim | Comparison) -> bool:
        return s.right if isinstance(s, Claim) else s.holds

    def what(s: Claim | Comparison) -> object:  # what a step states, to know it restated
        if isinstance(s, Claim):
            return _WHITESPACE.sub("", s.expression)
        return frozenset((s.a, s.b))

    # Where each statement is last made right, and any right step at all: a wrong step is
    # revised iff that is after the first reflection following it. Linear in the text.
    last_right: dict[object, int] = {}
    for s in steps:
        if right(s):
            last_right[what(s)] = last_right[None] = s.start
    left: list[Claim | Comparison] = []
    phrase: re.Match[str] | None = None
    none_after = False  # no phrase after an earlier wrong step: none after this one either
    for s in steps:
        if right(s):
            continue
        if not none_after and (phrase is None or phrase.start() < s.end):
            phrase = pattern.search(text, s.end)  # else the one found is still the first
            none_after = phrase is None
        guess = isinstance(s, Claim) and _QUESTION.match(text, s.end) is not None
        # a guess asks, so any right step after a reflection checks it; else the same step
        after = last_right.get(None if guess else what(s), -1)
        if phrase is None or after < phrase.end():
            left.append(s)
    return left


def self_corrects(
    text: str, correct: bool, phrases: Sequence[str] = DEFAULT_REFLECTION_PHRASES
) -> bool:
    """Whether a completion self-corrects (the exact rule: the module docstring)."""
    if not correct:
        return False
    reasoning = reasoning_text(text)
    claims = arithmetic_claims(reasoning)
    wrong = [c for c in claims if not c.right]
    if not wrong:
        return False
    # Any phrase after the last wrong claim has only right claims after it; the first such
    # phrase has the most of them.
    phrase = _reflection_pattern(tuple(phrases)).search(reasoning, wrong[-1].end)
    return phrase is not None and any(c.start >= phrase.end() for c in claims)


def self_correction_rate(
    texts: Sequence[str],
    corrects: Sequence[bool],
    phrases: Sequence[str] = DEFAULT_REFLECTION_PHRASES,
) -> float:
    """Fraction of `texts` that self-correct, given each one's final-answer correctness."""
    if not texts:
        raise ValueError("self_correction_rate of no texts is undefined")
    if len(texts) != len(corrects):
        raise ValueError(f"{len(texts)} texts but {len(corrects)} grades")
    return sum(self_corrects(t, c, phrases) for t, c in zip(texts, corrects, strict=True)) / len(
        texts
    )


# --- language and readability -----------------------------------------------------------------


def _check_language(language: str) -> frozenset[str]:
    if language not in LANGUAGE_SCRIPTS:
        raise ValueError(f"unknown language '{language}'; valid: {', '.join(LANGUAGE_SCRIPTS)}")
    return LANGUAGE_SCRIPTS[language]


def mixed_language(completion: str, language: str) -> bool:
    """Whether the reasoning holds a word outside `language`'s scripts (count_words' words).

    For the micro-world's two languages: a Han word in an English reasoning, a Latin word of 2+
    letters in a Chinese one (single letters are variables, not words), and in either a word of
    a script neither names (Arabic, Thai, ...)."""
    scripts = _check_language(language)
    counts = count_words(reasoning_text(completion))
    return any(n for script, n in counts.items() if script not in scripts)


READABLE_CONSISTENCY = 0.95
"""Least share of on-language words in the reasoning and in the summary, each."""
REPEAT_NGRAM = 8
"""Words in the n-gram whose repetition is runaway."""
REPEAT_TIMES = 3
"""Occurrences of one n-gram that make a completion runaway."""
PARAGRAPH_WORDS = 150
"""Most words in one paragraph."""

_UNIT = re.compile(f"[{CJK}]|[^\\s{CJK}]+")  # a word: a CJK character or a whitespace-free run
_TAGS = re.compile(r"</?(?:think|answer)>")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n|</think>")


def _words(text: str) -> list[str]:
    return _UNIT.findall(text.lower())


def _on_language(text: str, scripts: frozenset[str]) -> bool:
    counts = count_words(text)
    total = sum(counts.values())
    on = sum(n for script, n in counts.items() if script in scripts)
    return total == 0 or on >= READABLE_CONSISTENCY * total


def _runaway(words: Sequence[str]) -> bool:
    grams = Counter(zip(*(words[i:] for i in range(REPEAT_NGRAM)), strict=False))
    return any(n >= REPEAT_TIMES for n in grams.values())


def readability(completion: str, language: str, finished: bool = True) -> dict[str, bool]:
    """DeepSeek-R1's readability, one bool per criterion (the rule: the module docstring).

    Keys: `one_language`, `no_repetition`, `paragraphs`, `summary`, and `readable` (all four).
    `finished` is False for a completion cut by the token limit.
    """
    scripts = _check_language(language)
    close = completion.find("</think>")
    after = completion[close + len("</think>") :] if close >= 0 else ""
    summary = _TAGS.sub(" ", after)
    paragraphs = _PARAGRAPH_BREAK.split(completion)
    out = {
        "one_language": _on_language(reasoning_text(completion), scripts)
        and _on_language(summary, scripts),
        "no_repetition": not _runaway(_words(completion)),
        "paragraphs": all(len(_words(_TAGS.sub(" ", p))) <= PARAGRAPH_WORDS for p in paragraphs),
        "summary": finished and close >= 0 and bool(_TAGS.sub("", after).strip()),
    }
    out["readable"] = all(out.values())
    return out


def summary_text(completion: str) -> str:
    """The text after the last `</think>` up to the `<answer>` after it ("" without a `</think>`)."""
    close = completion.rfind("</think>")
    if close < 0:
        return ""
    return completion[close + len("</think>") :].split("<answer>", 1)[0]


_DIGITS = re.compile(r"\d+")
# Beside a `=` across spaces, what makes it an equation of numbers (`unread_equations`).
# Across line breaks too: no claim is read over one (`75 + 1` / `= 75`), so such a `=` is unread.
_OPERAND_BEFORE = re.compile(r"[0-9)\]%!]\s*$")
_OPERAND_AFTER = re.compile(r"\s*[-−0-9(\[]")


def false_equations(text: str) -> list[str]:
    """The wrong arithmetic claims of `text`, in order, as read (`as_read`, spaces collapsed),
    then each number of more than MAX_DIGITS digits (as `<N digits>`): no claim reads it, so
    an equation holding one is never checked, and it fails rather than passes unread."""
    text = as_read(text)
    wrong = [" ".join(text[c.start : c.end].split()) for c in _claims(text) if not c.right]
    long = [f"<{len(m[0])} digits>" for m in _DIGITS.finditer(text) if len(m[0]) > MAX_DIGITS]
    return wrong + long


def unread_equations(text: str) -> list[str]:
    """The equations of numbers in `text` that no arithmetic claim reads, so nothing checks
    them (each as `<unread: ...>`, its surroundings): a lone `=` with, across spaces and line
    breaks, a digit or `)` `]` `%` `!` before it and a digit, sign or opening bracket after it,
    that no claim covers (as read, `as_read`; no claim is read over a line break). `2^3 = 9`,
    `10% of 50 = 5`, `1/2 = 0.5`, `[4, 12] = 16`, two claims with nothing but a space between
    (`7*6 = 41 8*2 = 16`), `7 x 6 = 41`; a `=` of a comparison that holds (`2 = 2`) is read.
    Not flagged, so not caught by it either: algebra (a letter glued to the number before the
    `=`, or before the operator that starts its expression: `x2 = 4`, `2x + 3 = 7`), LaTeX
    (`\\frac{450}{6} = 74`) and equations in words."""
    text = as_read(text)
    claims = _claims(text)
    runs = {m.end(): m for m in _RUN.finditer(text)}
    # a `=` a claim reads, or a comparison that holds (`2 = 2` of a digit-by-digit check; one
    # that does not, `10% of 50 = 5` read as `50 = 5`, may be a misread expression: unread)
    spans = [(c.start, c.end) for c in claims]
    spans += [(c.start, c.end) for c in _comparisons(text) if c.holds]
    read = {i for a, b in spans for i in range(a, b) if text[i] == "="}
    found = []
    for eq in _EQUALS.finditer(text):
        at = eq.start()
        if at in read or not (
            _OPERAND_BEFORE.search(text, max(0, at - 64), at) and _OPERAND_AFTER.match(text, at + 1)
        ):
            continue
        run = runs.get(at)
        if run is not None:  # algebra: `2x + 3 = 7`, `x + 3 = 7`, `x2 = 4`
            expression = run.group().lstrip(" \t")
            i = run.start() - 1  # the run holds every space before it; a line break is no letter
            glued = len(expression) == len(run.group())
            if i >= 0 and _is_letter(text[i]) and (glued or expression[:1] in "+-−*×/÷"):
                continue
        found.append(f"<unread: {' '.join(text[max(0, at - 20) : at + 21].split())}>")
    return found


def wrong_summary(completion: str) -> bool:
    """Whether the completion's summary (`summary_text`) states a wrong equation
    (`false_equations`: a wrong claim, or a number too long for any claim to read)."""
    return bool(false_equations(summary_text(completion)))


# --- lengths ----------------------------------------------------------------------------------


def _quantile(ordered: Sequence[float], q: float) -> float:
    # linear interpolation between closest ranks (numpy's and torch's default)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def length_stats(lengths: Sequence[float]) -> dict[str, float]:
    """mean, median, p90, min and max of response lengths (keys without a namespace)."""
    if not lengths:
        raise ValueError("length_stats of no lengths is undefined")
    ordered = sorted(float(x) for x in lengths)
    return {
        "mean": sum(ordered) / len(ordered),
        "median": _quantile(ordered, 0.5),
        "p90": _quantile(ordered, 0.9),
        "min": ordered[0],
        "max": ordered[-1],
    }
