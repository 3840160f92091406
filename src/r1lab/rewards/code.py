"""Code rewards: run the completion's Python program against the example's test cases, sandboxed.

    code(completion, {"tests": [{"input": "2 3\\n", "output": "5\\n"}, {"assert": "assert add(2, 3) == 5"}]})

The program is the content of the last `<answer>` block (a ```python fence inside it is
unwrapped), else the last fenced code block of the completion (```python, ```py or bare ```).
`example["tests"]` is a list (or its JSON text) of test cases, each either
- `{"input": str, "output": str}`: the program reads `input` on stdin; it passes if it exits with
  status 0 and its stdout, stripped, equals `output`, stripped, line by line with trailing
  whitespace on each line ignored;
- `{"assert": str}`: the statement is appended to the program, which passes if it exits with 0.

Each test is its own sandboxed run (r1lab.rewards.sandbox) with `timeout` seconds of wall time;
tests left when `total_timeout` is spent count as failed, so one reward call is bounded by about
`total_timeout` plus one test. `code` scores the fraction of tests passed; `code_binary` scores 1
only if all pass (and stops at the first failure).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from r1lab.rewards.math import answer_block
from r1lab.rewards.registry import register_reward
from r1lab.rewards.sandbox import Limits, SandboxResult, run_python

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
    """The test cases of an example, from a list of dicts or its JSON text; malformed is an error."""
    tests = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(tests, Sequence) or isinstance(tests, str):
        raise ValueError(f"tests must be a list of test cases, got {type(tests).__name__}")
    out = []
    for i, t in enumerate(tests):
        if isinstance(t, Mapping) and "assert" in t:
            out.append({"assert": str(t["assert"])})
        elif isinstance(t, Mapping) and "input" in t and "output" in t:
            out.append({"input": str(t["input"]), "output": str(t["output"])})
        else:
            raise ValueError(
                f"test {i}: expected {{'input', 'output'}} or {{'assert'}}, got {t!r:.80}"
            )
    return out


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip().splitlines()]


def outputs_match(actual: str, expected: str) -> bool:
    """Equal once stripped, line by line, ignoring trailing whitespace on each line."""
    return _lines(actual) == _lines(expected)


def _run_test(program: str, test: Mapping[str, str], limits: Limits) -> tuple[bool, SandboxResult]:
    if "assert" in test:
        result = run_python(program + "\n\n" + test["assert"] + "\n", "", limits)
        return result.ok, result
    result = run_python(program, test["input"], limits)
    return result.ok and outputs_match(result.stdout, test["output"]), result


def _why(result: SandboxResult) -> str:
    if result.timed_out:
        return "timed out"
    if result.output_exceeded:
        return "printed too much"
    if result.returncode != 0:
        last = result.stderr.strip().splitlines()[-1:] or [""]
        return f"exit {result.returncode}: {last[0][:120]}"
    return "wrong output"


def _score_tests(
    completion: str,
    example: Mapping[str, Any],
    *,
    timeout: float,
    total_timeout: float,
    memory_mb: int,
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
    limits = Limits(
        wall_time=timeout, cpu_time=max(1, int(timeout + 0.999)), memory_bytes=memory_mb << 20
    )
    start = time.monotonic()
    passed = 0
    info: dict[str, Any] = {}
    for i, test in enumerate(tests):
        if time.monotonic() - start > total_timeout:
            info.setdefault("first_failure", f"test {i}: total time budget spent")
            break
        ok, result = _run_test(program, test, limits)
        info.setdefault("isolation", list(result.isolation))
        if ok:
            passed += 1
            continue
        info.setdefault("first_failure", f"test {i}: {_why(result)}")
        if stop_on_failure:
            break
    return passed, len(tests), info


@register_reward("code")
def code(
    completion: str,
    example: Mapping[str, Any],
    *,
    timeout: float = 2.0,
    total_timeout: float = 6.0,
    memory_mb: int = 512,
) -> tuple[float, dict[str, Any]]:
    """Fraction of `example["tests"]` the completion's program passes."""
    passed, total, info = _score_tests(
        completion,
        example,
        timeout=timeout,
        total_timeout=total_timeout,
        memory_mb=memory_mb,
        stop_on_failure=False,
    )
    return passed / total, {"passed": passed, "total": total, **info}


@register_reward("code_binary")
def code_binary(
    completion: str,
    example: Mapping[str, Any],
    *,
    timeout: float = 2.0,
    total_timeout: float = 6.0,
    memory_mb: int = 512,
) -> tuple[float, dict[str, Any]]:
    """1.0 if the completion's program passes every test in `example["tests"]`, else 0.0."""
    passed, total, info = _score_tests(
        completion,
        example,
        timeout=timeout,
        total_timeout=total_timeout,
        memory_mb=memory_mb,
        stop_on_failure=True,
    )
    return float(passed == total), {"passed": passed, "total": total, **info}
