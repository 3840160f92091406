"""Benchmark reward scoring: r1lab's pool (2 workers) against scoring serially in one process.

    .venv/bin/python bench/rewards.py              # 1,000 mixed completions, the docs' numbers
    .venv/bin/python bench/rewards.py --n 200      # quicker

The batch is seeded and mixed like an RL step on math and code: about three quarters math
(GSM8K `#### N` and MATH `\\boxed{}` references; right, equivalent-but-different, wrong and
badly formatted answers, reasoning of a few hundred to a few thousand characters), a fifth code
(stdin/stdout and assert tests, right and buggy programs), and ~2% hostile items (power towers,
a 100 kB answer, deeply nested LaTeX; infinite loops, a fork bomb, 1 GB of output).

Three ways to score the same batch, each timed over the whole batch:
1. `pool`: RewardPool(workers=2), started and warmed first (a trainer keeps it open);
2. `serial r1lab`: the same CompositeRewards called in this process, one item after another
   (math-verify's own signal timeouts active: we are on the main thread);
3. `serial math-verify`: what a user without r1lab writes: the `<answer>` text (else the whole
   completion) through `math_verify.parse` and `verify(gold, pred)` with math-verify's default
   5-second timeouts, and r1lab's `code` reward as the code check, serially. No hard limit: a
   hostile item costs whatever math-verify's own timeout lets it cost.
The pool's per-part latency (from RewardResult.info["seconds"]) is checked against its limit.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import time
from typing import Any

from r1lab.rewards import CompositeReward, RewardPool, get_reward

MATH = CompositeReward({"format": 0.5, "math_accuracy": 1.0})
CODE = CompositeReward({"format": 0.5, "code": 1.0})

FILLER = (
    "Let me think about this step by step. First I restate the problem in my own words. "
    "Then I check each quantity. Wait, I should double-check the arithmetic here. "
)


def _reasoning(rng: random.Random, core: str) -> str:
    return FILLER * rng.randint(2, 25) + core


def math_item(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A GSM8K- or MATH-style problem and one sampled completion of it."""
    a, b = rng.randint(10, 999), rng.randint(2, 99)
    if rng.random() < 0.5:  # GSM8K: integer answers, `#### N` references
        value = a * b
        ref = f"She buys {a} boxes of {b} items: {a} * {b} = <<{a}*{b}={value}>>{value}.\n#### {value:,}"
        right = [str(value), f"{value:,}", f"{value}.0", f"\\boxed{{{value}}}"]
        wrong = [str(value + rng.randint(1, 9)), str(a + b)]
    else:  # MATH: fractions in a \boxed{} solution
        g = rng.randint(2, 9)
        num, den = a * g, b * g
        ref = f"Simplifying, $\\frac{{{num}}}{{{den}}} = \\boxed{{\\frac{{{a}}}{{{b}}}}}$."
        right = [f"\\frac{{{a}}}{{{b}}}", f"\\dfrac{{{num}}}{{{den}}}", f"{a}/{b}"]
        wrong = [f"\\frac{{{b}}}{{{a}}}", f"\\frac{{{a + 1}}}{{{b}}}"]
    answer = rng.choice(right if rng.random() < 0.6 else wrong)
    think = _reasoning(rng, f"So the result is {answer}.")
    style = rng.random()
    if style < 0.75:
        completion = f"<think>{think}</think> <answer>{answer}</answer>"
    elif style < 0.9:
        completion = f"{think} The answer is $\\boxed{{{answer}}}$."
    else:
        completion = f"<think>{think}"  # truncated at the length limit
    return completion, {"answer": ref}


PROBLEMS = [
    # (right program, buggy program, tests)
    (
        "a, b = map(int, input().split())\nprint(a + b)\n",
        "a, b = map(int, input().split())\nprint(a - b)\n",
        [{"input": "2 3\n", "output": "5\n"}, {"input": "10 -4\n", "output": "6\n"}],
    ),
    (
        "s = input()\nprint(s[::-1])\n",
        "s = input()\nprint(s)\n",
        [{"input": "abc\n", "output": "cba\n"}, {"input": "racecar\n", "output": "racecar\n"}],
    ),
    (
        "def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)\n",
        "def fact(n):\n    return n * (n - 1)\n",
        [{"assert": "assert fact(5) == 120"}, {"assert": "assert fact(0) == 1"}],
    ),
    (
        "n = int(input())\nprint(sum(i * i for i in range(1, n + 1)))\n",
        "n = int(input())\nprint(sum(range(n)))\n",
        [{"input": "3\n", "output": "14\n"}, {"input": "10\n", "output": "385\n"}],
    ),
]


def code_item(rng: random.Random) -> tuple[str, dict[str, Any]]:
    right, buggy, tests = rng.choice(PROBLEMS)
    program = right if rng.random() < 0.6 else buggy
    think = _reasoning(rng, "I will read the input and compute the result.")
    return f"<think>{think}</think> <answer>\n```python\n{program}```\n</answer>", {"tests": tests}


HOSTILE_MATH = [
    "9^{9^{9}}",
    "9^9^9^9",
    "1+" * 50_000 + "1",
    "\\frac{" * 200 + "1" + "}{2}" * 200,
]
HOSTILE_CODE = [
    "while True:\n    pass\n",
    "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
    "import time\ntime.sleep(3600)\n",
]


