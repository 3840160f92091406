"""Run directories: never lose a run, resume one with the changes that keep its past valid.

A run directory (`out=`) holds config.yaml, metrics.jsonl, samples/ and checkpoints/. The rules:

- A directory that holds anything is never written into unless the command says so: `--resume
  RUN` continues the run in it; `--overwrite` moves its old contents aside to a sibling
  `<out>.old-<time>` (nothing is deleted; remove that copy yourself when you are sure).
- `check_free` runs before anything loads and `claim` only after start-up succeeded (config
  valid, task and model loaded), so a failed start leaves nothing behind.
- Resuming starts from the saved config. A command-line value may change only what has not been
  computed yet: the keys a config class lists in `RESUMABLE` (steps, evaluation, sampling of
  logged completions, checkpoint cadence, display, logging). Any other change (model, task, seed,
  algo, rollout, rewards, ...) is refused, naming the keys, because the saved steps were computed
  under the old values.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from r1lab.config import ConfigError, load_config, parse_overrides, to_dict

T = TypeVar("T")

CONFIG_FILE = "config.yaml"
RUN_FILES = (CONFIG_FILE, "metrics.jsonl", "checkpoints", "samples")
"""What marks a directory as an r1lab run."""

INVOCATION_KEYS = ("resume", "overwrite")
"""Keys that say how a command was started, not what the run is: never saved, never compared."""


def _contents(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.is_dir() else []


def check_free(out: str | Path, overwrite: bool = False) -> Path:
    """Refuse an `out` that holds anything (unless `overwrite`); writes nothing.

    Call it before loading anything, so a refused start costs no time."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"out={out} is a file, not a directory; pick another out=")
    held = _contents(path)
    if held and not overwrite:
        if any(name in held for name in RUN_FILES):
            raise ConfigError(
                f"out={out} already holds a run; continue it with --resume {out}, pick another "
                "out=, or add --overwrite to move the old run aside"
            )
        raise ConfigError(
            f"out={out} is not empty ({', '.join(held[:5])}{', ...' if len(held) > 5 else ''}); "
            "pick another out=, or add --overwrite to move its contents aside"
        )
    return path


def claim(out: str | Path, overwrite: bool = False) -> Path:
    """Create the run directory once start-up has succeeded; with `overwrite`, first move what
    it holds aside to `<out>.old-<time>` (printed), so nothing is ever deleted."""
    path = check_free(out, overwrite)
    if _contents(path):
        aside = move_aside(path)
        print(f"--overwrite: moved the previous contents of {path} to {aside}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def move_aside(path: str | Path) -> Path:
    """Rename a file or directory to `<name>.old-<time>` (`-N` added if that exists too) and
    return the new path: what --overwrite does, so nothing is ever deleted."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.old-{stamp}")
    n = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.old-{stamp}-{n}")
        n += 1
    os.replace(path, aside)
    return aside


def save_run_config(cfg: Any, run_dir: str | Path) -> Path:
    """Write the resolved config as run_dir/config.yaml (atomically), invocation keys cleared."""
    data = {k: v for k, v in to_dict(cfg).items() if k not in INVOCATION_KEYS}
    path = Path(run_dir) / CONFIG_FILE
    tmp = path.with_name(f".{CONFIG_FILE}.tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    tmp.replace(path)
    return path


def saved_config(cls: type[T], run_dir: str | Path) -> T:
    """The config a run was started with (as last extended)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        what = "does not exist" if not Path(run_dir).exists() else "is not an r1lab run"
        raise ConfigError(f"resume: {run_dir} {what} (no {CONFIG_FILE})")
    return load_config(cls, path)


def _flat(cfg: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(_flat(value, f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = value
    return out


def _changes(saved: Any, cfg: Any) -> dict[str, tuple[Any, Any]]:
    old, new = _flat(saved), _flat(cfg)
    return {k: (old[k], new[k]) for k in new if k not in INVOCATION_KEYS and old.get(k) != new[k]}


def _refused(cfg: Any, changes: Mapping[str, tuple[Any, Any]]) -> list[str]:
    allowed = getattr(type(cfg), "RESUMABLE", frozenset())
    return [k for k in changes if k not in allowed]


def _refuse(cfg: Any, run_dir: Any, changes: Mapping[str, tuple[Any, Any]]) -> None:
    refused = _refused(cfg, changes)
    if refused:
        shown = "; ".join(f"{k}: {changes[k][0]!r} -> {changes[k][1]!r}" for k in refused)
        allowed = ", ".join(sorted(getattr(type(cfg), "RESUMABLE", ()))) or "nothing"
        raise ConfigError(
            f"--resume {run_dir}: cannot change {', '.join(refused)} ({shown}): the run's steps so "
            f"far were computed with the saved values. A resumed run may change: {allowed}"
        )


def load_run_config(
    cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()
) -> T:
    """The command line's config: as `load_config`, but with `resume=RUN` (`--resume RUN`) the
    base is the run's saved config, and a change to anything but `RESUMABLE` keys is refused."""
    keys = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    resume = ""
    if "resume" in keys:
        for key, value in parse_overrides(overrides):
            if key == "resume":
                resume = value
    if not resume:
        return load_config(cls, path, overrides)
    saved = saved_config(cls, resume)
    cfg = load_config(cls, path, overrides, base=saved)
    _refuse(cfg, resume, _changes(saved, cfg))
    return cfg


def resume_config(cfg: T) -> T:
    """The config to continue `cfg.resume` with, for code that calls a trainer's `run` directly.

    A config whose non-`RESUMABLE` keys equal the saved ones (what `load_run_config` returns,
    or the saved config with `steps` raised) is used as given. Otherwise it is read as a partial
    config, `ZeroConfig(resume=RUN, steps=200)`: the keys that differ from the class defaults
    are applied to the saved config, and a refused one is named.
    """
    run_dir = getattr(cfg, "resume")  # noqa: B009 - every resumable config has the field
    cls = type(cfg)
    saved = saved_config(cls, run_dir)
    changes = _changes(saved, cfg)
    if not _refused(cfg, changes):
        return cfg
    defaults = _flat(cls())
    given = {k: v for k, v in _flat(cfg).items() if k in changes and v != defaults[k]}
    merged = load_config(cls, None, given, base=saved)
    _refuse(merged, run_dir, _changes(saved, merged))
    return dataclasses.replace(merged, resume=run_dir)  # type: ignore[type-var]


def resume_command(command: str, run_dir: str | Path) -> str:
    """The exact command line that continues a run."""
    return f"r1lab {command} --resume {shlex.quote(str(run_dir))}"
