"""Typed configuration: one dataclass per command, YAML overrides, dotted CLI overrides.

Defaults live in the dataclasses, nowhere else. A YAML file under `configs/` holds only the
values it changes; the command line changes more with dotted keys, in either spelling:

    r1lab zero --config configs/zero-countdown.yaml rl.beta=0.001 --rollout.group_size 8

An unknown key is an error that names the key, its nearest valid neighbours and the valid keys.

Values are checked where they are declared, before anything loads or is written: an enumerated
setting is a `Literal` (a bad value names the allowed ones), and a config class may define
`validate()`, which `load_config` calls on every section, innermost first, once all overrides
are applied (not in `__post_init__`: a value set early may only be valid together with one set
later). A `validate()` raises through `ensure(ok, key, allowed, value)`; the loader puts the
section's dotted prefix on the key, so every error is one line naming the full key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key a user must fix; the message says where and how."""


class FieldError(ConfigError):
    """A value a section's `validate()` refuses; the loader adds the section's dotted prefix."""

    def __init__(self, key: str, allowed: str, value: Any) -> None:
        self.key, self.allowed, self.value = key, allowed, value
        super().__init__(f"'{key}' must be {allowed}, got {value!r}")

    def prefixed(self, prefix: str) -> FieldError:
        return FieldError(prefix + self.key, self.allowed, self.value)


def ensure(ok: bool, key: str, allowed: str, value: Any) -> None:
    """In a `validate()`: refuse `value` of field `key` unless `ok`; `allowed` says what is."""
    if not ok:
        raise FieldError(key, allowed, value)


def ensure_sampling(cfg: Any) -> None:
    """In a `validate()` of a config that samples for evaluation or data (not for training, whose
    temperature must be > 0): its `temperature` (0 = greedy), `top_p`, `max_new_tokens`, `stop`."""
    ensure(
        math.isfinite(cfg.temperature) and cfg.temperature >= 0,
        "temperature",
        ">= 0 (0 = greedy)",
        cfg.temperature,
    )
    ensure(math.isfinite(cfg.top_p) and 0 < cfg.top_p <= 1, "top_p", "in (0, 1]", cfg.top_p)
    ensure(cfg.max_new_tokens >= 1, "max_new_tokens", ">= 1", cfg.max_new_tokens)
    ensure(all(cfg.stop), "stop", "non-empty strings", cfg.stop)


