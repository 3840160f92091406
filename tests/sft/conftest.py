"""Tiny models built in a temporary directory, with a real tokenizer and chat template.

`tiny_qwen` is a random-init Qwen2 with the micro-world's tokenizer (and its ChatML template);
`tiny_llama` is another architecture whose chat template writes its own BOS token, as Llama 3's
and Gemma's do: `r1lab sft` must run on any local Hugging Face causal LM (issue 12, section 5).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from r1lab.microworld import DEFAULT_BASE

from ._helpers import QA, write_jsonl

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
VOCAB = json.loads((Path(DEFAULT_BASE) / "config.json").read_text())["vocab_size"]
"""The micro-world tokenizer's size: the tiny models embed every id it can produce."""

BOS_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _save(model, out: Path) -> Path:
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        shutil.copy(Path(DEFAULT_BASE) / name, out / name)
    return out


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory) -> Path:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    return _save(Qwen2ForCausalLM(config), tmp_path_factory.mktemp("qwen") / "model")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory, add_bos) -> Path:
    """A Llama whose tokenizer adds a BOS to plain text and whose chat template writes one."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        bos_token_id=0,
        eos_token_id=0,
    )
    out = _save(LlamaForCausalLM(config), tmp_path_factory.mktemp("llama") / "model")
    (out / "chat_template.jinja").write_text(BOS_CHAT_TEMPLATE)
    add_bos(out)  # the micro-world tokenizer adds none; this one does, as Llama's does
    return out


@pytest.fixture(scope="session")
def qwen_tokenizer(tiny_qwen):
    from r1lab.run import load_tokenizer

    return load_tokenizer(tiny_qwen)


@pytest.fixture
def qa_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "qa.jsonl", [{"prompt": q, "completion": a} for q, a in QA])
