"""Rewards that misbehave on purpose, for the pool tests (importable by worker processes)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from r1lab.rewards import register_reward


@register_reward("_test_spin")
def spin(completion: str, example: Mapping[str, Any], *, seconds: float = 1e9) -> float:
    """Burn CPU in pure Python for `seconds` (no signal or sleep to interrupt it)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return 1.0


@register_reward("_test_die")
def die(completion: str, example: Mapping[str, Any]) -> float:
    """Kill the worker, as a segfault or the OOM killer would."""
    os._exit(1)


@register_reward("_test_pid")
def pid(completion: str, example: Mapping[str, Any]) -> float:
    """Which process scored this item."""
    return float(os.getpid())


@register_reward("_test_raise")
def raise_(completion: str, example: Mapping[str, Any]) -> float:
    raise ValueError("reference data is broken")


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for this one")


@register_reward("_test_flaky")
def flaky(completion: str, example: Mapping[str, Any]) -> float:
    """1.0, except on the hostile items: `boom` raises, `nan` and `inf` are not numbers."""
    if "boom" in completion:
        raise ValueError("boom")
    if "unprintable" in completion:
        raise Unprintable()
    if "nan" in completion:
        return float("nan")
    if "inf" in completion:
        return float("-inf")
    return 1.0


@register_reward("_test_junk")
def junk(completion: str, example: Mapping[str, Any]) -> Any:
    """Whatever `example["value"]` holds, returned as the score (a reward with a bug)."""
    if example["value"] == "unpicklable info":
        return 1.0, {"fn": lambda: None}
    return example["value"]
