"""The reward pool: order, hard time limits, replaced workers, errors, in-process mode."""

from __future__ import annotations

import logging
import time
from fractions import Fraction

import numpy as np
import pytest

from r1lab.rewards import CompositeReward, RewardError, RewardPool, register_reward, score_batch
from r1lab.rewards.composite import RewardResult

from . import _helpers  # noqa: F401 - registers the misbehaving test rewards

pytestmark = pytest.mark.timeout(90)

MATH = CompositeReward({"format": 0.5, "math_accuracy": 1.0})


def math_batch(n: int) -> tuple[list[str], list[dict]]:
    completions, examples = [], []
    for i in range(n):
        if i % 3 == 0:
            completions.append(f"<think>count</think> <answer>{i}</answer>")
        elif i % 3 == 1:
            completions.append(f"The answer is \\boxed{{{i + 1}}}")  # wrong, bad format
        else:
            completions.append(f"<think>half</think> <answer>\\frac{{{2 * i}}}{{2}}</answer>")
        examples.append({"answer": f"#### {i}"})
    return completions, examples


@pytest.fixture(scope="module")
def pool():
    with RewardPool(workers=2, timeout=5.0) as p:
        yield p


def test_matches_in_process_scoring_in_order(pool):
    completions, examples = math_batch(30)
    pooled = pool.score(MATH, completions, examples)
    here = RewardPool(workers=0).score(MATH, completions, examples)
    assert [r.parts for r in pooled] == [r.parts for r in here]
    assert [r.total for r in pooled] == [1.5 if i % 3 != 1 else 0.0 for i in range(30)]


def test_workers_persist_across_batches(pool):
    who = CompositeReward({"_test_pid": 1.0})
    first = {r.total for r in pool.score(who, ["x"] * 8, [{}] * 8)}
    second = {r.total for r in pool.score(who, ["x"] * 8, [{}] * 8)}
    assert first == second and 1 <= len(first) <= 2


# 2^2^...^2, 340 levels (679 chars, under every length and nesting limit): deep enough that
# sympy's recursive `is_number` overflowed the stack.
TOWER = "^".join(["2"] * 340)
HOSTILE = [
    "9^9^9^9",
    "9^{9^{9^{9}}}",
    "1+" * 50_000 + "1",  # 100 kB
    "\\frac{" * 300 + "1" + "}{2}" * 300,
    "\\sqrt{" * 200 + "2" + "}" * 200,
    TOWER,
]


def test_hostile_math_scores_zero_within_the_limit(pool):
    completions = [f"<think>t</think> <answer>{a}</answer>" for a in HOSTILE] + [
        "<think>t</think> <answer>2</answer>"
    ]
    start = time.monotonic()
    results = pool.score(MATH, completions, [{"answer": "2"}] * len(completions))
    assert time.monotonic() - start < pool.timeout
    assert [r.parts["math_accuracy"] for r in results] == [0.0] * len(HOSTILE) + [1.0]
    assert all(r.parts["format"] == 1.0 for r in results)
    # Each scored 0 by the math reward's own guards, not by the pool's guard against errors.
    assert all(r.info["errors"] == {} for r in results)


def test_a_hanging_reward_is_killed_and_its_worker_replaced():
    # Guards and math-verify's own timeout off: 9^{9^{9}} computes a 370-million-digit number.
    unguarded = CompositeReward(
        {"format": 1.0, "math_accuracy": 1.0},
        params={"math_accuracy": {"max_digits": 10**12, "timeout": 0}},
    )
    completions = ["<think>t</think> <answer>9^{9^{9}}</answer>"] + [
        f"<think>t</think> <answer>{i}</answer>" for i in range(1, 6)
    ]
    examples = [{"answer": str(i)} for i in range(6)]
    with RewardPool(workers=2, timeout=1.5) as pool:
        pool.score(CompositeReward({"format": 1.0}), ["x"], [{}])  # workers up and ready
        start = time.monotonic()
        results = pool.score(unguarded, completions, examples)
        took = time.monotonic() - start
        assert took < 1.5 + 1.0
        assert results[0].info["timeout"] is True
        assert results[0].info["timed_out"] == ["math_accuracy"]
        assert results[0].parts == {"format": 1.0, "math_accuracy": 0.0}  # the other part ran
        assert [r.total for r in results[1:]] == [2.0] * 5
        assert not any(r.info["timeout"] for r in results[1:])
        assert pool.restarts == 1
        # The replacement works.
        again = pool.score(MATH, ["<think>t</think> <answer>4</answer>"], [{"answer": "4"}])
        assert again[0].total == 1.5


