"""Prompts and small helpers of the rollout tests."""

from __future__ import annotations

# Different lengths so the batch is left-padded (the char tokenizer adds a BOS to each).
PROMPTS = ["2+3=", "The answer to 17*3 is", "<think>", "Count: 1, 2, 3, 4, 5, 6,"]


def flat(groups):
    """Every group's completions, in order, as one list."""
    return [c for g in groups for c in g]
