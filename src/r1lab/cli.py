"""The `r1lab` command: thin entry points over library modules, one per stage.

    r1lab <command> [POSITIONAL] [--config FILE.yaml] [key=value | --key value ...]
    r1lab <command> --help        # every config key with its default and meaning

Each command is a config dataclass and a `run(cfg)` function in a library module; this file only
parses the command line and hands over.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import sys
import textwrap
import typing
from collections.abc import Sequence
from dataclasses import dataclass

from r1lab.config import ConfigError
from r1lab.rewards.composite import RewardError
from r1lab.run.rundir import load_run_config


@dataclass(frozen=True)
class Command:
    module: str
    config: str
    summary: str
    run: str = "run"
    positional: str | None = None  # config field filled by a bare first argument


COMMANDS: dict[str, Command] = {
    "coldstart": Command(
        "r1lab.data.coldstart",
        "ColdStartConfig",
        "cold-start data: long-CoT rows from four sources, filtered, made readable",
    ),
    "demo": Command("r1lab.demo", "DemoConfig", "the main job on the embedded micro-world"),
    "eval": Command("r1lab.evaluate", "EvalConfig", "pass@k, maj@k, format, length, reflection"),
    "plot": Command(
        "r1lab.plotting", "PlotConfig", "redraw a run's curves into one PNG", positional="run_dir"
    ),
    "pretrain": Command(
        "r1lab.microworld.pretrain", "PretrainConfig", "pretrain the micro-world base model"
    ),
    "zero": Command("r1lab.rl.trainer", "ZeroConfig", "R1-Zero: GRPO from a base model"),
    "sft": Command(
        "r1lab.sft.trainer", "SFTConfig", "supervised fine-tuning, loss on completion tokens only"
    ),
    "reject": Command(
        "r1lab.data.reject",
        "RejectConfig",
        "rejection sampling: a checkpoint's good completions as an SFT dataset",
    ),
    "rm": Command(
        "r1lab.rm.trainer", "RMConfig", "a Bradley-Terry reward model on chosen/rejected pairs"
    ),
    "r1": Command(
        "r1lab.pipeline",
        "R1Config",
        "DeepSeek-R1's whole recipe, every stage, one resumable command",
    ),
    "distill": Command(
        "r1lab.distill",
        "DistillConfig",
        "distillation: SFT of a student on a teacher's rejection-sampled completions",
    ),
    "score": Command(
        "r1lab.rewards.score",
        "ScoreConfig",
        "score a JSONL file of completions with the rule-based rewards",
        positional="input",
    ),
}


def _field_docs(cls: type) -> dict[str, str]:
    """Docstrings written under dataclass fields (the cleanrl `Args` convention), the class's own
    over those it inherits (`r1lab demo` documents `r1lab zero`'s keys by inheriting them)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_own_field_docs(klass))
    return docs


def _own_field_docs(cls: type) -> dict[str, str]:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def config_help(cls: type, prefix: str = "", default: object = None) -> list[str]:
    """One line per key: dotted name, default, and the field's docstring. A section's defaults
    are the command's own: a command's config may give a section other defaults than the
    section's class has."""
    lines: list[str] = []
    docs = _field_docs(cls)
    hints = typing.get_type_hints(cls)
    default = cls() if default is None else default
    for f in dataclasses.fields(cls):
        value = getattr(default, f.name)
        if dataclasses.is_dataclass(value):
            lines.append(f"  [{prefix}{f.name}]")
            lines.extend(config_help(type(value), f"{prefix}{f.name}.", value))
        else:
            lines.append(f"  {prefix}{f.name} = {value!r}")
            doc = docs.get(f.name, "")
            if typing.get_origin(hints[f.name]) is typing.Literal:
                choices = ", ".join(map(repr, typing.get_args(hints[f.name])))
                doc = f"{doc} (one of: {choices})".strip()
            lines.extend("      " + ln for ln in textwrap.wrap(doc, 88))
    return lines


def _usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {c.summary}" for name, c in COMMANDS.items())
    return (
        "usage: r1lab <command> [--config FILE] [key=value ...]\n\n"
        f"commands:\n{rows}\n\n"
        "`r1lab <command> --help` lists that command's config keys."
    )


def _quiet_transformers() -> None:
    # r1lab shows its own progress; transformers' per-load and per-save bars only add noise.
    try:
        from transformers.utils import logging

        logging.disable_progress_bar()
    except ImportError:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        import difflib

        near = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f" Did you mean '{near[0]}'?" if near else ""
        print(f"r1lab: unknown command '{name}'.{hint}\n\n{_usage()}", file=sys.stderr)
        return 2
    cmd = COMMANDS[name]
    module = importlib.import_module(cmd.module)
    cls = getattr(module, cmd.config)
    if "-h" in rest or "--help" in rest:
        print(f"r1lab {name}: {cmd.summary}\n")
        if cmd.positional:
            print(f"positional argument: {cmd.positional.upper()} (sets {cmd.positional})\n")
        print("config keys (set with key=value or --key value):")
        print("\n".join(config_help(cls)))
        return 0
    config_path = None
    overrides: list[str] = []
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--config":
            if i + 1 >= len(rest):
                print("r1lab: --config needs a file", file=sys.stderr)
                return 2
            config_path = rest[i + 1]
            i += 2
            continue
        if arg.startswith("--config="):
            config_path = arg.split("=", 1)[1]
        elif i == 0 and cmd.positional and not arg.startswith("--") and "=" not in arg:
            overrides.append(f"{cmd.positional}={arg}")
        else:
            overrides.append(arg)
        i += 1
    _quiet_transformers()
    try:
        cfg = load_run_config(cls, config_path, overrides)  # --resume RUN: that run's config
        result = getattr(module, cmd.run)(cfg)
    except ConfigError as e:
        print(f"r1lab {name}: {e}", file=sys.stderr)
        return 2
    except RewardError as e:
        # A reward that failed on every item of a batch: missing reference data or a bug in the
        # reward, not one bad completion (those score 0 and are counted in reward/errors).
        print(f"r1lab {name}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nr1lab {name}: interrupted", file=sys.stderr)
        return 130
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
