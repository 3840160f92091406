"""Tasks: seeded examples, prompts and the checker that grades them (see `base.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from r1lab.tasks.arithmetic import ArithmeticTask
from r1lab.tasks.base import R1_ZERO_TEMPLATE, RewardSpec, Task, render_prompt, reward_score
from r1lab.tasks.countdown import CountdownTask

__all__ = [
    "R1_ZERO_TEMPLATE",
    "ArithmeticTask",
    "CountdownTask",
    "RewardSpec",
    "Task",
    "TaskConfig",
    "make_task",
    "render_prompt",
    "reward_score",
]

BUILTIN = ("arithmetic", "countdown", "file")


@dataclass
class TaskConfig:
    """Which task to train or evaluate on."""

    name: str = "arithmetic"
    """`arithmetic`, `countdown` (the micro-world's), or `file` (your data: see task.path)."""
    seed: int = 0
    """Seed of the example generator (generated tasks) or of the train/test split (file tasks)."""
    path: str = ""
    """For `file`: a JSONL/Parquet file, or `hf:NAME` for a Hugging Face dataset (hub access)."""
    format: str = "auto"
    """For `file`: `auto`, `jsonl`, `gsm8k` or `math` (how questions and answers are read)."""
    test_path: str = ""
    """For `file`: a separate test file; empty splits `path` by a seeded hash."""
    question_field: str = ""
    """For `file`: the column holding the question (empty: the format's default)."""
    answer_field: str = ""
    """For `file`: the column holding the reference answer (empty: the format's default)."""


def make_task(cfg: TaskConfig) -> Any:
    """Build the task a config names."""
    if cfg.name == "arithmetic":
        return ArithmeticTask(seed=cfg.seed)
    if cfg.name == "countdown":
        return CountdownTask(seed=cfg.seed)
    if cfg.name == "file":
        from r1lab.config import ConfigError
        from r1lab.tasks.files import load_file_task

        if not cfg.path:
            raise ConfigError("task.name=file needs task.path (a JSONL/Parquet file or hf:NAME)")
        return load_file_task(
            cfg.path,
            format=cfg.format,
            question_field=cfg.question_field or None,
            answer_field=cfg.answer_field or None,
            test_file=cfg.test_path or None,
            seed=cfg.seed,
        )
    import difflib

    from r1lab.config import ConfigError

    near = difflib.get_close_matches(cfg.name, BUILTIN, n=1)
    hint = f" Did you mean '{near[0]}'?" if near else ""
    raise ConfigError(f"unknown task '{cfg.name}'.{hint} Valid: {', '.join(BUILTIN)}")
