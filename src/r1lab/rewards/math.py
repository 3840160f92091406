"""Math accuracy: is the completion's final answer mathematically equal to the reference?

    math_accuracy(completion, {"answer": "#### 1,234"})   # GSM8K reference
    math_accuracy(completion, {"answer": "... so $\\boxed{\\frac12}$."})  # MATH solution

The answer is the content of the last `<answer>...</answer>` (all its boxes, if it has any), else
the completion's final boxed answer: the last closed `\\boxed{}` together with the boxes written
just before it with only separators between them (`\\boxed{1} and \\boxed{-2}` is the answer
`1, -2`). Equality is math-verify's (`verify(gold, pred)`, gold first: the comparison is not
symmetric), so `1/2`, `0.5`, `\\frac{1}{2}` and `\\dfrac12` are all the same answer, as are
`(1, 2]` and `\\left(1,2\\right]`.

An answer is compared as a whole, never as its last number. Both sides lose their `$`/`\\(`
delimiters, "and"/"or" become commas, and the words are set aside: what is left must be one
formula, parsed by math-verify as LaTeX inside `\\boxed{}` (so `1, 2`, `(1, 2]`, a matrix, `x = 1
or x = 2` parse whole). An answer of words only (`odd`, `\\text{Evelyn}`) is compared as text.
An answer that cannot be read faithfully scores 0: formulas separated by words ("3, not 5", "10
which is 1000"), a word that qualifies the value ("at least 5", "negative 5", "5 thousand"), an
answer that does not parse. An answer listing k values (a set, `\\pm`, several boxes, "1 or 2",
`x \\in \\{1, 2\\}`) only equals a reference listing k values. A missed reward costs little; a
false one is a reward hack the policy will find.

Hostile answers cannot hang it: cheap guards reject answers that are too long or nested too deep
before parsing and numbers too large to compute after parsing (`9^{9^{9}}` has 370 million digits),
math-verify's own signal timeouts run when we are on the main thread, and the reward pool kills a
worker that still overruns (see r1lab.rewards.pool).
"""

from __future__ import annotations

import functools
import logging
import math as _m
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from r1lab.rewards.registry import register_reward

# math-verify logs a warning for every timeout and once when timeouts are disabled; the reward
# reports those through its info dict instead of flooding the training log.
logging.getLogger("math_verify").setLevel(logging.ERROR)

MAX_ANSWER_CHARS = 1000
# LaTeX parsing time grows fast with bracket nesting (~50 ms per level of parentheses); real
# answers rarely nest more than 4 deep.
MAX_DEPTH = 10
# Numbers beyond this many digits are not computed: 9^{9^{9}} would take minutes and gigabytes.
MAX_DIGITS = 50_000
# A tower `2^2^...^2` of a few hundred levels costs seconds of LaTeX parsing before the digits
# guard can see it; a real answer (a polynomial of degree 20) has a few dozen powers at most.
MAX_POWERS = 64
# The two sides of an approximation are compared as floats, so each must fit in one.
MAX_FLOAT_DIGITS = 300
# Each number of an answer costs one more parse (the faithfulness check); real answers have a
# few, a matrix a few dozen.
MAX_NUMBERS = 40


def _balanced_after(text: str, start: int, stop: int | None = None) -> int | None:
    """Index of the `}` closing the `{` at `start` (before `stop`), skipping `\\{` and `\\}`;
    None if unclosed."""
    depth = 0
    i = start
    n = len(text) if stop is None else stop
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in "{}":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


_BOX_TOKEN = re.compile(r"[^\s$]+")


def _nested_boxes(text: str) -> frozenset[int]:
    """Starts of the boxes that lie inside another closed box: `\\boxed{\\boxed{3} 4}` is the
    answer `\\boxed{3} 4`, not 3."""
    if text.count("\\boxed") + text.count("\\fbox") < 2:
        return frozenset()
    opens: list[tuple[int, int]] = []  # (brace position, box start or -1)
    closes: list[tuple[int, int]] = []  # (box start, close position)
    box_at: dict[int, int] = {}
    for m in re.finditer(r"\\(?:boxed|fbox)\s*(?=\{)|\\[{}]|[{}]", text):
        tok = m.group(0)
        if tok.startswith("\\b") or tok.startswith("\\f"):
            box_at[m.end()] = m.start()
        elif tok == "{":
            opens.append((m.start(), box_at.get(m.start(), -1)))
        elif tok == "}" and opens:
            _, box = opens.pop()
            if box >= 0:
                closes.append((box, m.start()))
    nested, reach = set(), -1
    for box, close in sorted(closes):
        if box < reach:
            nested.add(box)
        reach = max(reach, close)
    return frozenset(nested)


def _box_before(
    text: str, end: int, max_tries: int, nested: frozenset[int] = frozenset()
) -> tuple[int, int, str] | None:
    """(start, stop, content) of the last box closed before `end` and not inside another box,
    trying at most `max_tries` boxes (an unclosed one, from a truncated completion, is skipped
    for the one before it)."""
    tries = 0
    before = end  # where the next box to try starts before; each box must close before `end`
    while tries < max_tries:
        i = max(text.rfind("\\boxed", 0, before), text.rfind("\\fbox", 0, before))
        if i < 0:
            return None
        before = i
        if i in nested:
            continue  # the box around it closes after it: `end` stays
        tries += 1
        j = i + (6 if text.startswith("\\boxed", i) else 5)
        while j < end and text[j] == " ":
            j += 1
        if j < end and text[j] == "{":
            close = _balanced_after(text, j, end)
            if close is not None:
                return i, close + 1, text[j + 1 : close]
        elif j < end and text.startswith("\\boxed ", i):
            # `\boxed 5`: the box holds one token.
            m = _BOX_TOKEN.match(text, j, end)
            if m:
                return i, m.end(), m.group(0)
    return None


