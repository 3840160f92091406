import random

import pytest

from r1lab.tasks import ArithmeticTask, CountdownTask, TaskConfig, make_task, render_prompt
from r1lab.tasks.base import R1_ZERO_TEMPLATE
from r1lab.tasks.splits import in_split


@pytest.mark.parametrize("task", [ArithmeticTask(), CountdownTask()], ids=["arith", "countdown"])
def test_splits_are_disjoint_and_deterministic(task):
    train = task.examples("train", 500)
    test = task.examples("test", 200)
    assert {e["question"] for e in train}.isdisjoint({e["question"] for e in test})
    assert task.examples("test", 200) == test
    assert all(in_split(e["question"], "test") for e in test)


def test_arithmetic_reference_is_the_result():
    for ex in ArithmeticTask().examples("train", 50):
        a, b = ex["a"], ex["b"]
        assert int(ex["answer"]) == (a + b if ex["op"] == "+" else a * b)


def test_countdown_is_solvable_by_construction():
    from r1lab.rewards.countdown import parse_countdown

    for ex in CountdownTask().examples("train", 100):
        expr = ex["answer"]
        # The reference uses exactly the given numbers and reaches the target.
        nums = [int(t) for t in expr.replace("(", " ").replace(")", " ").split() if t.isdigit()]
        assert sorted(nums) == sorted(ex["numbers"])
        assert parse_countdown(expr) == ex["target"]
        assert 1 <= ex["target"] <= 150


def test_template_is_verbatim():
    text = render_prompt("Compute 2 + 2")
    assert text.endswith("User: Compute 2 + 2. Assistant:")
    assert text == R1_ZERO_TEMPLATE.format(prompt="Compute 2 + 2")
    assert render_prompt("q", "prefill").endswith("Assistant: <think>")
    with pytest.raises(ValueError, match="chat template"):
        render_prompt("q", "chat", None)


def test_make_task_unknown_name_suggests():
    from r1lab.config import ConfigError

    with pytest.raises(ConfigError, match="countdown"):
        make_task(TaskConfig(name="countdwn"))


def test_sample_is_seeded():
    t = ArithmeticTask()
    assert t.sample(random.Random(1), "train") == t.sample(random.Random(1), "train")