def test_pure_python_spin_is_killed_too():
    with RewardPool(workers=1, timeout=0.5) as pool:
        spin = CompositeReward({"_test_spin": 1.0, "format": 1.0})
        results = pool.score(spin, ["<think>a</think><answer>b</answer>"] * 2, [{}] * 2)
        assert [r.parts for r in results] == [{"_test_spin": 0.0, "format": 1.0}] * 2
        assert all(r.info["timed_out"] == ["_test_spin"] for r in results)
        assert pool.restarts == 2


def test_a_dying_worker_is_replaced(pool):
    dying = CompositeReward({"format": 1.0, "_test_die": 1.0})
    results = pool.score(dying, ["<think>a</think><answer>b</answer>"] * 3, [{}] * 3)
    assert all(r.info["crashed"] == ["_test_die"] for r in results)
    assert all(r.parts == {"format": 1.0, "_test_die": 0.0} for r in results)
    assert (
        pool.score(MATH, ["<answer>1</answer>"], [{"answer": "1"}])[0].parts["math_accuracy"] == 1.0
    )


def test_in_process_mode_does_not_hang_on_hostile_math():
    completions = [f"<answer>{a}</answer>" for a in HOSTILE]
    start = time.monotonic()
    results = RewardPool(workers=0).score(MATH, completions, [{"answer": "2"}] * len(HOSTILE))
    assert time.monotonic() - start < 5.0
    assert all(r.total == 0.0 for r in results)
    assert all(r.info["errors"] == {} for r in results)


def test_progress_and_validation(pool):
    seen = []
    completions, examples = math_batch(7)
    pool.score(MATH, completions, examples, progress=seen.append)
    assert sum(seen) == 7
    with pytest.raises(ValueError, match="pair up"):
        pool.score(MATH, completions, examples[:-1])
    with pytest.raises(ValueError, match="workers"):
        RewardPool(workers=-1)


def test_rewards_defined_in_main_stay_in_process():
    def local(completion, example):
        return 1.0

    local.__module__ = "__main__"
    register_reward("_test_main_only")(local)
    composite = CompositeReward({"_test_main_only": 1.0})
    assert RewardPool(workers=0).score(composite, ["x"], [{}])[0].total == 1.0
    with pytest.raises(ValueError, match="__main__"):
        RewardPool(workers=1).score(composite, ["x"], [{}])


def test_score_batch_and_close():
    results = score_batch(MATH, ["<think>a</think><answer>3</answer>"], [{"answer": 3}], workers=1)
    assert len(results) == 1 and isinstance(results[0], RewardResult)
    assert results[0].total == 1.5 and results[0].parts == {"format": 1.0, "math_accuracy": 1.0}
    info = results[0].info
    assert info["timeout"] is False and info["timed_out"] == [] and info["crashed"] == []
    assert info["details"] == {"math_accuracy": {"pred": "3"}}
    assert set(info["seconds"]) == {"format", "math_accuracy"}
    pool = RewardPool(workers=2)
    pool.start()
    procs = [w.proc for w in pool._pool]
    pool.close()
    assert all(p.poll() is not None for p in procs)


def test_one_composite_per_item_mixes_tasks(pool):
    countdown = CompositeReward({"format": 0.5, "countdown": 1.0})
    completions = ["<think>a</think> <answer>2 + 3</answer>"] * 2
    examples = [{"answer": "5"}, {"numbers": [2, 3], "target": 5}]
    results = pool.score([MATH, countdown], completions, examples)
    assert [r.parts for r in results] == [
        {"format": 1.0, "math_accuracy": 1.0},
        {"format": 1.0, "countdown": 1.0},
    ]
    assert [r.total for r in results] == [1.5, 1.5]
    with pytest.raises(ValueError, match="one per completion"):
        pool.score([MATH], completions, examples)


def test_seconds_of_a_killed_part_is_about_the_limit():
    with RewardPool(workers=1, timeout=0.5) as pool:
        pool.score(CompositeReward({"format": 1.0}), ["x"], [{}])
        result = pool.score(CompositeReward({"_test_spin": 1.0}), ["x"], [{}])[0]
    assert 0.5 <= result.info["seconds"]["_test_spin"] < 0.5 + 0.5