# What may stand between boxes that together give one answer: space, punctuation, math
# delimiters, LaTeX spacing, and/or (`\boxed{1} and \boxed{-2}`, `\boxed{1}, \boxed{2}`).
_CONNECTIVES = r"\\(?:text|textbf|textrm|textnormal|mathrm|mbox)\s*\{\s*(?:and|or|,)?\s*\}"
_BOX_GAP = re.compile(
    rf"(?:\s|[$,;.&]|\\[()\[\],;:! ]|\\\\|\\q?quad|{_CONNECTIVES}"
    r"|(?<![A-Za-z])(?:and|or)(?![A-Za-z]))*"
)


def last_boxed(
    text: str, max_tries: int = 4, max_boxes: int = 64, *, together: bool = True
) -> str | None:
    """The final boxed answer of `text`, or None: the content of the last closed `\\boxed{...}`
    (or `\\fbox{...}`), or, when boxes just before it are separated from it only by space,
    punctuation or and/or, all their contents joined by ", " (`\\boxed{1} and \\boxed{-2}` ->
    `1, -2`; repeats dropped). "" when one of them is empty. With `together=False` every box of
    `text` is joined, however far apart: inside `<answer>` the whole block is the answer, so
    `\\boxed{2} hmm \\boxed{3}` there lists two values.

    A truncated last box falls back to the one before it; only the last `max_tries` boxes are
    tried and at most `max_boxes` joined, so ten thousand unclosed boxes stay linear.
    """
    nested = _nested_boxes(text)
    last = _box_before(text, len(text), max_tries, nested)
    if last is None:
        return None
    start, _, content = last
    run = [content]
    while len(run) < max_boxes:
        prev = _box_before(text, start, 1 if together else max_tries, nested)
        if prev is None or (together and not _BOX_GAP.fullmatch(text, prev[1], start)):
            break
        start, _, content = prev
        run.append(content)
    contents = [c.strip() for c in reversed(run)]
    if not all(contents):
        return ""  # `\boxed{}\boxed{2}`: a malformed answer, not the answer 2
    return ", ".join(dict.fromkeys(contents))


def answer_block(text: str) -> str | None:
    """Content of the last `<answer>...</answer>` in `text`, or None."""
    close = text.rfind("</answer>")
    if close < 0:
        return None
    open_ = text.rfind("<answer>", 0, close)
    if open_ < 0:
        return None
    return text[open_ + len("<answer>") : close]


def extract_answer(completion: str) -> str | None:
    """The final answer a completion gives: `<answer>` content (all its boxes if it has any),
    else the final boxed answer of the completion (reasoning may box intermediate results);
    None when there is neither or it is empty."""
    block = answer_block(completion)
    if block is not None:
        boxed = last_boxed(block, together=False)
        answer = boxed if boxed is not None else block
    else:
        answer = last_boxed(completion)
    if answer is None or not answer.strip():
        return None
    return answer.strip()


def reference_answer(ref: Any) -> str:
    """The reference answer as text, from a number, a GSM8K solution (`... #### 1,234`), a MATH
    solution (its final boxed answer), or a plain answer."""
    if isinstance(ref, (int, float)) and not isinstance(ref, bool):
        return str(ref)
    text = str(ref).strip()
    if "####" in text:
        # GSM8K: the number after the last ####, written with thousands separators.
        return text.rsplit("####", 1)[1].strip().replace(",", "").lstrip("$").strip()
    if "\\boxed" in text or "\\fbox" in text:
        boxed = last_boxed(text)
        if boxed is not None:
            return boxed.strip()
    return text


# `$`, `\(`, `\)`, `\[`, `\]` anywhere (not `\$`): `$1$ and $2$` is the answer `1 and 2`.
_DELIMS = re.compile(r"(?<!\\)\$|(?<!\\)\\[()\[\]]")
# Markdown bold, `**3**`; not Python's power, `x**2`.
_BOLD = re.compile(r"(?<![\w)\]}*])\*\*(?=\S)(.+?)(?<=\S)\*\*(?![\w(\[{*])")


def _strip_delims(text: str) -> str:
    text = _BOLD.sub(r"\1", _DELIMS.sub(" ", text)).strip()
    while text.endswith(".") and not text.endswith(".."):
        text = text[:-1].rstrip()
    return text


def nesting_depth(text: str) -> int:
    """Deepest nesting of `{([` brackets (unmatched closers ignored)."""
    depth = best = 0
    for ch in text:
        if ch in "{([":
            depth += 1
            best = max(best, depth)
        elif ch in "})]" and depth:
            depth -= 1
    return best


