"""Code rewards: run the completion's Python program against the example's test cases, sandboxed.

    code(completion, {"tests": [{"input": "2 3\\n", "output": "5\\n"}, {"assert": "assert add(2, 3) == 5"}]})

The program is the content of the last `<answer>` block (a ```python fence inside it is
unwrapped), else the last fenced code block of the completion (```python, ```py or bare ```).
`example["tests"]` is a list (or its JSON text) of test cases, each either
- `{"input": str, "output": str}`: the program reads `input` on stdin; it passes if it exits with
  status 0 and its stdout, stripped, equals `output`, stripped, line by line with trailing
  whitespace on each line ignored (ASCII whitespace and "\n" line breaks only);
- `{"assert": str}`: top-level `assert` statements, optionally with setup statements between them
  (`s = Stack()`). The sandbox runs the program, then the setup, and reports the value of each
  assert's *leaves* (the parts that call the program, `square(3)`) as exact-typed plain data;
  this process evaluates the rest (`== 9`) and passes the test if every assert holds. Expected
  values and comparisons never enter the sandbox, so exiting early, hooking the interpreter,
  forging output or returning an object equal to everything cannot pass (see `plan_assert` for
  the asserts this refuses, and docs/sandbox.md).

Each test is its own sandboxed run (r1lab.rewards.sandbox) with `timeout` seconds of wall time;
tests left when `total_timeout` is spent count as failed, so one reward call is bounded by about
`total_timeout` plus one test. `code` scores the fraction of tests passed; `code_binary` scores 1
only if all pass (and stops at the first failure). `require="full"` (or the environment variable
R1LAB_SANDBOX_REQUIRE=full) makes a machine without every isolation layer an error (SandboxError)
instead of a warning. `hide` lists directories the program must not read, e.g. the one holding
the dataset with the expected outputs (each is covered by an empty tmpfs in the run's mount
namespace; without one that is an error).
"""

from __future__ import annotations

import ast
import copy
import json
import math
import operator
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1lab.rewards.math import answer_block
from r1lab.rewards.registry import register_reward
from r1lab.rewards.sandbox import (
    WORLD_WRITABLE,
    Limits,
    SandboxResult,
    require_isolation,
    run_python,
)

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_code(completion: str) -> str | None:
    """The program a completion gives (see the module docstring), or None."""
    block = answer_block(completion)
    text = block if block is not None else completion
    fences = _FENCE.findall(text)
    if fences:
        code = fences[-1]
    elif block is not None:
        code = block
    else:
        return None
    return code if code.strip() else None


def load_tests(raw: Any) -> list[dict[str, str]]:
    """The test cases of an example, from a list of dicts or its JSON text; malformed is an error.

    An `assert` test the harness cannot check without trusting the program (see `plan_assert`)
    is malformed too, with the reason.
    """
    tests = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(tests, Sequence) or isinstance(tests, str):
        raise ValueError(f"tests must be a list of test cases, got {type(tests).__name__}")
    out = []
    for i, t in enumerate(tests):
        if isinstance(t, Mapping) and "assert" in t:
            try:
                plan_assert(str(t["assert"]))
            except ValueError as e:
                raise ValueError(f"test {i}: {e}") from None
            out.append({"assert": str(t["assert"])})
        elif isinstance(t, Mapping) and "input" in t and "output" in t:
            out.append({"input": str(t["input"]), "output": str(t["output"])})
        else:
            raise ValueError(
                f"test {i}: expected {{'input', 'output'}} or {{'assert'}}, got {t!r:.80}"
            )
    return out


# Output comparison is ASCII-whitespace only: str.strip() and splitlines() would also take
# \x1c-\x1f, \x85 and \u2028 as whitespace or line breaks, so "5\u2028" would pass for "5".
_WS = " \t\r\n"


def _lines(text: str) -> list[str]:
    return [line.rstrip(_WS) for line in text.strip(_WS).split("\n")]


def outputs_match(actual: str, expected: str) -> bool:
    """Equal once stripped, line by line, ignoring trailing whitespace on each line."""
    return _lines(actual) == _lines(expected)


# ---------------------------------------------------------------------------------------------
# Assert tests: what runs in the sandbox, and what only the parent sees
#
# `assert square(3) == 9` is split into a leaf, `square(3)`, which the sandbox evaluates after
# the program and reports as plain typed data, and glue, `<leaf 0> == 9`, which only this process
# holds and evaluates. The program never sees 9 or the comparison, so no exit, hook or odd return
# value can make it pass: the reported value must be right. docs/sandbox.md explains the rules.


