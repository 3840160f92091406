"""Data and configs for the SFT tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from r1lab.sft.config import SFTConfig


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


QA = [
    ("What is 12 + 7?", " <think> 2 + 7 = 9, 1 + 0 = 1 </think> <answer> 19 </answer>"),
    ("What is 30 * 2?", " <think> 3 * 2 = 6 </think> <answer> 60 </answer>"),
    ("Compute 5 + 5", " <think> ten </think> <answer> 10 </answer>"),
    ("Name two fruits.", " apple, pear"),
    ("Say hello.", " Hello!"),
    ("What is 100 + 1?", " <think> 0 + 1 = 1, then 10 </think> <answer> 101 </answer>"),
    ("Compute 8 * 8", " <think> eight eights are 64 </think> <answer> 64 </answer>"),
    ("Reverse: the cat sat", " sat cat the"),
]
"""Prompt/completion rows of varied lengths (completions start with a space, as a base model
continues the R1-Zero template's `Assistant:`)."""


def sft_config(model: Path, data: Path, out: Path, **kw: Any) -> SFTConfig:
    """A small quiet SFT run of `model` on `data`, held out on the same file, one thread;
    `kw` sets the rest (each test module passes its own schedule and evaluation)."""
    fields: dict[str, Any] = dict(
        model=str(model),
        data=str(data),
        eval_data=str(data),
        batch_size=3,
        lr=1e-2,
        threads=1,
        progress=False,
        out=str(out),
    )
    fields.update(kw)
    return SFTConfig(**fields)