_TEXT_CMD = r"\\(?:text|textbf|textit|textrm|textnormal|textsf|mathrm|mbox|operatorname)"
_TEXT_BLOCK = re.compile(_TEXT_CMD + r"\s*\{([^{}]*)\}")
# "and"/"or" (bare or in \text{}), \quad and ";" separate the values of one answer.
_CONNECTOR = re.compile(rf"{_CONNECTIVES}|(?<![A-Za-z\\])(?:and|or)(?![A-Za-z])|\\q?quad|;")
_COMMAS = re.compile(r",(?:\s*,)+")
_PERCENT = re.compile(r"(?<!\\)%")
# "28 percent", "28 pct", "28\text{ percent}": the sign, which math-verify reads as /100.
_PERCENT_WORD = re.compile(
    r"(?<=[\d}])\s*(?:\\text\s*\{\s*)?(?:percent(?:age)?|pct)(?:\s*\})?(?![A-Za-z])"
)
# A word: a \text{...} block or 2+ letters standing alone (not `\frac`, not the `xy` of `2xy`, not
# a macro `ab{1}`), with a unit's exponent (`\text{ cm}^2`).
_WORDISH = re.compile(
    _TEXT_CMD + r"\s*\{[^{}]*\}(?:\s*\^\s*(?:\d|\{\d\}))?"
    r"|(?<![\w\\])[^\W\d_]{2,}(?![\w{])(?:\s*\^\s*(?:\d|\{\d\}))?"
)
_LETTERS = re.compile(r"[^\W\d_]{2,}")
_MATH_WORDS = frozenset(
    [
        "sqrt",
        "sin",
        "cos",
        "tan",
        "cot",
        "sec",
        "csc",
        "log",
        "ln",
        "lg",
        "exp",
        "arcsin",
        "arccos",
        "arctan",
        "sinh",
        "cosh",
        "tanh",
        "inf",
        "infty",
        "mod",
        "pmod",
        "gcd",
        "lcm",
        "max",
        "min",
        "det",
        "deg",
        "pi",
        "oo",
    ]
)
# Words that change or hedge the value beside them: "negative 5", "5 thousand", "at least 5",
# "not 5", "about 5", "5 squared", "five". With one of these, a prose answer is ambiguous.
_QUALIFIERS = frozenset(
    """not no never except but least most more less fewer greater smaller larger bigger than over
    under above below between within up until approximately approx about around roughly
    nearly almost circa negative minus plus times multiplied divided half halves third thirds
    quarter quarters fourth fifth tenth tenths hundredth hundredths thousandth thousandths percent
    percentage pct per cent twice double triple squared cubed square cube root power powers
    zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
    sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety
    hundred hundreds thousand thousands million millions billion billions trillion dozen dozens
    either neither any all none every each maybe perhaps possibly probably otherwise instead else
    also if unless whenever assuming provided""".split()  # noqa: SIM905 - a word list reads best
)
# Words that make a value conditional after it ("5 for n even", "5 when n > 1"), but only lead in
# before it ("When multiplying by I: ...").
_CONDITIONS = frozenset(["for", "when", "only", "case", "cases"])
_PUNCT = " \t\n.,:;?"  # not "!": `5!` is 120
_LONE_LETTER = re.compile(r"[A-Za-z]")


def _is_word(token: str) -> bool:
    inner = _TEXT_BLOCK.match(token)
    content = inner.group(1) if inner else token.split("^")[0]
    if any(ch.isdigit() for ch in content):
        return False  # \text{13}: a number written as text is math-verify's to read
    # All capitals name points and segments (`AB = 4`, `|AB|`), not prose.
    return any(w.lower() not in _MATH_WORDS and not w.isupper() for w in _LETTERS.findall(content))


def _qualifies(token: str, after_formula: bool) -> bool:
    inner = _TEXT_BLOCK.match(token)
    content = inner.group(1) if inner else token
    words = {w.lower() for w in _LETTERS.findall(content)}
    return bool(words & _QUALIFIERS or (after_formula and words & _CONDITIONS))


def _math_chunks(text: str) -> tuple[list[str], bool, bool]:
    """The formulas of `text` left between its words (at brace depth 0: `S_{MBCN}` is a name),
    whether it had any word, and whether a word qualifies a value ("at least", "negative", "if";
    after a formula, "for n even"). A lone letter beside one other formula is the name of what
    is asked ("the largest $n$ is 34", "here is a matrix: ..."), not a second value."""
    depth_at, depth = [], 0
    for ch in text:
        depth_at.append(depth)
        depth += (ch == "{") - (ch == "}")
    chunks, had_words, qualified, pos = [], False, False, 0
    for m in _WORDISH.finditer(text):
        if depth_at[m.start()] or not _is_word(m.group(0)):
            continue
        had_words = True
        chunks.append(text[pos : m.start()])
        after_formula = any(c.strip(_PUNCT) for c in chunks)
        qualified = qualified or _qualifies(m.group(0), after_formula)
        pos = m.end()
    chunks.append(text[pos:])
    # Not the leading "." of `.5`.
    chunks = [c.lstrip(_PUNCT.replace(".", "")).rstrip(_PUNCT) for c in chunks]
    chunks = [" ".join(c.split()) for c in chunks if c]  # math-verify fails on `28  \%`
    formulas = [c for c in chunks if not _LONE_LETTER.fullmatch(c)]
    return (formulas if len(formulas) == 1 else chunks), had_words, qualified


# -- faithfulness: a parse must account for every value the answer shows ------------------------
# math-verify reads what it can and drops the rest: `3 \text{(or 4)}`, `3 \mathbf{4}` and
# `3 \approx 4` all parse as 3, and `1 2` as 3. These checks run on the one formula sent to it;
# a formula that fails one is ambiguous.