def _round(x: Any, ndigits: Any = None) -> Any:
    # round(12, -10**7) computes 10**(10**7): the digits may come from the program.
    if isinstance(ndigits, int) and abs(ndigits) > 400:
        raise ValueError("ndigits too large")
    return round(x, ndigits)


def _bytes(*args: Any) -> bytes:
    if args and isinstance(args[0], int):  # bytes(10**12) would allocate it
        raise ValueError("bytes(n) in a test")
    return bytes(*args)


def _sum(items: Any, start: Any = 0) -> Any:
    # sum(lists, []) copies quadratically; numbers only.
    if not isinstance(start, (int, float, complex)):
        raise ValueError("sum of non-numbers in a test")
    return sum(items, start)


# Names the glue may use: pure functions and types, evaluated here on plain data (guarded
# where the program's values could make them allocate or compute without bound).
_GLUE_FUNCS: dict[str, Any] = {
    f.__name__: f
    for f in (abs, all, any, bool, bytes, complex, dict, float, frozenset, int, isinstance)
    + (len, list, max, min, round, set, sorted, str, sum, tuple, type)
}
_GUARDED = {"round": _round, "bytes": _bytes, "sum": _sum}  # what a call to these runs
# Checked here even when their argument is a single leaf: the answer to "is it an int?" must not
# come from the program.
_TYPE_TESTS = ("type", "isinstance", "bool")
_GLUE_MATH = {
    n: getattr(math, n)
    for n in ("isclose", "sqrt", "isnan", "isinf", "isfinite", "floor", "ceil", "fabs", "gcd")
    + ("log", "log2", "log10", "exp", "pi", "e", "inf", "nan", "tau")
}
_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
}
_UNARY = {ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos}
_UNARY[ast.Invert] = operator.invert
_CMPOPS = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_GLUE_NODES = (ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.IfExp, ast.Constant)
_GLUE_NODES += (ast.Tuple, ast.List, ast.Set, ast.Dict, ast.Subscript, ast.Slice)
_BIG = 1 << 20  # longest sequence and largest shift or exponent the glue will build


class _Leaf(ast.expr):
    """A sub-expression the sandbox evaluates; `index` is its position in the report."""

    _fields = ()

    def __init__(self, index: int):
        super().__init__()
        self.index = index


@dataclass(frozen=True)
class AssertPlan:
    """An assert test split for the harness: `steps` go to the sandbox, `checks` stay here."""

    steps: list[tuple[str, str]]
    """("exec", setup statement) or ("eval", leaf expression), in the test's order."""
    checks: list[ast.expr]
    """Each assert's condition, its leaves replaced by `_Leaf(i)` (i: index among the evals)."""


def _glue_call(node: ast.Call) -> bool:
    f = node.func
    named = isinstance(f, ast.Name) and f.id in _GLUE_FUNCS
    in_math = (
        isinstance(f, ast.Attribute)
        and isinstance(f.value, ast.Name)
        and f.value.id == "math"
        and f.attr in _GLUE_MATH
    )
    return (named or in_math) and not any(isinstance(a, ast.Starred) for a in node.args)


