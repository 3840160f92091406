"""Doubles for the cold-start tests: a tiny HF model on disk, and a micro-world run directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from r1lab.microworld import DEFAULT_BASE

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory) -> Path:
    """A randomly initialised Qwen2 with the micro-world tokenizer and a 512-token context, saved
    as any local HF model is: it loads and samples like a real one, and is never right."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = tmp_path_factory.mktemp("tiny_lm")
    for name in TOKENIZER_FILES:
        if (DEFAULT_BASE / name).is_file():
            shutil.copy(DEFAULT_BASE / name, out / name)
    vocab = json.loads((DEFAULT_BASE / "config.json").read_text())["vocab_size"]
    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=32,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        eos_token_id=0,
        bos_token_id=0,
        pad_token_id=0,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        Qwen2ForCausalLM(config).save_pretrained(out)
    return out