# Commands whose braced arguments are the value itself (or hold no digits): read by math-verify.
_VALUE_CMDS = (
    frozenset(
        """frac dfrac tfrac cfrac sqrt binom dbinom tbinom overline begin end left right pmod bmod
    operatorname mathbb mathcal""".split()  # noqa: SIM905
    )
    | _MATH_WORDS
)
# Commands that set their argument as text or in another font: a value when the argument is
# exactly one number (`\text{5}`, `\mathbf{5}`), a hidden one when it is more (`\text{(or 4)}`).
_FONT_CMDS = frozenset(
    """text textbf textit textrm textsf texttt textup textnormal textmd textsc emph mbox hbox
    mathbf mathrm mathit mathsf mathtt mathnormal boldsymbol bm pmb boxed fbox""".split()  # noqa: SIM905
)
# Commands that may stand between two numbers as the operation joining them.
_OPERATOR_CMDS = (
    frozenset(
        """times cdot div pm mp ast star circ bullet cup cap setminus in notin ni subset subseteq
        supset supseteq ldots cdots dots vdots ddots colon mid vert Vert lvert rvert lfloor rfloor
        lceil rceil langle rangle le leq ge geq lt gt ne neq approx sim to wedge vee land lor
        infty pi""".split()  # noqa: SIM905
    )
    | _VALUE_CMDS
)
_TWO_ARG_CMDS = frozenset(["frac", "dfrac", "tfrac", "cfrac", "binom", "dbinom", "tbinom"])
_ONE_NUMBER = re.compile(r"\s*[-+]?\s*\d+(?:(?:\{,\}|,)\d{3})*(?:\.\d+)?\s*")
_COMMAND = re.compile(r"\\([A-Za-z]+)\s*")
_TOKEN = re.compile(r"\\\\|\\([A-Za-z]+)\s*|\\.")
# Relations other than `=`: `3 \approx 4` and `12 \in (5)` are two values, not one.
_RELATION = re.compile(
    r"\\(?:approx|approxeq|thickapprox|sim|simeq|thicksim|cong|ne|neq|le|leq|leqq|leqslant|ge|"
    r"geq|geqq|geqslant|lt|gt|ll|gg|lesssim|gtrsim|prec|succ|preceq|succeq|to|gets|rightarrow|"
    r"longrightarrow|Rightarrow|Longrightarrow|leftarrow|Leftarrow|leftrightarrow|"
    r"Leftrightarrow|implies|impliedby|iff|equiv|mapsto|propto|doteq|neg|not|in|notin|ni|"
    r"subset|subseteq|supset|supseteq)(?![A-Za-z])"
    r"|[<>≈≠≤≥→⇒≡∼≃≅∝⟹⟶↦⇔⟺≪≫⩽⩾←⇐]|!="
)
# An approximation keeps the exact value before it, as math-verify does (`1/3 \\approx 0.33`).
_APPROX = re.compile(r"\\(?:approx|approxeq|thickapprox|simeq|doteq)|≈")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_DIGITS = re.compile(r"\d+")
_DOUBLED = re.compile(r"\\\\(?=[A-Za-z])")
_LOG_BASE = re.compile(r"\\log\s*_\s*\{?\s*$")
# What may join two numbers without adding anything: space, LaTeX spacing, invisible delimiters.
_SPACING = re.compile(r"\s|~|\\[,;:!> ]|\\(?:left|right)\s*\.|\\[bB]ig+[lr]?(?![A-Za-z])")
# Marks on a number, not operations: `30^\\circ`, `5'`, `2^{\\prime}`.
_MARKS = re.compile(r"\^\s*\{?\s*\\(?:circ|prime)\s*\}?|'+")
_BRACKETS = re.compile(
    r"\\(?:left|right|middle|[bB]igg?[lr]?|[lr]?[vV]ert|langle|rangle|lfloor|rfloor|lceil|"
    r"rceil|[dt]?binom)(?![A-Za-z])|\\[{}|]|[()\[\]|]"
)
_OPERATOR_CHARS = set("+-*/^_=<>()[]|!,.:;&%≈≠≤≥→⇒≡∼≃≅∝⟹⟶↦⇔⟺≪≫⩽⩾←⇐")
_OPERATOR_CHARS |= {"\\{", "\\}", "\\|", "\\\\", "\\%"}


def _brace_args(text: str, i: int) -> tuple[list[str], int]:
    """The braced arguments starting at `i` (an optional `[...]` first), and where they end."""
    args = []
    j = i
    if j < len(text) and text[j] == "[":
        close = text.find("]", j)
        if close > 0:
            args.append(text[j + 1 : close])
            j = close + 1
    while True:
        k = j
        while k < len(text) and text[k] == " ":
            k += 1
        if k >= len(text) or text[k] != "{":
            return args, j
        close = _balanced_after(text, k)
        if close is None:
            return args, j
        args.append(text[k + 1 : close])
        j = close + 1