def test_workers_die_with_their_parent(tmp_path):
    # A pool whose process is SIGKILLed mid-hang must not leave workers burning CPU.
    import os
    import signal
    import subprocess
    import sys

    script = (
        "import os, sys\n"
        "sys.path[:0] = " + repr([p for p in sys.path if p]) + "\n"
        "from r1lab.rewards import CompositeReward, RewardPool\n"
        "from rewards import _helpers\n"
        "pool = RewardPool(workers=1, timeout=60)\n"
        "pool.start()\n"
        "print(pool._pool[0].proc.pid, flush=True)\n"
        "pool.score(CompositeReward({'_test_spin': 1.0}), ['x'], [{}])\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    time.sleep(1.0)  # the worker is spinning now
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(100):
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{worker}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.05)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its parent")


def test_a_large_item_queued_behind_a_hang_does_not_block_the_pool():
    # 100 kB is more than a pipe holds: writing it to a busy worker would block this process
    # until the hang ended, and the time limit could never fire.
    big = "<answer>" + "x" * 100_000 + "</answer>"
    with RewardPool(workers=1, timeout=0.5) as pool:
        pool.score(CompositeReward({"format": 1.0}), ["x"], [{}])
        start = time.monotonic()
        results = pool.score(CompositeReward({"_test_spin": 1.0}), ["x", big], [{}, {}])
        assert time.monotonic() - start < 0.5 * 2 + 2.0
    assert [r.info["timed_out"] for r in results] == [["_test_spin"], ["_test_spin"]]


# -- one bad item never aborts a batch -------------------------------------------------------

FLAKY = CompositeReward({"format": 0.5, "math_accuracy": 1.0, "_test_flaky": 1.0})
GOOD = "<think>t</think> <answer>2</answer>"


@pytest.fixture(params=["in-process", "workers"])
def any_pool(request, pool):
    return RewardPool(workers=0) if request.param == "in-process" else pool