def make_batch(
    n: int, seed: int = 0, hostile: bool = True
) -> list[tuple[CompositeReward, str, dict[str, Any]]]:
    rng = random.Random(seed)
    items = []
    while len(items) < n:
        r = rng.random()
        if r < 0.02 and not hostile:
            continue
        if r < 0.01:
            answer = rng.choice(HOSTILE_MATH)
            items.append(
                (MATH, f"<think>big</think> <answer>{answer}</answer>", {"answer": "#### 2"})
            )
        elif r < 0.02:
            program = rng.choice(HOSTILE_CODE)
            tests = [{"input": "1\n", "output": "1\n"}]
            items.append((CODE, f"<think>x</think> <answer>{program}</answer>", {"tests": tests}))
        elif r < 0.78:
            items.append((MATH, *math_item(rng)))
        else:
            items.append((CODE, *code_item(rng)))
    return items


_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def user_math_check(completion: str, example: dict[str, Any]) -> float:
    """Math accuracy as a user writes it with math-verify alone (default timeouts, gold first)."""
    from math_verify import parse, verify

    found = _ANSWER.findall(completion)
    content = found[-1] if found else completion
    ref = example["answer"]
    gold = parse(ref.split("####")[-1].replace(",", "") if "####" in ref else ref)
    pred = parse(content)
    return float(bool(gold) and verify(gold, pred))


def serial_user(items) -> tuple[float, list[float]]:
    fmt, code = get_reward("format"), get_reward("code")
    latencies = []
    start = time.perf_counter()
    for composite, completion, example in items:
        t = time.perf_counter()
        fmt(completion, example)
        if "math_accuracy" in composite.weights:
            user_math_check(completion, example)
        else:
            code(completion, example)
        latencies.append(time.perf_counter() - t)
    return time.perf_counter() - start, latencies


def serial_r1lab(items) -> tuple[float, list[float], list[float]]:
    for composite, completion, example in items[:20]:  # warm, as the pool's workers are
        composite(completion, example)
    latencies, totals = [], []
    start = time.perf_counter()
    for composite, completion, example in items:
        t = time.perf_counter()
        totals.append(composite(completion, example).total)
        latencies.append(time.perf_counter() - t)
    return time.perf_counter() - start, latencies, totals


def pooled(items, workers: int, timeout: float):
    """(seconds for the batch, results, workers replaced, seconds to start and warm the pool)."""
    start = time.perf_counter()
    with RewardPool(workers=workers, timeout=timeout) as pool:
        warm = items[:20]
        pool.score([c for c, _, _ in warm], [x for _, x, _ in warm], [e for _, _, e in warm])
        startup = time.perf_counter() - start
        start = time.perf_counter()
        results = pool.score(
            [c for c, _, _ in items], [x for _, x, _ in items], [e for _, _, e in items]
        )
        took = time.perf_counter() - start
        return took, results, pool.restarts, startup


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, load avg {load}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=10.0, help="pool limit per reward call (s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-user", action="store_true", help="skip the math-verify-alone baseline")
    ap.add_argument("--no-hostile", action="store_true", help="leave the hostile items out")
    args = ap.parse_args()

    items = make_batch(args.n, args.seed, hostile=not args.no_hostile)
    n_math = sum(c is MATH for c, _, _ in items)
    n_hostile = sum(("<answer>" + h in x) for _, x, _ in items for h in HOSTILE_MATH + HOSTILE_CODE)
    print(f"machine: {machine()}")
    print(
        f"batch: {len(items)} items ({n_math} math, {len(items) - n_math} code, {n_hostile} hostile)"
    )

    t_pool, results, restarts, startup = pooled(items, args.workers, args.timeout)
    print(f"pool done in {t_pool:.1f}s", flush=True)
    t_serial, lat_serial, totals = serial_r1lab(items)
    print(f"serial r1lab done in {t_serial:.1f}s", flush=True)
    if [r.total for r in results] != totals:
        raise SystemExit("pooled and serial scores differ: a bug, not a benchmark result")
    t_user, lat_user = (None, []) if args.skip_user else serial_user(items)

    part_max = max(max(r.info["seconds"].values()) for r in results)
    item_max = max(sum(r.info["seconds"].values()) for r in results)
    killed = sum(r.info["timeout"] for r in results)

    rows = [("pool, 2 workers", t_pool), ("serial r1lab rewards", t_serial)]
    if t_user is not None:
        rows.append(("serial math-verify + code check", t_user))
    print()
    print(
        f"### Rewards: {len(items)} mixed completions ({n_math} math, {len(items) - n_math} code, {n_hostile} hostile)"
    )
    print()
    print("| scoring | wall time (s) | items/s | pool speed-up |")
    print("|---|---:|---:|---:|")
    for name, t in rows:
        print(f"| {name} | {t:.1f} | {len(items) / t:.1f} | {t / t_pool:.2f}x |")
    print()
    print(
        f"- pool: max latency of one reward call {part_max:.2f} s, of one item (all parts) "
        f"{item_max:.2f} s; limit {args.timeout:.0f} s per call; {killed} calls killed at the "
        f"limit, {restarts} workers replaced"
    )
    print(f"- pool start-up and warm-up (20 items, not in the timings): {startup:.1f} s")
    print(f"- serial r1lab: slowest item {max(lat_serial):.2f} s")
    if lat_user:
        print(f"- serial math-verify: slowest item {max(lat_user):.2f} s (no hard limit)")
    print("- pooled and serial r1lab totals are identical item by item")


if __name__ == "__main__":
    main()
