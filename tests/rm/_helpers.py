"""Pair data for the reward-model tests."""

from __future__ import annotations

import json
from pathlib import Path


def write(path: Path, rows) -> Path:
    """`rows` as JSONL at `path`."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ROWS = [
    {"prompt": "Say hello.", "chosen": " Hello! How can I help?", "rejected": " Go away."},
    {"prompt": "Name two fruits.", "chosen": " apple, pear", "rejected": " apple"},
    {"prompt": "What is 2 + 2?", "chosen": " 4", "rejected": " 5"},
]
"""Preference pairs of different lengths, each with a better and a worse response."""