def test_a_bad_item_scores_zero_for_that_reward_and_the_batch_goes_on(any_pool, caplog):
    completions = [
        GOOD,
        "<think>boom</think> <answer>2</answer>",  # _test_flaky raises
        "<think>nan</think> <answer>2</answer>",  # _test_flaky returns NaN
        "<think>inf</think> <answer>2</answer>",  # _test_flaky returns -inf
        f"<think>t</think> <answer>{TOWER}</answer>",  # the real math reward, hostile input
        GOOD,
    ]
    with caplog.at_level(logging.WARNING, logger="r1lab.rewards"):
        results = any_pool.score(FLAKY, completions, [{"answer": "2"}] * len(completions))
    assert [r.parts["_test_flaky"] for r in results] == [1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    assert [r.parts["math_accuracy"] for r in results] == [1.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    assert [r.total for r in results] == [2.5, 1.5, 1.5, 1.5, 1.5, 2.5]  # finite: NaN is gone
    errors = [r.info["errors"] for r in results]
    assert errors[0] == errors[4] == errors[5] == {}
    assert errors[1] == {"_test_flaky": "ValueError: boom"}
    assert list(errors[2]) == list(errors[3]) == ["_test_flaky"]
    assert "nan" in errors[2]["_test_flaky"] and "-inf" in errors[3]["_test_flaky"]
    # One warning per failed part, naming the reward, the item, the error and the completion.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert "'_test_flaky'" in warnings[0] and "item 1" in warnings[0]
    assert "ValueError: boom" in warnings[0] and "<think>boom</think> <answer>2" in warnings[0]


def test_an_exception_that_cannot_be_printed_is_still_an_error_on_its_item(any_pool):
    completions = [GOOD, "<think>unprintable</think> <answer>2</answer>"]
    results = any_pool.score(FLAKY, completions, [{"answer": "2"}] * 2)
    assert [r.parts["_test_flaky"] for r in results] == [1.0, 0.0]
    assert results[1].info["errors"]["_test_flaky"].startswith("Unprintable")


def test_an_error_is_described_in_at_most_300_characters():
    # The message may quote a hostile completion: the logs and info keep 300 characters of it.
    from r1lab.rewards.composite import _describe

    whole = ValueError("x" * (300 - len("ValueError: ")))
    assert _describe(whole) == f"ValueError: {'x' * 288}"  # exactly the limit: kept whole
    cut = _describe(ValueError("y" * 1000))
    assert len(cut) == 300 and cut == "ValueError: " + "y" * 285 + "..."


def test_a_reward_failing_on_every_item_stops_the_batch_with_its_error(any_pool):
    failing = CompositeReward({"format": 1.0, "_test_raise": 1.0})
    with pytest.raises(
        RewardError,
        match=r"'_test_raise' failed on item 0: ValueError: reference data is broken.*all 3",
    ):
        any_pool.score(failing, ["x"] * 3, [{}] * 3)
    # The pool recovers for the next batch.
    assert len(any_pool.score(MATH, *math_batch(3))) == 3


def test_every_item_means_every_item_that_reward_ran_on(any_pool):
    # A batch mixing tasks: countdown runs on two items, both lack its reference data.
    countdown = CompositeReward({"format": 0.5, "countdown": 1.0})
    completions = ["<answer>1</answer>"] * 3
    examples = [{"answer": "1"}, {"answer": "1"}, {"answer": "1"}]
    with pytest.raises(RewardError, match=r"'countdown' failed on item 1: KeyError.*all 2"):
        any_pool.score([MATH, countdown, countdown], completions, examples)
    # On one item of several it is that item's problem: scored 0, recorded, the rest scored.
    results = any_pool.score([MATH, countdown, MATH], completions, examples)
    assert [r.total for r in results] == [1.0, 0.0, 1.0]
    assert "KeyError" in results[1].info["errors"]["countdown"]


def test_a_single_failing_item_is_not_called_systemic(any_pool):
    # One failure cannot tell a bug from a bad completion; stopping would be the very abort the
    # guard exists to prevent, so a batch of one scores 0 and records the error.
    failing = CompositeReward({"format": 1.0, "_test_raise": 1.0})
    [result] = any_pool.score(failing, ["<think>a</think><answer>b</answer>"], [{}])
    assert result.parts == {"format": 1.0, "_test_raise": 0.0} and result.total == 1.0
    assert result.info["errors"] == {"_test_raise": "ValueError: reference data is broken"}


JUNK = [None, "1.0", True, np.bool_(True), (1.0,), [1.0], (1.0, "info"), ("1", {}), 1j, 10**400]
NUMBERS = [(1, 1.0), (np.float32(0.5), 0.5), (np.int64(1), 1.0), (Fraction(1, 4), 0.25)]
NUMBERS += [((0.5, {"k": 1}), 0.5), (np.float64(0.75), 0.75)]


def test_junk_return_values_are_errors_on_their_item_and_numbers_are_floats(any_pool):
    values = JUNK + [v for v, _ in NUMBERS]
    results = any_pool.score(
        CompositeReward({"_test_junk": 1.0}), ["x"] * len(values), [{"value": v} for v in values]
    )
    assert [r.total for r in results] == [0.0] * len(JUNK) + [f for _, f in NUMBERS]
    assert all(type(r.parts["_test_junk"]) is float for r in results)
    assert all("_test_junk" in r.info["errors"] for r in results[: len(JUNK)])
    assert all(r.info["errors"] == {} for r in results[len(JUNK) :])
    assert "returned NoneType" in results[0].info["errors"]["_test_junk"]


def test_an_info_that_cannot_leave_the_worker_is_an_error_on_its_item(pool):
    results = pool.score(
        CompositeReward({"format": 1.0, "_test_junk": 1.0}),
        ["<answer>a</answer>"] * 2,
        [{"value": "unpicklable info"}, {"value": 1.0}],
    )
    assert [r.parts["_test_junk"] for r in results] == [0.0, 1.0]
    assert "_test_junk" in results[0].info["errors"] and not results[0].info["crashed"]
    assert pool.score(MATH, ["<answer>1</answer>"], [{"answer": "1"}])[0].total == 1.0


def test_the_guard_holds_when_the_math_reward_itself_raises(monkeypatch):
    # Even if a parser overflows the stack on some input the root-cause fix missed.
    import r1lab.rewards.math as math_reward

    real = math_reward.math_equal

    def overflow(gold, pred, **kw):
        if "^" in pred:
            raise RecursionError("maximum recursion depth exceeded")
        return real(gold, pred, **kw)

    monkeypatch.setattr(math_reward, "math_equal", overflow)
    completions = [GOOD, f"<think>t</think> <answer>{TOWER}</answer>", GOOD]
    results = RewardPool(workers=0).score(MATH, completions, [{"answer": "2"}] * 3)
    assert [r.total for r in results] == [1.5, 0.5, 1.5]
    assert results[1].info["errors"] == {
        "math_accuracy": "RecursionError: maximum recursion depth exceeded"
    }
