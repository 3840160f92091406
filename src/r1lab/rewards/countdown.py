"""Countdown (the TinyZero task): an equation that reaches `target` using each of `numbers` once.

    countdown("<think>...</think> <answer>(25 - 5) * 4</answer>", {"numbers": [4, 5, 25], "target": 80})
    # -> (1.0, {...})

Rules for the equation (the content of the last `<answer>` block, else the last `\\boxed{}`):
- only ASCII digits, `+ - * / ( )`, spaces and tabs (unary minus and plus included: they are
  those symbols; `**`, `//`, `×`, `−`, other digits and newlines are not);
- integers written plainly (no leading zeros, no decimal point, no exponent);
- the multiset of integers in it is exactly `numbers`: each given number used as many times as
  it is given (TinyZero's rule);
- its exact value (rational arithmetic, so `1 / 3 * 3` is exactly 1) equals `target` exactly:
  with exact arithmetic a tolerance only admits near misses (`50 + 1/99/98/97` for 50, which
  TinyZero's float comparison within 1e-5 accepts);
- optionally one `= N` at the end, where N must be the target itself, written `-N` for a
  negative one (`allow_equals`, default on): models often write the whole equation; N is not
  one of the numbers used. The target on the left (`80 = ...`) is not accepted.

`numbers` and `target` must be integers (or integral values such as `"25"` or `25.0`); anything
else is a ValueError, never truncated.

Hostile equations score 0 quickly: longer than `max_chars`, nested deeper than `max_depth`
(parentheses or operators),
dividing by zero, or anything not in the grammar. The expression is parsed with `ast` and walked
over a whitelist of node types; nothing is ever `eval`ed.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from r1lab.rewards.math import extract_answer
from r1lab.rewards.registry import register_reward

MAX_CHARS = 256
MAX_DEPTH = 32
_ALLOWED = re.compile(r"[0-9+\-*/() \t]+")
_INT = re.compile(r"0|[1-9][0-9]*")
_RHS = re.compile(r"(-?)[ \t]*(0|[1-9][0-9]*)")
_BINOPS = {ast.Add, ast.Sub, ast.Mult, ast.Div}


class _Reject(Exception):
    """The expression is outside the grammar."""


def _walk(node: ast.AST, numbers: list[int], depth: int, max_depth: int) -> Fraction:
    if depth > max_depth:
        raise _Reject("too deep")
    if isinstance(node, ast.Constant) and type(node.value) is int:
        numbers.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _walk(node.operand, numbers, depth + 1, max_depth)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left = _walk(node.left, numbers, depth + 1, max_depth)
        right = _walk(node.right, numbers, depth + 1, max_depth)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if right == 0:
            raise _Reject("division by zero")
        return left / right
    raise _Reject(f"not allowed: {type(node).__name__}")


def _paren_depth(expr: str) -> int:
    depth = best = 0
    for ch in expr:
        if ch == "(":
            depth += 1
            best = max(best, depth)
        elif ch == ")":
            depth -= 1
    return best


def _evaluate(
    expr: str, max_chars: int = MAX_CHARS, max_depth: int = MAX_DEPTH
) -> tuple[Fraction, list[int]] | None:
    """(exact value, integers used) of an arithmetic expression in the grammar, or None."""
    if not expr or len(expr) > max_chars or not _ALLOWED.fullmatch(expr):
        return None
    # The character whitelist admits `**` and `//` (Python operators we do not allow): the AST
    # walk rejects them, but check each literal too, so `1 2` or `007` never slip through.
    if any(not _INT.fullmatch(tok) for tok in re.findall(r"[0-9]+", expr)):
        return None
    # Redundant parentheses make no AST node, so cap their nesting on the text itself.
    if _paren_depth(expr) > max_depth:
        return None
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    numbers: list[int] = []
    try:
        value = _walk(tree.body, numbers, 0, max_depth)
    except (_Reject, RecursionError):
        return None
    return value, numbers


def parse_countdown(
    expr: str, max_chars: int = MAX_CHARS, max_depth: int = MAX_DEPTH
) -> Fraction | None:
    """The exact value of a countdown expression (digits, `+ - * / ( )`, spaces), or None."""
    result = _evaluate(expr, max_chars, max_depth)
    return None if result is None else result[0]


def _split_equals(expr: str, target: int) -> str | None:
    """`lhs` of `lhs = target` (`= -N` for a negative target); None if the right side is not
    the target."""
    lhs, _, rhs = expr.rpartition("=")
    m = _RHS.fullmatch(rhs.strip())
    # Read no more digits than the target has: a runaway `= 999...` (4,300 digits and Python
    # refuses to convert it) is simply not the target.
    if "=" in lhs or m is None or len(m[2]) > len(str(abs(target))):
        return None
    return lhs if int(m[1] + m[2]) == target else None


def _integer(value: Any, field: str) -> int:
    # Through the text, so "25", 25 and 25.0 are 25 and 25.5 is an error, not 25.
    try:
        exact = Fraction(str(value).strip())
    except ValueError:
        exact = None
    if exact is None or exact.denominator != 1:
        raise ValueError(f"countdown's {field} must be integers, got {value!r}")
    return int(exact)


def _show(value: Fraction) -> str:
    return str(value) if value.denominator == 1 else f"{value} ({float(value):.12g})"


@register_reward("countdown")
def countdown(
    completion: str,
    example: Mapping[str, Any],
    *,
    allow_equals: bool = True,
    max_chars: int = MAX_CHARS,
    max_depth: int = MAX_DEPTH,
) -> tuple[float, dict[str, Any]]:
    """1.0 if the answer is an equation over exactly `example["numbers"]` equal to `example["target"]`."""
    for key in ("numbers", "target"):
        if key not in example:
            raise KeyError(f"countdown needs example['{key}']")
    numbers = sorted(_integer(n, "numbers") for n in example["numbers"])
    target = _integer(example["target"], "target")
    expr = extract_answer(completion)
    if expr is None:
        return 0.0, {"reason": "no answer"}
    if allow_equals and "=" in expr:
        lhs = _split_equals(expr, target)
        if lhs is None:
            return 0.0, {"reason": "right-hand side is not the target"}
        expr = lhs
    result = _evaluate(expr.strip(), max_chars, max_depth)
    if result is None:
        return 0.0, {"reason": "not an arithmetic expression over + - * / ( )"}
    value, used = result
    if sorted(used) != numbers:
        return 0.0, {"reason": f"uses {sorted(used)}, expected exactly {numbers}"}
    if value != target:  # exact: both are rationals
        return 0.0, {"reason": f"equals {_show(value)}, not {target}"}
    return 1.0, {}
