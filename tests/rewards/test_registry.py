"""The registry and CompositeReward: names, one signature, weighted sums, pickling."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

from r1lab.config import ConfigError
from r1lab.rewards import CompositeReward, RewardError, get_reward, list_rewards, register_reward
from r1lab.rewards.registry import reward_params

BUILTIN = {
    "format",
    "format_prefill",
    "format_readable",
    "format_cold_start",
    "math_accuracy",
    "countdown",
    "code",
    "code_binary",
    "language_consistency",
    "overlong_penalty",
    "cosine_length",
}


def test_builtins_are_registered():
    assert set(list_rewards()) >= BUILTIN
    for name in BUILTIN:
        assert callable(get_reward(name))


def test_unknown_name_lists_valid_ones_with_nearest():
    with pytest.raises(ConfigError, match=r"unknown reward 'fromat'. Did you mean 'format'\?") as e:
        get_reward("fromat")
    assert "math_accuracy" in str(e.value)


def test_one_signature_is_enforced():
    with pytest.raises(TypeError, match="positionally"):
        register_reward("_bad1")(lambda completion: 0.0)
    with pytest.raises(TypeError, match="keyword-only"):
        register_reward("_bad2")(lambda completion, example, scale=1.0: 0.0)

    def no_default(completion, example, *, scale):
        return 0.0

    with pytest.raises(TypeError, match="keyword-only with a default"):
        register_reward("_bad3")(no_default)
    with pytest.raises(ValueError, match="already registered"):
        register_reward("format")(lambda completion, example: 0.0)


def test_reward_params():
    assert reward_params("countdown")["allow_equals"] is True
    assert reward_params("format_cold_start")["token"] == "|special_token|"


GOOD = "<think>2 + 3</think> <answer>5</answer>"


def test_weighted_total_and_every_part_reported():
    reward = CompositeReward({"math_accuracy": 2.0, "format": 0.5, "language_consistency": 0.0})
    result = reward(GOOD, {"answer": "5"})
    assert list(result.parts) == ["math_accuracy", "format", "language_consistency"]
    assert result.parts["language_consistency"] == 0.0  # "2 + 3" has no words; weight 0 anyway
    assert result.total == pytest.approx(2.0 * 1.0 + 0.5 * 1.0)
    assert (
        result.info["timeout"] is False and result.info["details"]["math_accuracy"]["pred"] == "5"
    )
    wrong = reward("<answer>6</answer>", {"answer": "5"})
    assert wrong.total == 0.0 and wrong.parts["math_accuracy"] == 0.0


def test_params_reach_the_reward_and_are_checked():
    cold = CompositeReward({"format_cold_start": 1.0}, params={"format_cold_start": {"token": "#"}})
    assert cold("#a#b", {}).total == 1.0
    with pytest.raises(ConfigError, match="has no param 'tokn'. Did you mean 'token'"):
        CompositeReward({"format_cold_start": 1.0}, params={"format_cold_start": {"tokn": "#"}})
    with pytest.raises(ConfigError, match="no weight"):
        CompositeReward({"format": 1.0}, params={"countdown": {"allow_equals": False}})
    with pytest.raises(ConfigError, match="unknown reward"):
        CompositeReward({"nope": 1.0})
    with pytest.raises(ConfigError, match="at least one"):
        CompositeReward({})


def test_a_raising_reward_becomes_a_reward_error():
    with pytest.raises(RewardError, match="'countdown' failed: KeyError"):
        CompositeReward({"countdown": 1.0})("<answer>1</answer>", {})


def test_pickles_to_names_and_rebuilds_in_a_fresh_process():
    reward = CompositeReward(
        {"format": 0.5, "countdown": 1.0}, params={"countdown": {"allow_equals": False}}
    )
    blob = pickle.dumps(reward)
    assert b"<lambda>" not in blob and len(blob) < 600
    assert pickle.loads(blob) == reward
    code = (
        "import pickle, sys\n"
        "r = pickle.loads(sys.stdin.buffer.read())\n"
        "print(r('<think>a</think><answer>2 + 3 = 5</answer>', {'numbers': [2, 3], 'target': 5}).total)"
    )
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, timeout=60)
    assert out.stdout.decode().strip() == "0.5", (
        out.stderr.decode()
    )  # `= 5` not allowed: format only


def test_preflight_runs_once_with_the_defaults_and_a_failure_names_the_reward(monkeypatch):
    from r1lab.rewards import registry

    seen = []

    def check(*, level: int, name: str) -> None:
        seen.append((level, name))
        if level > 1:
            raise RuntimeError(f"level {level} is not available here")

    def picky(completion, example, *, level: int = 1, name: str = "x"):
        return 1.0

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_PREFLIGHT", dict(registry._PREFLIGHT))
    register_reward("picky_test", preflight=check)(picky)
    CompositeReward({"picky_test": 1.0}, {"picky_test": {"name": "y"}}).preflight()
    assert seen == [(1, "y")]  # the reward's default for what the config leaves out
    with pytest.raises(ConfigError, match="reward 'picky_test' cannot run here: level 2"):
        CompositeReward({"picky_test": 0.0}, {"picky_test": {"level": 2}}).preflight()
    CompositeReward({"format": 1.0}).preflight()  # no preflight registered: nothing to check