def _split(node: ast.expr, leaves: list[str]) -> ast.expr:
    """`node` with every maximal non-glue sub-expression replaced by a `_Leaf` (source kept).

    A glue call whose every argument is a leaf (`len(ll)`, `list(gen(3))`, `str(p)`) and a
    constant index into a leaf (`f(x)[0]`) join the leaf: they bring no expected value into the
    sandbox, and they turn the program's own objects (a linked list, a generator, a class with
    __str__) into plain data there. Everything else in the glue, comparisons and constants
    above all, stays here.
    """
    first, source = len(leaves), ast.unparse(node)
    if isinstance(node, ast.Call) and _glue_call(node):
        node.args = [_split(a, leaves) for a in node.args]
        for kw in node.keywords:
            kw.value = _split(kw.value, leaves)
        parts = node.args + [kw.value for kw in node.keywords]
        fn = getattr(node.func, "id", None)
        if parts and all(isinstance(p, _Leaf) for p in parts) and fn not in _TYPE_TESTS:
            del leaves[first:]
            leaves.append(source)
            return _Leaf(first)
        return node
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        leaf = isinstance(_split(copy.deepcopy(node.value), leaves), _Leaf)
        del leaves[first:]
        if leaf:
            leaves.append(source)
            return _Leaf(first)
    if isinstance(node, ast.Name) and node.id in _GLUE_FUNCS:
        return node  # a type as an argument: isinstance(f(x), int)
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and (node.value.id, node.attr in _GLUE_MATH) == ("math", True)
    ):
        return node
    if isinstance(node, _GLUE_NODES) and not (
        isinstance(node, (ast.Tuple, ast.List, ast.Set))
        and any(isinstance(e, ast.Starred) for e in node.elts)
    ):
        for name, value in ast.iter_fields(node):
            if isinstance(value, ast.expr):
                setattr(node, name, _split(value, leaves))
            elif isinstance(value, list):
                setattr(
                    node, name, [_split(v, leaves) if isinstance(v, ast.expr) else v for v in value]
                )
        return node
    if any(isinstance(n, ast.Compare) for n in ast.walk(node)):
        raise ValueError(
            f"`{ast.unparse(node)[:80]}` compares inside code the program's process runs, where "
            "the program could forge the verdict; write one assert per case, "
            "e.g. `assert f(1) == 2`"
        )
    leaves.append(ast.unparse(node))
    return _Leaf(len(leaves) - 1)


def _has_leaf(node: ast.AST) -> bool:
    return any(isinstance(n, _Leaf) for n in ast.walk(node))


def plan_assert(source: str) -> AssertPlan:
    """Split an assert test; ValueError when it cannot be checked without trusting the program.

    Top-level statements other than `assert` are setup, run in the sandbox after the program.
    Refused: an assert that is not at the top level (inside a def, loop, ...), a comparison
    inside a leaf (`all(f(x) == y for ...)`), and a comparison between two values the program
    computes (`f(2) == g(2)`): the program could report the same value for both.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise ValueError(f"not valid Python: {e.msg} (line {e.lineno})") from None
    steps: list[tuple[str, str]] = []
    checks: list[ast.expr] = []
    leaves: list[str] = []
    for stmt in tree.body:
        if not isinstance(stmt, ast.Assert):
            if any(isinstance(n, ast.Assert) for n in ast.walk(stmt)):
                raise ValueError(
                    "an assert inside a def, loop or other block cannot be checked outside the "
                    "program's process; write each case as a top-level assert"
                )
            steps.append(("exec", ast.unparse(stmt)))
            continue
        first, shown = len(leaves), ast.unparse(stmt.test)[:80]
        check = _split(stmt.test, leaves)
        for n in ast.walk(check):
            if isinstance(n, ast.Compare) and sum(map(_has_leaf, [n.left, *n.comparators])) > 1:
                raise ValueError(
                    f"`{shown}` compares values the program computes "
                    "with each other; compare each with a literal"
                )
        steps += [("eval", leaf) for leaf in leaves[first:]]
        checks.append(check)
    if not checks:
        raise ValueError("an assert test needs at least one top-level assert")
    return AssertPlan(steps, checks)


def _decode(data: Any, depth: int = 0) -> Any:
    """Plain data from the sandbox's tagged JSON (see _code_harness.encode), exact types only."""
    if depth > 100:
        raise ValueError("nested too deeply")
    t = type(data)
    if data is None or t is bool or t is int or t is str:
        return data
    if t is not dict or len(data) != 1:
        raise ValueError(f"not a tagged value: {t.__name__}")
    ((tag, body),) = data.items()
    if tag == "f" and type(body) is str:
        return float(body)
    if tag == "C" and type(body) is list and len(body) == 2:
        return complex(float(body[0]), float(body[1]))
    if tag == "B" and type(body) is str:
        return bytes.fromhex(body)
    if type(body) is not list:
        raise ValueError(f"bad body for tag {tag!r}")
    if tag == "D":
        pairs = [(_decode(k, depth + 1), _decode(v, depth + 1)) for k, v in body]
        return dict(pairs)
    kind = {"L": list, "T": tuple, "S": set, "F": frozenset}.get(tag)
    if kind is None:
        raise ValueError(f"unknown tag {tag!r}")
    return kind(_decode(v, depth + 1) for v in body)


class _LeafFailed(Exception):
    pass


def _size(x: Any) -> int:
    return len(x) if isinstance(x, (str, bytes, list, tuple)) else 0