def _unwrap_fonts(text: str) -> str | None:
    """`text` with each font/text command that holds exactly one number replaced by the number,
    spaced from its neighbours (`3\\text{4}` is `3 4`, two values); None when such a command
    holds a digit and more (`\\text{(or 4)}`), or any other command hides a digit in an argument
    (`\\color{red}{4}`, `\\tag{4}`, `\\phantom{4}`, `\\overset{4}{3}`)."""
    out, pos = [], 0
    for m in _TOKEN.finditer(text):
        name = m.group(1)
        if name is None or m.start() < pos:
            continue  # `\\`, `\{`, or inside an argument already handled
        if name in _VALUE_CMDS or name in _OPERATOR_CMDS:
            continue
        args, end = _brace_args(text, m.end())
        if not any(ch.isdigit() for a in args for ch in a):
            continue
        if name not in _FONT_CMDS or len(args) != 1 or not _ONE_NUMBER.fullmatch(args[0]):
            return None
        out.append(text[pos : m.start()] + " " + args[0].strip() + " ")
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _later_args(text: str) -> frozenset[int]:
    """Where the second argument of each `\\frac`, `\\binom` and kin starts: the `}{` of
    `\\frac{1}{2}` (and the space of `\\frac 1 2`) divides; the `}{` of `{3}{4}` sets two
    numbers side by side."""
    starts = set()
    for m in _TOKEN.finditer(text):
        if m.group(1) == "sqrt":  # `\\sqrt[3]{8}`: the index, then the radicand
            close = text.find("]", m.end()) if text.startswith("[", m.end()) else -1
            if close > 0:
                starts.add(close + 1)
            continue
        if m.group(1) not in _TWO_ARG_CMDS:
            continue
        j = m.end()
        for arg in range(2):
            while j < len(text) and text[j] == " ":
                j += 1
            if j >= len(text):
                break
            if arg:
                starts.add(j)
            if text[j] == "{":
                close = _balanced_after(text, j)
                if close is None:
                    break
                j = close + 1
            else:  # `\frac12`, `\frac3{3}`: one character is the argument
                j += 1
    return frozenset(starts)


def _is_operator(text: str, start: int, end: int, later_args: frozenset[int]) -> bool:
    """Whether `text[start:end]`, the text between two numbers, joins them by an operation (`+`,
    `^{`, `\\cdot`, the `}{` of `\\frac{1}{2}`) rather than setting them side by side (` `,
    `\\,`, `}`, `\\text{(}`)."""
    if any(i in later_args for i in range(start, end + 1)):
        return True
    between = _MARKS.sub(" ", text[start:end])
    rest, pos = [], 0
    for m in _TOKEN.finditer(between):
        if m.start() < pos:
            continue
        rest.append(between[pos : m.start()])
        token, name = m.group(0), m.group(1)
        pos = m.end()
        if name is None:
            rest.append("&" if token == "\\\\" else token)  # a matrix's line break separates
        elif name in _OPERATOR_CMDS:
            rest.append(token)
        else:  # formatting, spacing or text: nothing, and its arguments with it
            pos = _brace_args(between, m.end())[1]
    rest.append(between[pos:])
    gap = _SPACING.sub("", "".join(rest))
    bare = _BRACKETS.sub("", gap)
    if any(op in bare for op in _OPERATOR_CHARS if op not in "{}") or re.search("[A-Za-z]", bare):
        return True
    # Brackets alone join only a product like `2(3+4)`: math-verify reads `3(4)`, `(3)(4)` and
    # `3\\binom{4}{1}`, a number alone in brackets, as the sum 7.
    second = _NUMBER.match(text, end)
    after = text[second.end() :] if second else ""
    alone = gap.startswith((")", "]", "\\}", "\\right", "|")) or re.match(
        r"\s*(?:\\right\s*)?(?:[)\]|]|\\\}|\\rangle|\\r[vV]ert)", after
    )
    return bare != gap and not alone and "binom" not in gap


def _unfaithful(formula: str, timeout: int | None = None) -> str | None:
    """Why `formula` cannot be read faithfully as one value, or None. See the section comment."""
    if any(ch.isdigit() or ch.isnumeric() for ch in formula if ch not in "0123456789"):
        return "a digit that is not 0-9"  # ５, ³, 𝟒: read, dropped or misread by the parser
    # math-verify reads `\\\\frac` (a doubled backslash, as in escaped strings) as `\\frac`.
    unwrapped = _unwrap_fonts(_DOUBLED.sub(r"\\", formula))
    if unwrapped is None:
        return "a digit in text or formatting"
    numbers = list(_NUMBER.finditer(unwrapped))
    later_args = _later_args(unwrapped)
    for a, b in zip(numbers, numbers[1:], strict=False):
        if _LOG_BASE.search(unwrapped, 0, a.start()):
            continue  # `\log_2 8`: a base, then the argument
        if not _is_operator(unwrapped, a.end(), b.start(), later_args):
            return "two numbers side by side"
    for n in numbers:
        if re.match(r"\s*_", unwrapped[n.end() :]):
            return "a number with a subscript"
    if re.search(r"\}\s*_\s*\{?[^}]*\d", unwrapped):
        return "a subscript holding a digit under a group"
    # Split at `=` too: in `x = 3 \\approx 4` the relation is between 3 and 4.
    parts = re.split(f"({_RELATION.pattern}|=)", unwrapped)
    for left, rel, right in zip(parts[::2], parts[1::2], parts[2::2], strict=False):
        if not (_is_constant(left) and _is_constant(right)):
            continue
        if rel == "=":
            continue  # `x = 5 + 5 + 1 = 11`: math-verify keeps the last side, the answer
        if not _APPROX.fullmatch(rel.strip()):
            return "a relation between two values"
        elif not _rounds_to(left, right, timeout):
            return "an approximation that is not one"
    return None
    return None


