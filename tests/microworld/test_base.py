"""The shipped base model: a plain Hugging Face directory that loads and generates."""

import json

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from r1lab.microworld import DEFAULT_BASE
from r1lab.tasks import render_prompt


def test_shipped_base_loads_with_auto_classes_and_generates():
    tok = AutoTokenizer.from_pretrained(DEFAULT_BASE)
    model = AutoModelForCausalLM.from_pretrained(DEFAULT_BASE)
    ids = tok(render_prompt("Compute 12 + 34", "r1zero", tok), return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, ids["input_ids"].shape[1] :])
    assert len(out[0]) > ids["input_ids"].shape[1] and text.strip()


def test_shipped_base_is_small_and_records_how_it_was_made():
    size = sum(p.stat().st_size for p in DEFAULT_BASE.iterdir())
    assert size < 20 * 2**20
    made = json.loads((DEFAULT_BASE / "r1lab.json").read_text())
    assert made["command"] == "r1lab pretrain" and made["config"]["seed"] == 0
    assert made["seconds"] < 20 * 60
