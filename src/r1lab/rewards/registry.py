"""The reward registry: every reward is a plain function registered by name, with one signature.

    fn(completion: str, example: Mapping[str, Any], *, **params) -> float | tuple[float, dict]

`completion` is the model's text (the prompt excluded). `example` holds the reference data of the
task (`answer`, `numbers`, `target`, `tests`, ...) and, when the caller knows them, these reserved
per-completion keys:

- `num_tokens` (int): length of the completion in tokens (length rewards need it);
- `max_tokens` (int): the generation limit the completion was sampled with;
- `correct` (bool): correctness already decided by the caller (the cosine length reward uses it
  instead of running the accuracy reward again).

Params are keyword-only with defaults, so a reward is always callable as `fn(completion, example)`
and a config can name any of them. The caller never branches on a reward's name: `get_reward`
returns a function and every function is called the same way.
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from r1lab.config import ConfigError

RewardFn = Callable[..., "float | tuple[float, dict[str, Any]]"]
F = TypeVar("F", bound=Callable[..., Any])

# Keys a caller may add to an example with facts about one completion; documented above.
RESERVED_KEYS = ("num_tokens", "max_tokens", "correct")

_REGISTRY: dict[str, RewardFn] = {}
_PREFLIGHT: dict[str, Callable[..., None]] = {}


def register_reward(name: str, *, preflight: Callable[..., None] | None = None) -> Callable[[F], F]:
    """Register `fn` under `name`; the signature is checked here so a bad reward fails at import.

    `preflight(**params)`, if given, checks once at start-up that the reward can run here with
    those params (the code rewards: the sandbox isolation they require) and raises if not, so a
    run refuses to start instead of scoring every item 0.
    """

    def decorator(fn: F) -> F:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(
                f"reward '{name}' is already registered by {_REGISTRY[name].__module__}"
            )
        _check_signature(name, fn)
        _REGISTRY[name] = fn
        if preflight is not None:
            _PREFLIGHT[name] = preflight
        return fn

    return decorator


def preflight(name: str, params: Mapping[str, Any]) -> None:
    """Run `name`'s start-up check with `params` (the reward's defaults filled in); a failure is
    a ConfigError naming the reward."""
    check = _PREFLIGHT.get(name)
    if check is None:
        return
    try:
        check(**{**reward_params(name), **params})
    except Exception as e:
        raise ConfigError(f"reward '{name}' cannot run here: {e}") from None


def _check_signature(name: str, fn: Callable[..., Any]) -> None:
    params = list(inspect.signature(fn).parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if len(params) < 2 or any(p.kind not in positional for p in params[:2]):
        raise TypeError(f"reward '{name}' must take (completion, example) positionally")
    for p in params[2:]:
        if p.kind is not p.KEYWORD_ONLY or p.default is p.empty:
            raise TypeError(
                f"reward '{name}': parameter '{p.name}' must be keyword-only with a default"
            )


def list_rewards() -> list[str]:
    """Names of all registered rewards, sorted."""
    return sorted(_REGISTRY)


def get_reward(name: str) -> RewardFn:
    """The reward registered as `name`; an unknown name is a ConfigError naming the valid ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        near = difflib.get_close_matches(name, list(_REGISTRY), n=1, cutoff=0.5)
        hint = f" Did you mean '{near[0]}'?" if near else ""
        raise ConfigError(
            f"unknown reward '{name}'.{hint} Valid rewards: {', '.join(list_rewards())}"
        ) from None


def reward_params(name: str) -> dict[str, Any]:
    """The params a reward accepts, with their defaults."""
    sig = inspect.signature(get_reward(name))
    return {p.name: p.default for p in list(sig.parameters.values())[2:]}


def check_params(name: str, params: Mapping[str, Any]) -> None:
    """Raise a ConfigError for a param the reward does not take, naming its nearest valid one."""
    valid = reward_params(name)
    for key in params:
        if key not in valid:
            near = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
            hint = f" Did you mean '{near[0]}'?" if near else ""
            listed = ", ".join(valid) if valid else "(none)"
            raise ConfigError(f"reward '{name}' has no param '{key}'.{hint} Its params: {listed}")


def check_reward_config(
    weights: tuple[str, Mapping[str, Any]], params: tuple[str, Mapping[str, Any]]
) -> None:
    """A config's reward settings, `(key, weights by name)` and `(key, params by name)`: an
    unknown reward or param is a ConfigError that names the config key it came from."""
    for key, named in (weights, params):
        for name in named:
            try:
                get_reward(name)
            except ConfigError as e:
                raise ConfigError(f"'{key}': {e}") from None
    key, named = params
    for name, p in named.items():
        try:
            check_params(name, p)
        except ConfigError as e:
            raise ConfigError(f"'{key}': {e}") from None


def split_result(result: float | tuple[float, Mapping[str, Any]]) -> tuple[float, dict[str, Any]]:
    """A reward's return value as (score, info), whichever form the reward returned.

    The score must be a finite real number (int, float, Fraction, numpy's numbers); anything
    else, bool and NaN included, is a TypeError or ValueError, never silently coerced: a NaN
    poisons its whole group's advantages, and `float("1.0")` or `True` hide a bug.
    """
    info: Mapping[str, Any] = {}
    if isinstance(result, tuple):
        if len(result) != 2 or not isinstance(result[1], Mapping):
            raise TypeError(
                f"returned a {len(result)}-tuple ({', '.join(type(x).__name__ for x in result)});"
                " expected a score or (score, info dict)"
            )
        result, info = result
    # bool is an int, but a reward returning one is a bug (numpy's bool_ is not Real at all).
    if isinstance(result, bool) or not isinstance(result, numbers.Real):
        raise TypeError(f"returned {type(result).__name__}, not a number")
    score = float(result)
    if not math.isfinite(score):
        raise ValueError(f"returned {score}, not a finite number")
    return score, dict(info)