def _rounds_to(exact: str, approx: str, timeout: int | None) -> bool:
    """Whether the number `approx` is `exact` rounded to the decimals it shows: `\\frac13 \\approx
    0.33` is one value written twice (math-verify keeps the first), `3 \\approx 4` is two."""
    from math_verify import LatexExtractionConfig, parse
    from sympy import N

    config = [LatexExtractionConfig(boxed_match_priority=0)]
    values = []
    for side in (exact, approx):
        found = parse(
            "\\boxed{" + side + "}", config, fallback_mode="no_fallback", parsing_timeout=timeout
        )
        # This runs before the digits guard of the whole answer: a side that could not be a
        # float (`9^{9^{9^{9}}} \\approx 2`) is not evaluated, or evaluating it would hang.
        if not found or _too_big(found[0], MAX_FLOAT_DIGITS):
            values.append(None)
            continue
        try:
            # doit: `50\\%` parses as 50 * UnevaluatedExpr(1/100), which N leaves as it is.
            values.append(complex(N(found[0].doit())))
        except (TypeError, ValueError, ArithmeticError):
            values.append(None)
    shown = re.search(r"\.(\d+)\s*$", approx)
    decimals = len(shown.group(1)) if shown else 0
    a, b = values
    return a is not None and b is not None and abs(a - b) <= 0.5 * 10.0**-decimals + 1e-12


def _is_constant(side: str) -> bool:
    """A side of a relation that is a value (no variable), like `3`, `\\pi`, `\\frac{1}{2}`."""
    return bool(side.strip()) and not re.search("[A-Za-z]", _COMMAND.sub(" ", side))


def _plain(text: str) -> str:
    text = _TEXT_BLOCK.sub(r" \1 ", text)
    return " ".join(text.casefold().split()).strip(_PUNCT)


@dataclass(frozen=True)
class _Answer:
    """One side of a comparison, read whole."""

    kind: str  # "math", "text", or why there is no value: "ambiguous", "unparsed"
    value: Any = None  # a sympy object (math), the casefolded words (text), or why ambiguous
    count: int = 1  # how many values it lists: 2 for `1, 2`, `\pm 1` or `x \in \{1, 2\}`
    unit: str | None = None  # a number as written: its unit ("", "%", "°"; `literal_unit`)


def _count(expr: Any) -> int:
    from sympy import Eq, FiniteSet, Or

    if isinstance(expr, FiniteSet):
        return len(expr)
    if isinstance(expr, Eq) and isinstance(expr.rhs, FiniteSet):
        return len(expr.rhs)  # x = 1, 2 and x \in \{1, 2\}
    if isinstance(expr, Or):
        return len(expr.args)
    return 1


def _signal_timeout(seconds: int | None) -> int | None:
    # math-verify times out with SIGALRM, which only the main thread may use; off it, the pool's
    # killable workers are the only limit.
    if seconds and threading.current_thread() is threading.main_thread():
        return int(seconds)
    return None


@functools.lru_cache(maxsize=4096)
def _read(text: str, timeout: int | None) -> _Answer:
    """Read an answer (delimiters already stripped) whole; see the module docstring."""
    from math_verify import LatexExtractionConfig, parse
    from sympy import Basic
    from sympy.matrices import MatrixBase

    joined = _COMMAS.sub(",", _CONNECTOR.sub(",", _PERCENT_WORD.sub(r"\\%", text)))
    joined = joined.strip().strip(",")
    chunks, had_words, qualified = _math_chunks(joined)
    if not chunks:
        return _Answer("text", _plain(text)) if had_words else _Answer("unparsed")
    if len(chunks) > 1 or qualified:
        return _Answer("ambiguous")  # "3, not 5", "x is 3 or more": which value is the answer?
    why = _unfaithful(chunks[0], timeout)
    if why is not None:
        return _Answer("ambiguous", why)  # `3 \text{(or 4)}`, `1 2`, `3 \approx 4`
    # Only LaTeX inside the box: math-verify's other extractions pick the last number of a text.
    # Python's power operator is not LaTeX; `x**2` would otherwise not parse at all.
    # A bare % would start a LaTeX comment and swallow the rest.
    latex = "\\boxed{" + _PERCENT.sub(r"\\%", chunks[0].replace("**", "^")) + "}"
    config = [LatexExtractionConfig(boxed_match_priority=0)]
    found = parse(latex, config, fallback_mode="no_fallback", parsing_timeout=timeout)
    for expr in found:
        if isinstance(expr, (Basic, MatrixBase)):
            ignored = _ignored_number(latex, expr, timeout)
            if ignored:
                return _Answer("ambiguous", ignored)
            return _Answer("math", expr, _count(expr), literal_unit(chunks[0]))
    return _Answer("unparsed")


_ASSIGNED = re.compile(r"^[A-Za-z]=")  # `x = 5`: the value of one unknown
_UNIT = re.compile(r"(?:\\?%|\^\{?\\circ\}?|°)$")
_DECIMAL = re.compile(r"\d{1,3}(?:,\d{3})+|\d+\.?\d*|\.\d+")
_FRACTION = re.compile(r"\\[dt]?frac\{(\d+)\}\{(\d+)\}|\\[dt]?frac(\d)(\d)|(\d+)/(\d+)")


def literal_unit(formula: str) -> str | None:
    """The unit of `formula` if it is a number as written, with nothing left to compute, else
    None: "" for a bare number, "%" or "°" for one with a percent or degree sign. A number as
    written is an integer (`1,234` grouped), a decimal, or a fraction in lowest terms (`3/4`,
    `\\frac{3}{4}`), with one sign, perhaps in braces, or the value of one unknown (`x = 5`).
    Not `450 / 6`, `\\frac{150}{2}`, `75/1`, `76 - 1`, `--75` or `\\log_2 64`: their value is
    the reference's, but the question's work is left undone (a policy answers `Compute 450 / 6`
    with `450 / 6`)."""
    text = _TEXT_BLOCK.sub(r"\1", _SPACING.sub("", formula))
    text = _ASSIGNED.sub("", text)
    while text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    sign = _UNIT.search(text)
    unit = "" if sign is None else "%" if sign[0].endswith("%") else "°"
    text = text[: sign.start()] if sign else text
    text = text[1:] if text[:1] in ("+", "-", "−") else text  # one sign: `--75` is -(-75)
    if _DECIMAL.fullmatch(text):
        return unit
    m = _FRACTION.fullmatch(text)
    if m is None:
        return None
    a, b = (int(x) for x in (m[1] or m[3] or m[5], m[2] or m[4] or m[6]))
    return unit if b > 1 and _m.gcd(a, b) == 1 else None