def _binop(op: type, a: Any, b: Any) -> Any:
    # The operands may come from the program: refuse what would take this process's memory/time.
    if op is ast.Mult and (_size(a) or _size(b)):
        n = b if _size(a) else a
        if isinstance(n, int) and max(_size(a), _size(b)) * n > _BIG:
            raise ValueError("sequence too long")
    if op in (ast.Pow, ast.LShift) and isinstance(b, int) and abs(b) > _BIG:
        raise ValueError("exponent too large")
    if (
        op is ast.Pow
        and isinstance(a, int)
        and isinstance(b, int)
        and a.bit_length() * abs(b) > 64 * _BIG
    ):
        raise ValueError("power too large")
    if op is ast.Mod and isinstance(a, (str, bytes)):
        raise ValueError("string formatting in a test")
    return _BINOPS[op](a, b)


def _glue(node: ast.expr, values: list[Any]) -> Any:
    """Evaluate the parent's side of an assert; leaf values are already plain data."""
    if isinstance(node, _Leaf):
        value = values[node.index]
        if isinstance(value, _LeafFailed):
            raise value
        return value
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return _GLUE_FUNCS[node.id]
    if isinstance(node, ast.Attribute):
        return _GLUE_MATH[node.attr]
    if isinstance(node, ast.BoolOp):
        result = None
        for v in node.values:
            result = _glue(v, values)
            if (not result) if isinstance(node.op, ast.And) else result:
                return result
        return result
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_glue(node.operand, values))
    if isinstance(node, ast.BinOp):
        return _binop(type(node.op), _glue(node.left, values), _glue(node.right, values))
    if isinstance(node, ast.Compare):
        left = _glue(node.left, values)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _glue(right_node, values)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _glue(node.body if _glue(node.test, values) else node.orelse, values)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        kind = {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)]
        return kind(_glue(e, values) for e in node.elts)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise ValueError("** in a dict display")
        return {
            _glue(k, values): _glue(v, values) for k, v in zip(node.keys, node.values, strict=True)
        }  # type: ignore[arg-type]
    if isinstance(node, ast.Subscript):
        return _glue(node.value, values)[_glue(node.slice, values)]
    if isinstance(node, ast.Slice):
        parts = (node.lower, node.upper, node.step)
        return slice(*(None if p is None else _glue(p, values) for p in parts))
    if isinstance(node, ast.Call):
        f = node.func
        fn = _GUARDED.get(f.id) if isinstance(f, ast.Name) else None
        fn = fn or _glue(f, values)
        args = [_glue(a, values) for a in node.args]
        kwargs = {kw.arg: _glue(kw.value, values) for kw in node.keywords if kw.arg}
        if len(kwargs) != len(node.keywords):
            raise ValueError("** in a call")
        return fn(*args, **kwargs)
    raise ValueError(f"cannot evaluate {type(node).__name__}")


_HARNESS = Path(__file__).with_name("_code_harness.py").read_text()


def _parse_report(stdout: str, marker: str) -> dict[str, Any] | None:
    """The harness's one report line; None when it is missing, repeated or malformed."""
    lines = [line for line in stdout.split("\n") if line.startswith(marker)]
    if len(lines) != 1:
        return None
    try:
        report = json.loads(lines[0][len(marker) :])
    except (ValueError, RecursionError):
        return None
    if type(report) is not dict or type(report.get("values")) is not list:
        return None
    return report


def _run_assert(program: str, source: str, limits: Limits) -> tuple[bool, SandboxResult, str]:
    plan = plan_assert(source)
    marker = "R1LAB-REPORT-" + secrets.token_hex(16) + " "
    payload = json.dumps({"program": program, "steps": plan.steps})
    driver = f"{_HARNESS}\n\nmain({payload!r}, {marker!r})\n"
    result = run_python(driver, "", limits)
    if not result.ok:
        return False, result, ""
    report = _parse_report(result.stdout, marker)
    n_leaves = sum(kind == "eval" for kind, _ in plan.steps)
    if report is None or report.get("error") is not None or len(report["values"]) != n_leaves:
        why = "no report" if report is None else str(report.get("error") or "incomplete report")
        return False, result, why[:200]
    values: list[Any] = []
    for item in report["values"]:
        try:
            if type(item) is dict and "v" in item:
                values.append(_decode(item["v"]))
            else:
                raised = item.get("e") if type(item) is dict else None
                values.append(_LeafFailed(f"raised {str(raised)[:80]}"))
        except (ValueError, TypeError, RecursionError, OverflowError) as e:
            values.append(_LeafFailed(f"unreadable value: {e}"))
    for i, check in enumerate(plan.checks):
        try:
            if not _glue(check, values):
                return False, result, f"assert {i} failed"
        except _LeafFailed as e:
            return False, result, f"assert {i}: {e}"
        except Exception as e:  # noqa: BLE001 - any error in the check is a failed assert
            return False, result, f"assert {i}: {type(e).__name__}"
    return True, result, ""


