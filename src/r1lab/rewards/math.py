"""Math accuracy: is the completion's final answer mathematically equal to the reference?

    math_accuracy(completion, {"answer": "#### 1,234"})   # GSM8K reference
    math_accuracy(completion, {"answer": "... so $\\boxed{\\frac12}$."})  # MATH solution

The answer is the content of the last `<answer>...</answer>` (or the last `\\boxed{}` inside
it), else the last `\\boxed{}` of the completion (braces balanced). Equality is math-verify's
(`verify(gold, pred)`, gold first: the comparison is not symmetric), so `1/2`, `0.5`, `\\frac{1}{2}`
and `\\dfrac12` are all the same answer, as are `(1, 2]` and `\\left(1,2\\right]`.

Both sides are parsed as LaTeX wrapped in `\\boxed{}` (so a bare `5`, `x^2+1` or `(1, 2]` parses
as a whole, not as its last number), falling back to math-verify's expression extraction; an answer
written as a sentence ("The answer is 42.") goes straight to that extraction.

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


def _balanced_after(text: str, start: int) -> int | None:
    """Index of the `}` closing the `{` at `start`, skipping `\\{` and `\\}`; None if unclosed."""
    depth = 0
    i = start
    n = len(text)
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


def last_boxed(text: str, max_tries: int = 4) -> str | None:
    """Content of the last closed `\\boxed{...}` (or `\\fbox{...}`) in `text`, or None.

    An unclosed box (a truncated completion) is skipped for the one before it; only the last
    `max_tries` boxes are tried, so a text of ten thousand unclosed boxes stays linear.
    """
    tries = 0
    end = len(text)
    while tries < max_tries:
        i = max(text.rfind("\\boxed", 0, end), text.rfind("\\fbox", 0, end))
        if i < 0:
            return None
        j = i + (6 if text.startswith("\\boxed", i) else 5)
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            close = _balanced_after(text, j)
            if close is not None:
                return text[j + 1 : close]
        elif j < len(text) and text.startswith("\\boxed ", i):
            # `\boxed 5`: the box holds one token.
            m = re.match(r"[^\s$]+", text[j:])
            if m:
                return m.group(0)
        tries += 1
        end = i
    return None


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
    """The final answer a completion gives: `<answer>` content (its last `\\boxed{}` if it has
    one), else the last `\\boxed{}`; None when there is neither or it is empty."""
    block = answer_block(completion)
    if block is not None:
        boxed = last_boxed(block)
        answer = boxed if boxed is not None else block
    else:
        answer = last_boxed(completion)
    if answer is None or not answer.strip():
        return None
    return answer.strip()


def reference_answer(ref: Any) -> str:
    """The reference answer as text, from a number, a GSM8K solution (`... #### 1,234`), a MATH
    solution (its last `\\boxed{}`), or a plain answer."""
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


_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def _strip_delims(text: str) -> str:
    text = text.strip()
    changed = True
    while changed:
        changed = False
        for left, right in _DELIMS:
            if (
                len(text) >= len(left) + len(right)
                and text.startswith(left)
                and text.endswith(right)
            ):
                text = text[len(left) : len(text) - len(right)].strip()
                changed = True
        if text.endswith(".") and not text.endswith(".."):
            text = text[:-1].rstrip()
            changed = True
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


_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|mathrm|mbox|operatorname)\s*\{[^{}]*\}")
_LATEX_CMD = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(r"[A-Za-z]{3,}")
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
        "gcd",
        "lcm",
        "max",
        "min",
        "det",
        "deg",
    ]
)


def _is_prose(text: str) -> bool:
    """Whether an answer is written in words ("The answer is 42"), not as a formula."""
    bare = _LATEX_CMD.sub(" ", _TEXT_CMD.sub(" ", text))
    return any(w.lower() not in _MATH_WORDS for w in _WORD.findall(bare))


@functools.lru_cache(maxsize=1)
def _configs() -> tuple[list[Any], list[Any]]:
    # Imported lazily: sympy takes ~0.5 s to import and many users of this module never parse.
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    boxed = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    anchored = [LatexExtractionConfig(), ExprExtractionConfig()]
    return boxed, anchored


def _signal_timeout(seconds: int | None) -> int | None:
    # math-verify times out with SIGALRM, which only the main thread may use; off it, the pool's
    # killable workers are the only limit.
    if seconds and threading.current_thread() is threading.main_thread():
        return int(seconds)
    return None


@functools.lru_cache(maxsize=4096)
def _parse(text: str, timeout: int | None) -> tuple[Any, ...]:
    from math_verify import parse
    from sympy import Basic
    from sympy.matrices import MatrixBase

    boxed, anchored = _configs()
    if not _is_prose(text):
        # Python's power operator is not LaTeX; `x**2` would otherwise not parse at all.
        found = parse("\\boxed{" + text.replace("**", "^") + "}", boxed, parsing_timeout=timeout)
        if any(isinstance(x, (Basic, MatrixBase)) for x in found):
            return tuple(found)
    return tuple(parse(text, anchored, parsing_timeout=timeout))


def _log10_int(n: int) -> float:
    n = abs(n)
    return _m.log10(n) if 0 < n < 1 << 53 else n.bit_length() * 0.30103


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
    args = getattr(expr, "args", ())
    if not args:
        return 0.0
    bounds = [_log10_bound(a, depth + 1) for a in args]
    if isinstance(expr, sympy.Mul):
        return sum(bounds)
    return max(bounds) + 1.0


def _too_big(parsed: tuple[Any, ...], max_digits: int) -> bool:
    from sympy import Basic

    return any(isinstance(x, Basic) and _log10_bound(x) > max_digits for x in parsed)


def _plain(text: str) -> str:
    return " ".join(text.casefold().split())


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
    compares two predictions; either order is fine there. Guards: an answer longer than
    `max_chars`, nested deeper than `max_depth`, or computing a number over `max_digits` digits
    is not equal to anything (except an identical string). `timeout` (whole seconds) is
    math-verify's own limit, used on the main thread only.
    """
    gold, pred = _strip_delims(gold), _strip_delims(pred)
    if not gold or not pred:
        return False
    if gold == pred:
        return True
    for text in (gold, pred):
        if len(text) > max_chars or nesting_depth(text) > max_depth:
            return False
    t = _signal_timeout(timeout)
    g, p = _parse(gold, t), _parse(pred, t)
    if not g or not p:
        return _plain(gold) == _plain(pred)
    if _too_big(g, max_digits) or _too_big(p, max_digits):
        return False
    from math_verify import verify

    try:
        return bool(verify(list(g), list(p), timeout_seconds=t))
    except Exception:  # noqa: BLE001 - sympy can raise anything on hostile input; unequal
        return False


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
) -> tuple[float, dict[str, Any]]:
    """1.0 if the completion's final answer equals `example[answer_key]`, else 0.0.

    The reference may be a number, a plain answer, a GSM8K solution (`#### 42`) or a MATH
    solution (its last `\\boxed{}`). See `math_equal` for the guards.
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
    ok = math_equal(
        gold, pred, max_chars=max_chars, max_depth=max_depth, max_digits=max_digits, timeout=timeout
    )
    return float(ok), {"pred": pred[:80]}