def answer_unit(answer: str, timeout: int | None = 3) -> str | None:
    """`literal_unit` of an extracted answer read whole: "" for `75`, "%" for `75\\%`, None for
    `450 / 6` or `1, 2`. What `math_accuracy(literal=True)` compares, and what keeps the
    arithmetic task's vote groups apart."""
    read = _read(_strip_delims(answer), _signal_timeout(timeout))  # cached: math_equal read it
    return read.unit if read.kind == "math" else None


def _ignored_number(latex: str, expr: Any, timeout: int | None) -> str | None:
    """Why the parse of `latex` is not faithful to its numbers, or None: each digit run is
    changed in turn (its last digit moved by one, then two) and the formula parsed again; a run
    whose changes leave the parse as it was is a value math-verify dropped (`26\\parallel\\frac{2}{1}`
    parses as 2, `\\infty 20.5` as oo). The rules of `_unfaithful` catch the known forms
    without parsing; this catches the ones nobody listed."""
    from math_verify import LatexExtractionConfig, parse

    # An approximation checked by `_unfaithful` (`\\frac13 \\approx 0.333`) is a second writing
    # of the value before it: math-verify keeps that one, and the digits after it are not read.
    approx = _APPROX.search(latex)
    runs = list(_DIGITS.finditer(latex, 0, approx.start() if approx else len(latex)))
    if len(runs) > MAX_NUMBERS:
        return f"more than {MAX_NUMBERS} numbers"
    config = [LatexExtractionConfig(boxed_match_priority=0)]
    for run in runs:
        for step in (1, 2):  # two changes: binom(5, 2) = binom(5, 3) by chance, not by neglect
            digit = str((int(latex[run.end() - 1]) + step) % 10)
            changed = latex[: run.end() - 1] + digit + latex[run.end() :]
            try:
                found = parse(changed, config, fallback_mode="no_fallback", parsing_timeout=timeout)
                same = bool(found) and found[0] == expr
            except Exception:  # noqa: BLE001 - a parse that fails on the change read the number
                same = False
            if not same:
                break
        else:
            return f"the number {run.group(0)} does not change the value"
    return None


# log10 of 2 and of e, rounded up: the size bound below may only overestimate.
_LOG10_2, _LOG10_E = 0.30103, 0.4343


def _log10_int(n: int) -> float:
    n = abs(n)
    return _m.log10(n) if 0 < n < 1 << 53 else n.bit_length() * _LOG10_2


def _log10_bound(expr: Any, depth: int = 0) -> float:
    """Upper bound on log10 of the magnitude of the numbers `expr` computes (inf if huge)."""
    import sympy

    if depth > 60:
        return _m.inf
    if isinstance(expr, sympy.Rational):  # Integer included
        return max(_log10_int(int(expr.p)), _log10_int(int(expr.q)))
    if isinstance(expr, sympy.Pow):
        base, exp = expr.args
        lb, le = _log10_bound(base, depth + 1), _log10_bound(exp, depth + 1)
        if le > 15:
            return _m.inf
        exponent = 10.0**le
        if not base.is_number:
            # (x+1)^{100000}: expanding it is the hang, not the size of a number.
            return _m.inf if exponent > 1000 else lb
        return lb * exponent
    if isinstance(expr, (sympy.factorial, sympy.factorial2, sympy.gamma, sympy.subfactorial)):
        n = _log10_bound(expr.args[0], depth + 1)
        return _m.inf if n > 7 else (10.0**n) * max(n, 1.0)
    if isinstance(expr, (sympy.exp, sympy.sinh, sympy.cosh)):  # e^|a| at most: a log10(e)
        a = _log10_bound(expr.args[0], depth + 1)
        return _m.inf if a > 15 else (10.0**a) * _LOG10_E + 1.0
    if isinstance(expr, sympy.binomial):  # |binom(n, k)| <= 2^(|n| + |k|)
        n = max(_log10_bound(a, depth + 1) for a in expr.args)
        return _m.inf if n > 15 else 2 * (10.0**n) * _LOG10_2 + 1.0
    args = getattr(expr, "args", ())
    if not args:
        if isinstance(expr, sympy.Float):  # its binary exponent and mantissa bits
            _, _, exponent, bits = expr._mpf_
            return max(0.0, (exponent + bits) * _LOG10_2)
        # pi, e, i, infinity: each named constant is under 10 in magnitude (a bound of 0 let
        # `\lfloor \pi^{10^{7}} \rfloor`, 4,971,499 digits, be computed); a symbol is no number.
        return 1.0 if getattr(expr, "is_number", False) else 0.0
    bounds = [_log10_bound(a, depth + 1) for a in args]
    if isinstance(expr, sympy.Mul):
        return sum(bounds)
    return max(bounds) + 1.0


def _too_big(expr: Any, max_digits: int) -> bool:
    from sympy import Basic

    try:
        return isinstance(expr, Basic) and _log10_bound(expr) > max_digits
    except RecursionError:  # a tower deep enough to overflow sympy's own recursion
        return True