def _run_test(
    program: str, test: Mapping[str, str], limits: Limits
) -> tuple[bool, SandboxResult, str]:
    if "assert" in test:
        return _run_assert(program, test["assert"], limits)
    result = run_python(program, test["input"], limits)
    return result.ok and outputs_match(result.stdout, test["output"]), result, ""


def _why(result: SandboxResult) -> str:
    if result.timed_out:
        return "timed out"
    if result.output_exceeded:
        return "printed too much"
    if result.returncode != 0:
        last = result.stderr.strip().splitlines()[-1:] or [""]
        return f"exit {result.returncode}: {last[0][:120]}"
    return "wrong output"


def _limits(timeout: float, memory_mb: int, require: str, hide: Sequence[str]) -> Limits:
    return Limits(
        wall_time=timeout,
        cpu_time=max(1, int(timeout + 0.999)),
        memory_bytes=memory_mb << 20,
        masks=WORLD_WRITABLE + ((hide,) if isinstance(hide, str) else tuple(map(str, hide))),
        require=require,
    )


def _preflight(
    *, timeout: float, memory_mb: int, require: str, hide: Sequence[str], **_: Any
) -> None:
    # At start-up: require=full (or R1LAB_SANDBOX_REQUIRE=full) without every isolation layer,
    # or `hide` without a mount namespace, refuses the run here rather than failing every item.
    require_isolation(_limits(timeout, memory_mb, require, hide))


def _score_tests(
    completion: str,
    example: Mapping[str, Any],
    *,
    timeout: float,
    total_timeout: float,
    memory_mb: int,
    require: str,
    hide: Sequence[str],
    stop_on_failure: bool,
) -> tuple[int, int, dict[str, Any]]:
    if "tests" not in example:
        raise KeyError("code rewards need the test cases in example['tests']")
    tests = load_tests(example["tests"])
    if not tests:
        raise ValueError("code rewards need at least one test case")
    program = extract_code(completion)
    if program is None:
        return 0, len(tests), {"reason": "no code"}
    limits = _limits(timeout, memory_mb, require, hide)
    start = time.monotonic()
    passed = 0
    info: dict[str, Any] = {}
    for i, test in enumerate(tests):
        if time.monotonic() - start > total_timeout:
            info.setdefault("first_failure", f"test {i}: total time budget spent")
            break
        ok, result, why = _run_test(program, test, limits)
        info.setdefault("isolation", list(result.isolation))
        if ok:
            passed += 1
            continue
        info.setdefault("first_failure", f"test {i}: {why or _why(result)}")
        if stop_on_failure:
            break
    return passed, len(tests), info


@register_reward("code", preflight=_preflight)
def code(
    completion: str,
    example: Mapping[str, Any],
    *,
    timeout: float = 2.0,
    total_timeout: float = 6.0,
    memory_mb: int = 512,
    require: str = "any",
    hide: Sequence[str] = (),
) -> tuple[float, dict[str, Any]]:
    """Fraction of `example["tests"]` the completion's program passes."""
    passed, total, info = _score_tests(
        completion,
        example,
        timeout=timeout,
        total_timeout=total_timeout,
        memory_mb=memory_mb,
        require=require,
        hide=hide,
        stop_on_failure=False,
    )
    return passed / total, {"passed": passed, "total": total, **info}


@register_reward("code_binary", preflight=_preflight)
def code_binary(
    completion: str,
    example: Mapping[str, Any],
    *,
    timeout: float = 2.0,
    total_timeout: float = 6.0,
    memory_mb: int = 512,
    require: str = "any",
    hide: Sequence[str] = (),
) -> tuple[float, dict[str, Any]]:
    """1.0 if the completion's program passes every test in `example["tests"]`, else 0.0."""
    passed, total, info = _score_tests(
        completion,
        example,
        timeout=timeout,
        total_timeout=total_timeout,
        memory_mb=memory_mb,
        require=require,
        hide=hide,
        stop_on_failure=True,
    )
    return float(passed == total), {"passed": passed, "total": total, **info}
