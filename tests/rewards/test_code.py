"""Code rewards: program extraction, output comparison, and scoring against tests in the sandbox."""

from __future__ import annotations

import json
import time

import pytest

from r1lab.rewards.code import code, code_binary, extract_code, load_tests, outputs_match

pytestmark = pytest.mark.timeout(60)

ADD = "a, b = map(int, input().split())\nprint(a + b)\n"
IO_TESTS = [{"input": "2 3\n", "output": "5\n"}, {"input": "-1 1", "output": "0"}]


def answer(program: str) -> str:
    return f"<think>plan</think> <answer>\n```python\n{program}```\n</answer>"


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("<answer>print(1)</answer>", "print(1)"),
        ("<answer>\n```python\nprint(2)\n```\n</answer>", "print(2)\n"),
        ("text ```py\nprint(3)\n``` more ```python\nprint(4)\n```", "print(4)\n"),
        ("bare fence:\n```\nprint(5)\n```", "print(5)\n"),
        ("<think>```python\nprint(0)\n```</think><answer>print(6)</answer>", "print(6)"),
        ("no code at all", None),
        ("<answer>   </answer>", None),
    ],
)
def test_extract_code(completion, expected):
    assert extract_code(completion) == expected


@pytest.mark.parametrize(
    "actual, expected, same",
    [
        ("5\n", "5", True),
        ("1 2  \n3\t\n\n", "1 2\n3", True),
        ("\n\n5\n", "5\n", True),
        ("1\n2\n", "1\n\n2\n", False),
        (" 5", "5", True),  # the whole output is stripped
        ("a\n  b", "a\nb", False),  # leading whitespace inside is kept
        ("5", "6", False),
        ("5\u2028", "5", False),  # only ASCII whitespace is stripped
        ("1\x1c2", "1\n2", False),  # and only \n (or \r\n) breaks lines
        ("1\r\n2\r\n", "1\n2", True),
    ],
)
def test_outputs_match(actual, expected, same):
    assert outputs_match(actual, expected) is same


def test_load_tests():
    assert load_tests(json.dumps(IO_TESTS)) == [
        {"input": "2 3\n", "output": "5\n"},
        {"input": "-1 1", "output": "0"},
    ]
    with pytest.raises(ValueError, match="test 1"):
        load_tests([{"assert": "assert True"}, {"stdin": "x"}])
    with pytest.raises(ValueError, match="list"):
        load_tests({"input": "1"})


def test_all_tests_pass():
    value, info = code(answer(ADD), {"tests": IO_TESTS})
    assert value == 1.0 and info["passed"] == 2 and info["total"] == 2
    assert "rlimits" in info["isolation"]
    assert code_binary(answer(ADD), {"tests": json.dumps(IO_TESTS)})[0] == 1.0


def test_assert_tests():
    program = "def square(x):\n    return x * x\n"
    tests = [{"assert": "assert square(3) == 9"}, {"assert": "assert square(-2) == 4"}]
    assert code(f"<answer>{program}</answer>", {"tests": tests})[0] == 1.0
    wrong = "def square(x):\n    return abs(x) * 3\n"  # right for 3 only
    assert code(f"<answer>{wrong}</answer>", {"tests": tests})[0] == 0.5


def test_partial_credit_and_binary():
    program = "n = int(input())\nprint(sum(range(n)))\n"  # off by one except for n = 0
    tests = [
        {"input": "0", "output": "0"},
        {"input": "3", "output": "6"},
        {"input": "4", "output": "10"},
    ]
    value, info = code(answer(program), {"tests": tests})
    assert value == pytest.approx(1 / 3) and info["first_failure"].startswith("test 1")
    value, info = code_binary(answer(program), {"tests": tests})
    assert value == 0.0 and info["passed"] == 1  # stopped at the first failure


def test_failures_score_zero():
    tests = [{"input": "1 1", "output": "2"}]
    assert code(answer("print(1 +)\n"), {"tests": tests})[0] == 0.0  # syntax error
    assert code(answer("import sys\nprint(2)\nsys.exit(1)\n"), {"tests": tests})[0] == 0.0
    value, info = code("I would write a loop.", {"tests": tests})
    assert value == 0.0 and info["reason"] == "no code"


