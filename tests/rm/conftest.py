"""Fixtures of the reward-model tests."""

from __future__ import annotations

import pytest

from r1lab.run import load_tokenizer


@pytest.fixture(scope="module")
def tok(tiny_model):
    """The tiny model's tokenizer."""
    return load_tokenizer(tiny_model)
