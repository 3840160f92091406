import random
import re

import pytest

from r1lab.tasks import ArithmeticTask, CountdownTask, TaskConfig, make_task, render_prompt
from r1lab.tasks.base import R1_ZERO_TEMPLATE
from r1lab.tasks.splits import in_split


@pytest.mark.parametrize("task", [ArithmeticTask(), CountdownTask()], ids=["arith", "countdown"])
def test_splits_are_disjoint_and_deterministic(task):
    train = task.examples("train", 500)
    test = task.examples("test", 200)
    # Split by the problem (its English wording), so no test problem is trained in any language.
    assert {e["split_key"] for e in train}.isdisjoint({e["split_key"] for e in test})
    assert {e["question"] for e in train}.isdisjoint({e["question"] for e in test})
    assert task.examples("test", 200) == test
    assert all(in_split(e["split_key"], "test") for e in test)
    assert not any(in_split(e["split_key"], "test") for e in train)


@pytest.mark.parametrize(
    "task", [ArithmeticTask(zh_fraction=0.2), CountdownTask(zh_fraction=0.2)], ids=["arith", "cd"]
)
def test_a_share_of_questions_is_in_chinese(task):
    examples = task.examples("train", 1000)
    zh = [e for e in examples if e["language"] == "zh"]
    assert 0.15 < len(zh) / len(examples) < 0.25
    assert all(e["language"] == "en" for e in examples if e not in zh)
    assert all(e["question"].isascii() for e in examples if e["language"] == "en")
    assert all(not e["question"].isascii() for e in zh)
    # The Chinese question asks the same problem: its numbers are the English wording's.
    digits = lambda text: [int(t) for t in re.findall(r"\d+", text)]  # noqa: E731
    assert all(digits(e["question"]) == digits(e["split_key"]) for e in examples)
    assert type(task)(zh_fraction=0.0).examples("train", 200)[0]["language"] == "en"
    assert all(e["language"] == "zh" for e in type(task)(zh_fraction=1.0).examples("test", 50))


def test_arithmetic_reference_is_the_result():
    ops = set()
    for ex in ArithmeticTask(ops=("+", "*", "/")).examples("train", 300):
        a, b, op = ex["a"], ex["b"], ex["op"]
        ops.add(op)
        if op == "/":
            assert a % b == 0 and 10 <= a // b <= 99 and 2 <= b <= 9
            assert int(ex["answer"]) == a // b
        else:
            assert int(ex["answer"]) == (a + b if op == "+" else a * b)
    assert ops == {"+", "*", "/"}


def test_countdown_counts_the_candidates_a_completion_tries():
    task = CountdownTask()
    trace = (
        "<think> Try 4 + 12 - 3: 4 + 12 = 16, 16 - 3 = 13. 13 is not 11. "
        "试 (12 - 4) * 3：12 - 4 = 8。 Try again later. Try 12 - 4 + 3: 12 - 4 = 8, 8 + 3 = 11. "
        "11 is 11. Yes! </think> <answer> Try 1 + 2 </answer>"
    )
    assert task.trace_stats(trace) == {"candidates": 3.0}  # not "Try again", not the answer
    assert task.trace_stats("<think> </think> <answer> 4 + 12 - 3 </answer>") == {"candidates": 0.0}


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


def test_the_r1_template_asks_for_the_readable_format_and_is_r1_zero_s_otherwise():
    from r1lab.tasks import R1_TEMPLATE

    text = render_prompt("Compute 2 + 2", "r1")
    assert text == R1_TEMPLATE.format(prompt="Compute 2 + 2")
    assert "</think> summary here <answer>" in text
    head, tail = R1_ZERO_TEMPLATE.split("{prompt}")
    assert text.endswith("User: Compute 2 + 2. Assistant:") and tail == ". Assistant:"
    assert text.startswith(head.split(" The assistant first")[0])


@pytest.mark.parametrize("name", ["arithmetic", "countdown", "general"])
def test_format_reward_swaps_the_task_s_format_reward_and_keeps_its_weight(name):
    own = make_task(TaskConfig(name=name)).rewards
    spec = make_task(TaskConfig(name=name, format_reward="format_readable")).rewards
    assert own.format == "format" and spec.format == "format_readable"
    assert spec.weights == {
        ("format_readable" if k == "format" else k): w for k, w in own.weights.items()
    }
    assert spec.accuracy == own.accuracy
    assert make_task(TaskConfig(name=name, format_reward="format")).rewards == own


def test_with_format_drops_the_old_format_reward_s_params():
    from r1lab.tasks.base import RewardSpec

    spec = RewardSpec(
        {"format": 0.5, "math_accuracy": 1.0},
        params={"format": {"require_content": False}, "math_accuracy": {"timeout": 2}},
        accuracy="math_accuracy",
    )
    swapped = spec.with_format("format_readable")
    assert swapped.weights == {"format_readable": 0.5, "math_accuracy": 1.0}
    assert swapped.params == {"math_accuracy": {"timeout": 2}}
    assert swapped.format == "format_readable" and spec.format == "format"  # a copy


def test_an_unknown_format_reward_is_refused_naming_the_nearest():
    from r1lab.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="'format_reward'.*did you mean 'format_readable'"):
        load_config(TaskConfig, None, ["format_reward=format_readble"])


def test_make_task_unknown_name_suggests():
    from r1lab.config import ConfigError

    with pytest.raises(ConfigError, match="countdown"):
        make_task(TaskConfig(name="countdwn"))


def test_sample_is_seeded():
    t = ArithmeticTask()
    assert t.sample(random.Random(1), "train") == t.sample(random.Random(1), "train")


def test_by_default_the_tasks_are_v1s_english_addition_and_multiplication_exactly():
    # The shipped base model was made for these: the same examples in the same order.
    arith = ArithmeticTask().examples("test", 200)
    assert {e["op"] for e in arith} == {"+", "*"} and {e["language"] for e in arith} == {"en"}
    assert [e["question"] for e in arith[:3]] == [
        "Compute 585 * 2",
        "Compute 687 * 9",
        "Compute 52 + 658",
    ]
    assert CountdownTask().examples("test", 100)[0]["language"] == "en"
    task = make_task(TaskConfig(name="arithmetic", ops="+*/", zh_fraction=0.5))
    assert task.ops == ("+", "*", "/") and task.zh_fraction == 0.5


@pytest.mark.parametrize("override", ["ops=", "ops=+-", "ops=++", "zh_fraction=2"])
def test_task_ops_and_languages_are_checked(override):
    from r1lab.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=override.split("=")[0]):
        load_config(TaskConfig, None, [override])