def test_infinite_loop_is_bounded_by_the_test_timeout():
    start = time.monotonic()
    value, info = code(answer("while True:\n    pass\n"), {"tests": IO_TESTS}, timeout=0.5)
    assert value == 0.0 and info["passed"] == 0
    assert info["first_failure"].startswith("test 0: ")
    assert time.monotonic() - start < 3 * 0.5 + 2


def test_total_budget_stops_early():
    slow = "import time\ntime.sleep(0.4)\nprint(input())\n"
    tests = [{"input": str(i), "output": str(i)} for i in range(10)]
    start = time.monotonic()
    value, info = code(answer(slow), {"tests": tests}, timeout=2.0, total_timeout=1.0)
    assert time.monotonic() - start < 3.5
    assert 0 < info["passed"] < 10 and value == info["passed"] / 10
    assert "budget" in info["first_failure"]


def test_require_full_isolation(monkeypatch):
    from r1lab.rewards.sandbox import FULL, SandboxError

    program = "<answer>def square(x):\n    return x * x\n</answer>"
    tests = [{"assert": "assert square(3) == 9"}]
    with pytest.raises(SandboxError, match="expected 'any' or 'full'"):
        code(program, {"tests": tests}, require="most")
    monkeypatch.setenv("R1LAB_SANDBOX_REQUIRE", "full")
    try:
        value, info = code(program, {"tests": tests})
    except SandboxError as e:  # a machine without every layer: refused, naming what is missing
        assert "R1LAB_SANDBOX_REQUIRE" in str(e)
    else:
        assert value == 1.0 and set(FULL) <= set(info["isolation"])


def test_hide_keeps_the_dataset_out_of_reach():
    # The program can read any world-readable file: a dataset holding the expected values is a
    # way to pass without solving. `hide` covers its directory with an empty tmpfs.
    import os
    import shutil
    import tempfile

    from r1lab.rewards.sandbox import WORLD_WRITABLE, Limits, SandboxError, run_python

    base = "/mnt" if os.path.isdir("/mnt") else os.getcwd()  # outside the masked /tmp
    data = tempfile.mkdtemp(prefix="r1lab-test-hide-", dir=base)
    try:
        os.chmod(data, 0o755)
        with open(os.path.join(data, "train.jsonl"), "w") as f:
            f.write('{"tests": [{"assert": "assert square(3) == 9"}]}\n')
        os.chmod(os.path.join(data, "train.jsonl"), 0o644)
        cheat = (
            "import re\n"
            f"found = re.findall(r'square\\((\\d+)\\) == (\\d+)', open({data!r} + '/train.jsonl').read())\n"
            "table = {int(a): int(b) for a, b in found}\n"
            "def square(x):\n    return table.get(x, 0)\n"
        )
        tests = [{"assert": "assert square(3) == 9"}]
        assert code(answer(cheat), {"tests": tests})[0] == 1.0  # the file is readable
        value, info = code(answer(cheat), {"tests": tests}, hide=[data])
        assert value == 0.0, info
        with pytest.raises(SandboxError, match="mount namespace"):
            run_python("print(1)", "", Limits(namespaces=False, masks=(*WORLD_WRITABLE, data)))
    finally:
        shutil.rmtree(data)


def test_assert_tests_the_harness_cannot_check_are_refused():
    for source, why in [
        ("assert f(1) == f(2)", "with each other"),
        ("assert all(f(x) == y for x, y in [(1, 2)])", "compares inside"),
        ("def check(c):\n    assert c(1) == 2\ncheck(f)", "top-level assert"),
        ("for i in range(3):\n    assert f(i) == i", "top-level assert"),
        ("x = f(1)", "at least one"),
        ("assert f(", "not valid Python"),
    ]:
        with pytest.raises(ValueError, match=why):
            load_tests([{"assert": "assert True"}, {"assert": source}])


def test_missing_or_empty_tests_is_an_error():
    with pytest.raises(KeyError, match="tests"):
        code(answer(ADD), {})
    with pytest.raises(ValueError, match="at least one"):
        code(answer(ADD), {"tests": []})