@functools.lru_cache(maxsize=4096)
def _compare(
    gold: str, pred: str, max_chars: int, max_depth: int, max_digits: int, timeout: int | None
) -> tuple[bool, str]:
    """(equal, why not) for `math_equal`; cached so that the reward's reason costs nothing."""
    gold, pred = _strip_delims(gold), _strip_delims(pred)
    if not gold or not pred:
        return False, "empty answer"
    if gold == pred:
        return True, ""
    for text in (gold, pred):
        if len(text) > max_chars:
            return False, f"answer longer than {max_chars} chars"
        if nesting_depth(text) > max_depth:
            return False, f"answer nested deeper than {max_depth}"
        if text.count("^") > MAX_POWERS:
            return False, f"answer with more than {MAX_POWERS} powers"
    g, p = _read(gold, timeout), _read(pred, timeout)
    for side, read in (("reference", g), ("answer", p)):
        if read.kind == "ambiguous":
            return False, f"{side} ambiguous: {read.value or 'formulas separated by words'}"
        if read.kind == "unparsed":
            return False, f"{side} does not parse"
    if g.kind != p.kind:
        return False, f"{p.kind} answer, {g.kind} reference"
    if g.kind == "text":
        return g.value == p.value, "not equal"
    if g.count != p.count:
        return False, f"number of values: answer {p.count}, reference {g.count}"
    if _too_big(g.value, max_digits) or _too_big(p.value, max_digits):
        return False, f"number over {max_digits} digits"
    from math_verify import verify

    try:
        equal = bool(verify([g.value], [p.value], timeout_seconds=timeout))
    except Exception:  # noqa: BLE001 - sympy can raise anything on hostile input; unequal
        equal = False
    return equal, "not equal"


def math_equal(
    gold: str,
    pred: str,
    *,
    max_chars: int = MAX_ANSWER_CHARS,
    max_depth: int = MAX_DEPTH,
    max_digits: int = MAX_DIGITS,
    timeout: int | None = 3,
) -> bool:
    """Whether answer `pred` equals answer `gold` mathematically (both already extracted).

    Not symmetric in general (math-verify's rule): pass the reference first. Majority voting
    compares two predictions; either order is fine there. An answer that lists several values
    equals only one that lists as many; one that cannot be read whole equals nothing (except an
    identical string). Guards: an answer longer than `max_chars`, nested deeper than
    `max_depth`, or computing a number over `max_digits` digits is not equal to anything (except
    an identical string). `timeout` (whole seconds) is math-verify's own limit, used on the main
    thread only.
    """
    t = _signal_timeout(timeout)
    return _compare(gold, pred, max_chars, max_depth, max_digits, t)[0]


@register_reward("math_accuracy")
def math_accuracy(
    completion: str,
    example: Mapping[str, Any],
    *,
    answer_key: str = "answer",
    max_chars: int = MAX_ANSWER_CHARS,
    max_depth: int = MAX_DEPTH,
    max_digits: int = MAX_DIGITS,
    timeout: int = 3,
    literal: bool = False,
) -> tuple[float, dict[str, Any]]:
    """1.0 if the completion's final answer equals `example[answer_key]`, else 0.0.

    The reference may be a number, a plain answer, a GSM8K solution (`#### 42`) or a MATH
    solution (its final boxed answer). See `math_equal` for the rules and guards; a 0 comes with
    `info["reason"]` ("number of values: answer 2, reference 1", "not equal", ...).

    `literal`: when the reference is a number as written (`literal_unit`), so must the answer
    be, with the same unit: for a question that asks for a computation (the micro-world's
    `Compute 450 / 6`, whose task sets it), an answer equal in value but left to compute
    (`450 / 6`, `\\frac{450}{6}`, `2 + 2 = 4`) restates the question rather than answers it,
    and `75\\%`, which math-verify takes for both 75 and 0.75, is neither a bare 75 nor 0.75
    as written. Off by default, as math-verify grades (`\\binom{5}{2}` equals 10).
    """
    if answer_key not in example:
        raise KeyError(f"math_accuracy needs the reference answer in example['{answer_key}']")
    gold = reference_answer(example[answer_key])
    pred = extract_answer(completion)
    if pred is None:
        return 0.0, {"reason": "no answer"}
    if len(pred) > max_chars:
        return 0.0, {"reason": f"answer longer than {max_chars} chars"}
    if nesting_depth(pred) > max_depth:
        return 0.0, {"reason": f"answer nested deeper than {max_depth}"}
    limits = {"max_chars": max_chars, "max_depth": max_depth, "max_digits": max_digits}
    if math_equal(gold, pred, **limits, timeout=timeout):
        want = answer_unit(gold, timeout) if literal else None
        if want is not None:
            got = answer_unit(pred, timeout)
            if got is None:
                return 0.0, {
                    "pred": pred[:80],
                    "reason": "left to compute: the reference is a number",
                }
            if got != want:
                said = {"": "a bare number", "%": "a percentage", "°": "in degrees"}
                why = f"unit: the reference is {said[want]}, the answer {said[got]}"
                return 0.0, {"pred": pred[:80], "reason": why}
        return 1.0, {"pred": pred[:80]}
    # Cached: the comparison math_equal just made, with its reason.
    _, why = _compare(gold, pred, *limits.values(), _signal_timeout(timeout))
    return 0.0, {"pred": pred[:80], "reason": why}
