"""A weighted sum of named rewards, with every part reported.

    reward = CompositeReward({"format": 0.5, "math_accuracy": 1.0})
    result = reward(completion, example)
    result.total   # 0.5 * format + 1.0 * math_accuracy
    result.parts   # {"format": 1.0, "math_accuracy": 0.0}, logged as reward/<name>

A CompositeReward holds only names, weights and params, so it pickles small and rebuilds itself in
another process: unpickling imports the modules that define its rewards, which registers them
(a reward defined in `__main__` can therefore only run in-process).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from r1lab.config import ConfigError
from r1lab.rewards.registry import (
    check_params,
    get_reward,
    list_rewards,
    preflight,
    split_result,
)


@dataclass(frozen=True)
class RewardResult:
    """The reward of one completion: the weighted total and every part.

    `info` holds `timeout` (bool: a part ran past the pool's time limit and scored 0),
    `timed_out` and `crashed` (names of parts that scored 0 because their worker overran or
    died), `errors` (part name -> "ExceptionType: message" for a part that raised or returned
    something other than a finite number, and scored 0), `details` (part name -> the info dict
    that reward returned, if any) and `seconds` (part name -> wall time it took; for a
    timed-out part, the time until it was killed).
    """

    total: float
    parts: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)


class RewardError(RuntimeError):
    """A reward failed where no single completion can be blamed: a bug or missing reference data.

    Raised by `CompositeReward.__call__` for any failed part, and by `RewardPool.score` only for
    a reward that failed on every item of a batch (see r1lab.rewards.pool).
    """

    def __init__(self, name: str, message: str, index: int | None = None):
        where = f" on item {index}" if index is not None else ""
        super().__init__(f"reward '{name}' failed{where}: {message}")
        self.name = name
        self.index = index
        self.message = message


class CompositeReward:
    """`total = sum(weights[name] * reward_name(completion, example, **params[name]))`."""

    def __init__(
        self,
        weights: Mapping[str, float],
        params: Mapping[str, Mapping[str, Any]] | None = None,
    ):
        if not weights:
            raise ConfigError(
                f"a composite reward needs at least one reward; valid: {', '.join(list_rewards())}"
            )
        self.weights = {str(k): float(v) for k, v in weights.items()}
        self.params = {str(k): dict(v) for k, v in (params or {}).items()}
        modules = set()
        for name in self.weights:
            modules.add(get_reward(name).__module__)  # unknown name: ConfigError
        for name, p in self.params.items():
            if name not in self.weights:
                raise ConfigError(
                    f"params given for reward '{name}', which has no weight; "
                    f"weighted rewards: {', '.join(self.weights)}"
                )
            check_params(name, p)
        self.modules = tuple(sorted(modules))

    @property
    def names(self) -> list[str]:
        return list(self.weights)

    def preflight(self) -> None:
        """Check once, before a run loads anything, that every part can run here (ConfigError)."""
        for name in self.weights:
            preflight(name, self.params.get(name, {}))

    def part(
        self, name: str, completion: str, example: Mapping[str, Any]
    ) -> tuple[float, dict, str | None]:
        """Score one part under the guard: (score, info, error).

        A reward that raises, or returns anything but a finite number, scores 0 with `error`
        saying why ("ExceptionType: message"); what that means for the batch is the caller's
        rule (RewardPool.score). Only Exception is caught: Ctrl-C still stops the run.
        """
        try:
            fn = get_reward(name)
            score, info = split_result(fn(completion, example, **self.params.get(name, {})))
        except Exception as e:  # noqa: BLE001 - the guard: any failure is this item's, for now
            return 0.0, {}, _describe(e)
        return score, info, None

    def result(
        self,
        parts: Mapping[str, float],
        details: Mapping[str, dict] | None = None,
        timed_out: Iterable[str] = (),
        crashed: Iterable[str] = (),
        seconds: Mapping[str, float] | None = None,
        errors: Mapping[str, str] | None = None,
    ) -> RewardResult:
        """Assemble a RewardResult from part scores (in this composite's order)."""
        ordered = {name: float(parts[name]) for name in self.weights}
        total = sum(self.weights[name] * score for name, score in ordered.items())
        timed_out, crashed = list(timed_out), list(crashed)
        info = {
            "timeout": bool(timed_out),
            "timed_out": timed_out,
            "crashed": crashed,
            "errors": dict(errors or {}),
            "details": dict(details or {}),
            "seconds": dict(seconds or {}),
        }
        return RewardResult(total, ordered, info)

    def score(self, completion: str, example: Mapping[str, Any]) -> RewardResult:
        """Score one completion under the guard: a failed part scores 0, named in info["errors"]."""
        parts: dict[str, float] = {}
        details: dict[str, dict] = {}
        seconds: dict[str, float] = {}
        errors: dict[str, str] = {}
        for name in self.weights:
            start = time.perf_counter()
            parts[name], info, error = self.part(name, completion, example)
            seconds[name] = time.perf_counter() - start
            if info:
                details[name] = info
            if error is not None:
                errors[name] = error
        return self.result(parts, details, seconds=seconds, errors=errors)

    def __call__(self, completion: str, example: Mapping[str, Any]) -> RewardResult:
        """Score one completion; a failed part raises RewardError (score batches with RewardPool,
        where one bad item scores 0 instead of stopping the batch)."""
        result = self.score(completion, example)
        if result.info["errors"]:
            name, error = next(iter(result.info["errors"].items()))  # the first failed part
            raise RewardError(name, error)
        return result

    def __getstate__(self) -> dict[str, Any]:
        return {"weights": self.weights, "params": self.params, "modules": self.modules}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Importing the defining modules registers their rewards in this process.
        for module in state["modules"]:
            if module != "__main__":
                importlib.import_module(module)
        self.weights = state["weights"]
        self.params = state["params"]
        self.modules = state["modules"]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CompositeReward) and self.__getstate__() == other.__getstate__()

    def __hash__(self) -> int:
        return hash(tuple(self.weights.items()))

    def __repr__(self) -> str:
        params = f", params={self.params}" if self.params else ""
        return f"CompositeReward({self.weights}{params})"


def _describe(e: BaseException, limit: int = 300) -> str:
    """The exception as "Type: message", cut to `limit` characters (it may quote the input)."""
    try:
        message = str(e)
    except Exception:  # noqa: BLE001 - an exception whose __str__ raises must not escape the guard
        message = "(its message could not be printed)"
    text = f"{type(e).__name__}: {message}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
