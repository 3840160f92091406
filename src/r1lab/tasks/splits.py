"""Disjoint train/test splits for generated tasks, decided by a stable hash of the question.

Hashing the question (not drawing a random index) keeps the splits disjoint whatever the seed,
the sample size or the generator's order, and lets the micro-world corpus leave out every test
question without knowing which ones a run will draw.
"""

from __future__ import annotations

import hashlib


def question_bucket(question: str) -> float:
    """A stable number in [0, 1) for a question (first 8 bytes of its SHA-1)."""
    digest = hashlib.sha1(question.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_split(question: str, split: str, test_fraction: float = 0.1) -> bool:
    """Whether a question belongs to `split` ("train" or "test")."""
    if split not in ("train", "test"):
        raise ValueError(f"unknown split '{split}'; valid: train, test")
    is_test = question_bucket(question) < test_fraction
    return is_test if split == "test" else not is_test
