"""Tasks: seeded examples, prompts and the checker that grades them (see `base.py`)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Literal

from r1lab.config import ensure
from r1lab.tasks.arithmetic import ArithmeticTask
from r1lab.tasks.base import (
    R1_TEMPLATE,
    R1_ZERO_TEMPLATE,
    TEMPLATES,
    RewardSpec,
    Task,
    chat_messages,
    encode_prompts,
    render_prompt,
    reward_score,
)
from r1lab.tasks.countdown import CountdownTask

BUILTIN = ("arithmetic", "countdown", "general", "file")

__all__ = [
    "R1_TEMPLATE",
    "R1_ZERO_TEMPLATE",
    "TEMPLATES",
    "ArithmeticTask",
    "CountdownTask",
    "RewardSpec",
    "Task",
    "TaskConfig",
    "chat_messages",
    "encode_prompts",
    "make_task",
    "render_prompt",
    "reward_score",
]


@dataclass
class TaskConfig:
    """Which task to train or evaluate on."""

    name: Literal[BUILTIN] = "arithmetic"  # type: ignore[valid-type]
    """`arithmetic`, `countdown`, `general` (the micro-world's; `general` holds requests with no
    rule to grade them, for evaluation only), or `file` (your data: see task.path)."""
    ops: str = "+*"
    """For `arithmetic`: the operations of its problems, any of `+`, `*` and `/`."""
    zh_fraction: float = 0.0
    """For `arithmetic` and `countdown`: the share of questions asked in Chinese."""
    seed: int = 0
    """Seed of the example generator (generated tasks) or of the train/test split (file tasks)."""
    path: str = ""
    """For `file`: a JSONL/Parquet file, or `hf:NAME` for a Hugging Face dataset (hub access).
    `r1lab eval` may leave it empty and give only test_path."""
    format: Literal["auto", "jsonl", "gsm8k", "math"] = "auto"
    """For `file`: `auto`, `jsonl`, `gsm8k` or `math` (how questions and answers are read)."""
    test_path: str = ""
    """For `file`: a separate test file, evaluated whole; empty holds out a seeded-hash 10% of
    `path` as the test split."""
    question_field: str = ""
    """For `file`: the column holding the question (empty: the format's default)."""
    answer_field: str = ""
    """For `file`: the column holding the reference answer (empty: the format's default)."""
    format_reward: str = ""
    """The reward that grades the output format, in the task's own weights, in the trainer's
    `reward/format_rate` and in `eval/format`: empty = the task's (`format`, R1-Zero's tags);
    `format_readable` for a model trained on the cold-start readable format (DeepSeek-R1's
    stages, template=r1); any registered reward."""

    def validate(self) -> None:
        from r1lab.tasks.files import FORMATS

        ensure(self.format in FORMATS, "format", f"one of {', '.join(FORMATS)}", self.format)
        ok = bool(self.ops) and set(self.ops) <= set("+*/") and len(set(self.ops)) == len(self.ops)
        ensure(ok, "ops", "distinct characters of +, * and /", self.ops)
        ensure(0 <= self.zh_fraction <= 1, "zh_fraction", "in [0, 1]", self.zh_fraction)
        if self.format_reward:
            from r1lab.rewards import list_rewards

            valid = list_rewards()
            near = difflib.get_close_matches(self.format_reward, valid, n=1, cutoff=0.5)
            hint = f"did you mean '{near[0]}'? " if near else ""
            ensure(
                self.format_reward in valid,
                "format_reward",
                f"empty (the task's own) or a registered reward ({hint}valid: {', '.join(valid)})",
                self.format_reward,
            )
        if self.name == "file":
            ok = bool(self.path or self.test_path)
            ensure(ok, "path", "a JSONL/Parquet file or hf:NAME for name=file", self.path)
        else:
            for key in ("path", "test_path", "question_field", "answer_field"):
                value = getattr(self, key)
                ensure(not value, key, f"empty unless name=file (name is {self.name!r})", value)


def make_task(cfg: TaskConfig) -> Any:
    """Build the task a config names, graded for format by `cfg.format_reward` if it names one."""
    task = _make(cfg)
    if cfg.format_reward:
        task.rewards = task.rewards.with_format(cfg.format_reward)
    return task


def _make(cfg: TaskConfig) -> Any:
    if cfg.name == "arithmetic":
        return ArithmeticTask(seed=cfg.seed, ops=tuple(cfg.ops), zh_fraction=cfg.zh_fraction)
    if cfg.name == "countdown":
        return CountdownTask(seed=cfg.seed, zh_fraction=cfg.zh_fraction)
    if cfg.name == "general":
        from r1lab.tasks.general import GeneralTask

        return GeneralTask(seed=cfg.seed)
    if cfg.name == "file":
        from r1lab.config import ConfigError
        from r1lab.tasks.files import load_file_task

        if not cfg.path and not cfg.test_path:
            raise ConfigError("task.name=file needs task.path (a JSONL/Parquet file or hf:NAME)")
        if not cfg.path:  # a test file alone (r1lab eval): all of it is the test split
            return load_file_task(
                cfg.test_path,
                format=cfg.format,
                question_field=cfg.question_field or None,
                answer_field=cfg.answer_field or None,
                test_size=1.0,
                seed=cfg.seed,
            )
        return load_file_task(
            cfg.path,
            format=cfg.format,
            question_field=cfg.question_field or None,
            answer_field=cfg.answer_field or None,
            test_file=cfg.test_path or None,
            seed=cfg.seed,
        )
    from r1lab.config import ConfigError

    near = difflib.get_close_matches(cfg.name, BUILTIN, n=1)
    hint = f" Did you mean '{near[0]}'?" if near else ""
    raise ConfigError(f"unknown task '{cfg.name}'.{hint} Valid: {', '.join(BUILTIN)}")