def validate(cfg: Any, prefix: str = "") -> Any:
    """Run `validate()` of every section of `cfg` (nested ones first); return `cfg`.

    The loader calls this; code that builds a config in Python calls it before using one.
    """
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            validate(value, f"{prefix}{f.name}.")
    check = getattr(cfg, "validate", None)
    if callable(check):
        try:
            check()
        except FieldError as e:
            raise e.prefixed(prefix) from None
    return cfg


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def valid_keys(cls: type, prefix: str = "") -> list[str]:
    """All dotted keys a config class accepts, nested dataclasses expanded."""
    keys: list[str] = []
    for name, tp in _field_types(cls).items():
        if dataclasses.is_dataclass(tp):
            keys.extend(valid_keys(tp, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _unknown_key(cls: type, key: str, where: str) -> ConfigError:
    keys = valid_keys(cls)
    near = difflib.get_close_matches(key, keys, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(near)}?" if near else ""
    return ConfigError(f"{where}: unknown config key '{key}'.{hint} Valid keys: {', '.join(keys)}")


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Convert a YAML/CLI value to the field's annotated type, or raise a ConfigError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: '{key}' cannot be {value!r}")
    if tp is Any:
        return value
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(
                f"{where}: '{key}' must be one of {', '.join(map(repr, args))}, got {value!r}"
            )
        return value
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, (int, float)):
            value = [value]  # ks=1 on the command line is the list [1]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: '{key}' must be a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, key, where) for v in value]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: '{key}' must be a mapping, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, vt, f"{key}.{k}", where) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where}: '{key}' must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str, float)):
            raise ConfigError(f"{where}: '{key}' must be an integer, got {value!r}")
        try:
            f = float(value)
        except ValueError:
            raise ConfigError(f"{where}: '{key}' must be an integer, got {value!r}") from None
        if not math.isfinite(f) or f != int(f):
            raise ConfigError(f"{where}: '{key}' must be an integer, got {value!r}")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: '{key}' must be a number, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: '{key}' must be a number, got {value!r}") from None
        if not math.isfinite(f):
            raise ConfigError(f"{where}: '{key}' must be a finite number, got {value!r}")
        return f
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: '{key}' must be a string, got {value!r}")
        return "" if value is None else str(value)
    return value


def _set(
    obj: Any,
    cls: type,
    dotted: str,
    value: Any,
    where: str,
    prefix: str = "",
    lines: Mapping[str, int] | None = None,
) -> Any:
    """Return a copy of `obj` with the dotted key set; nested dataclasses are replaced, not mutated.

    A dict value for a section sets the section's keys; a dict value for a dict-typed field
    (reward weights, say) is the field's value, and a dotted key into one sets one item of it
    (`rewards.language_consistency=0.5` keeps the other weights).
    """
    head, _, rest = dotted.partition(".")
    tp = _field_types(type(obj)).get(head)
    if lines is not None and head in lines:
        where = f"{where}, line {lines[head]}"
    if rest and tp is not None and _is_mapping(tp):
        item = _set_item(getattr(obj, head), tp, rest, value, prefix + head, where)
        return dataclasses.replace(obj, **{head: item})
    if tp is None or (rest and not dataclasses.is_dataclass(tp)):
        raise _unknown_key(cls, prefix + dotted, where)
    if rest:
        sub = _set(getattr(obj, head), cls, rest, value, where, f"{prefix}{head}.")
        return dataclasses.replace(obj, **{head: sub})
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(
                f"{where}: '{prefix}{head}' is a section; set its keys, e.g. {head}.<key>"
            )
        sub = getattr(obj, head)
        for k, v in value.items():
            sub = _set(sub, cls, str(k), v, where.split(", line")[0], f"{prefix}{head}.", lines)
        return dataclasses.replace(obj, **{head: sub})
    return dataclasses.replace(obj, **{head: _coerce(value, tp, prefix + dotted, where)})


def _is_mapping(tp: Any) -> bool:
    return tp is dict or typing.get_origin(tp) in (dict, Mapping)


def _set_item(
    mapping: Mapping[str, Any], tp: Any, dotted: str, value: Any, key: str, where: str
) -> dict[str, Any]:
    """A copy of `mapping`, the value of a dict field typed `tp` named `key`, with the item at
    `dotted` set (nested dicts are copied on the way down, never mutated)."""
    head, _, rest = dotted.partition(".")
    args = typing.get_args(tp)
    vt = args[1] if len(args) == 2 else Any
    key = f"{key}.{head}"
    out = dict(mapping)
    if not rest:
        out[head] = _coerce(value, vt, key, where)
        return out
    inner = out.get(head, {})
    if not (vt is Any or _is_mapping(vt)) or not isinstance(inner, Mapping):
        raise ConfigError(f"{where}: '{key}' is not a mapping, so '{key}.{rest}' cannot be set")
    out[head] = _set_item(inner, dict if vt is Any else vt, rest, value, key, where)
    return out


_KEY_RE = re.compile(r"^[A-Za-z_][\w.-]*=")


def _is_key(arg: str) -> bool:
    # `--overwrite steps=2`: a flag followed by key=value or --key is a boolean flag.
    return arg.startswith("--") or bool(_KEY_RE.match(arg))


def parse_overrides(args: Sequence[str]) -> list[tuple[str, str]]:
    """Parse `a.b=1` and `--a.b 1` / `--a.b=1` into (key, raw value) pairs, in order; a
    `--flag` followed by another key (or nothing) is `flag=true`."""
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            body = arg[2:]
            if "=" in body:
                key, value = body.split("=", 1)
            elif i + 1 < len(args) and not _is_key(args[i + 1]):
                key, value = body, args[i + 1]
                i += 1
            else:
                key, value = body, "true"
        elif "=" in arg:
            key, value = arg.split("=", 1)
        else:
            raise ConfigError(f"command line: cannot read '{arg}'; write key=value or --key value")
        pairs.append((key.replace("-", "_"), value))
        i += 1
    return pairs


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    base: T | None = None,
) -> T:
    """Build a config: dataclass defaults (or `base`, a run's saved config when resuming), then
    the named preset's keys, then the YAML file, then overrides (later wins); then every
    section's `validate()`.

    A config class with a `PRESETS` mapping (name -> {dotted key: value}) and a `preset` field
    takes its preset from the overrides or the file; the preset's keys are applied first, so
    any key given explicitly wins over it.
    """
    cfg: Any = cls() if base is None else base
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f", line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{p}{line}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: a config file must be a mapping of keys to values")
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        items = [(k, _cli_value(v)) for k, v in parse_overrides(overrides)]
    presets = getattr(cls, "PRESETS", None)
    if presets is not None:
        named = [v for k, v in items if k == "preset"] or [data.get("preset")]
        name = named[-1]
        if name is not None:
            if not isinstance(name, str) or name not in presets:
                valid = ", ".join(presets)
                raise ConfigError(f"preset: unknown preset {name!r}; valid: {valid}")
            for key, value in presets[name].items():
                cfg = _set(cfg, cls, key, value, f"preset {name}")
    if path is not None:
        lines = _key_lines(Path(path))
        for key, value in data.items():
            cfg = _set(cfg, cls, str(key), value, str(path), lines=lines)
    for key, value in items:
        cfg = _set(cfg, cls, key, value, "command line")
    return validate(cfg)


def _cli_value(text: str) -> Any:
    """A command-line value: read as YAML (`3`, `true`, `[1, 2]`), or kept as the string it is
    when it is not YAML (`*/` would be an alias)."""
    if text == "":
        return ""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _key_lines(path: Path) -> dict[str, int]:
    # First line on which each key name appears, for error messages; good enough for the
    # flat-ish override files under configs/.
    lines: dict[str, int] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if ":" in stripped and not stripped.startswith("#"):
            lines.setdefault(stripped.split(":", 1)[0].strip(), n)
    return lines


def to_dict(cfg: Any) -> dict[str, Any]:
    """The resolved config as plain data, for run directories and logs."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
