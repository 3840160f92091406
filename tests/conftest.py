"""Models shared by the tests: the shipped base model, and a tiny micro-world model pretrained
for a few steps by `r1lab pretrain` itself.

The tiny one has the shipped model's tokenizer recipe and architecture at a fraction of the
size, so the trainers' tests run the real pipeline (tokenizer, prompts, rewards, checkpoints) in
seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from r1lab.microworld.pretrain import ModelShape, PretrainConfig
from r1lab.microworld.pretrain import run as pretrain


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "base"
    before = torch.get_num_threads()
    pretrain(
        PretrainConfig(
            out=str(out),
            num_docs=400,
            vocab_size=300,
            model=ModelShape(
                hidden_size=32,
                num_layers=1,
                num_heads=2,
                num_kv_heads=1,
                intermediate_size=64,
                max_positions=512,
            ),
            block_size=64,
            batch_size=8,
            steps=30,
            warmup=5,
            threads=1,
        )
    )
    torch.set_num_threads(before)
    return out


@pytest.fixture(scope="session")
def base_model() -> Path:
    """The shipped base model: it follows the format and is right sometimes, so rewards vary
    within groups and every step really moves the policy (a tiny model's rewards are all 0)."""
    from r1lab.microworld import DEFAULT_BASE

    return Path(os.environ.get("R1LAB_TEST_BASE", DEFAULT_BASE))


@pytest.fixture(scope="session")
def tiny_rm(tiny_model, tmp_path_factory) -> Path:
    """A reward model on the tiny model, trained for one step on micro-world helpfulness pairs."""
    from r1lab.rm import trainer as rm
    from r1lab.rm.config import RMConfig

    out = tmp_path_factory.mktemp("rm") / "helpful"
    cfg = RMConfig(
        model=str(tiny_model),
        data="microworld:helpful",
        pairs=16,
        batch_size=16,
        eval_every=0,
        threads=1,
        progress=False,
        out=str(out),
    )
    rm.run(cfg)
    return out


def _add_bos(model_dir: Path) -> None:
    """Make the tokenizer saved in `model_dir` start every text with <|endoftext|> (id 0), as
    Llama's adds its BOS; the micro-world tokenizer adds nothing of its own."""
    path = model_dir / "tokenizer.json"
    spec = json.loads(path.read_text())
    spec["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}]
        + [{"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {
            "<|endoftext|>": {"id": "<|endoftext|>", "ids": [0], "tokens": ["<|endoftext|>"]}
        },
    }
    path.write_text(json.dumps(spec))


@pytest.fixture(scope="session")
def add_bos():
    """`_add_bos(model_dir)`: give a saved tokenizer a BOS on every text."""
    return _add_bos
