"""The shipped base model: a plain Hugging Face directory that loads and generates."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from r1lab.microworld import DEFAULT_BASE, DEFAULT_STUDENT
from r1lab.tasks import render_prompt


def test_shipped_base_loads_with_auto_classes_and_generates():
    tok = AutoTokenizer.from_pretrained(DEFAULT_BASE)
    model = AutoModelForCausalLM.from_pretrained(DEFAULT_BASE)
    ids = tok(render_prompt("Compute 12 + 34", "r1zero", tok), return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, ids["input_ids"].shape[1] :])
    assert len(out[0]) > ids["input_ids"].shape[1] and text.strip()


def test_shipped_models_are_small_and_record_how_they_were_made():
    size = sum(p.stat().st_size for d in (DEFAULT_BASE, DEFAULT_STUDENT) for p in d.iterdir())
    assert size < 20 * 2**20  # both together
    base = json.loads((DEFAULT_BASE / "r1lab.json").read_text())
    student = json.loads((DEFAULT_STUDENT / "r1lab.json").read_text())
    assert base["command"] == student["command"] == "r1lab pretrain"
    # `r1lab pretrain` with no keys is the shipped base's recipe, and `preset=student` the
    # student's: everything but where each was written.
    from dataclasses import asdict

    from r1lab.config import load_config
    from r1lab.microworld.pretrain import PretrainConfig

    def recipe(config: dict) -> dict:
        return {k: v for k, v in config.items() if k not in ("out", "overwrite")}

    assert recipe(base["config"]) == recipe(asdict(PretrainConfig()))
    made = load_config(PretrainConfig, overrides=["preset=student"])
    assert recipe(student["config"]) == recipe(asdict(made))
    # The same corpus, so the same tokenizer: a student can learn from the teacher's tokens.
    assert base["config"]["corpus"] == student["config"]["corpus"]
    tokenizer = (DEFAULT_BASE / "tokenizer.json").read_text()
    assert (DEFAULT_STUDENT / "tokenizer.json").read_text() == tokenizer


@pytest.mark.parametrize("model", [DEFAULT_BASE, DEFAULT_STUDENT], ids=["base", "student"])
def test_shipped_model_loads_with_auto_classes_and_generates(model):
    tok = AutoTokenizer.from_pretrained(model)
    lm = AutoModelForCausalLM.from_pretrained(model)
    ids = tok(render_prompt("Compute 294 / 7", "r1zero", tok), return_tensors="pt")
    with torch.no_grad():
        out = lm.generate(**ids, max_new_tokens=12, do_sample=False)
    assert len(out[0]) > ids["input_ids"].shape[1]


def test_the_student_has_at_most_a_third_of_the_base_models_parameters_and_another_shape():
    base = AutoModelForCausalLM.from_pretrained(DEFAULT_BASE)
    student = AutoModelForCausalLM.from_pretrained(DEFAULT_STUDENT)
    n_base = sum(p.numel() for p in base.parameters())
    n_student = sum(p.numel() for p in student.parameters())
    assert n_student * 3 <= n_base
    shape = lambda c: (c.hidden_size, c.num_hidden_layers)  # noqa: E731
    assert shape(student.config)[0] < shape(base.config)[0]
    assert shape(student.config)[1] < shape(base.config)[1]
    assert student.config.vocab_size == base.config.vocab_size
