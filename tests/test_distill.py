"""`r1lab distill`: a teacher sampled by `r1lab reject`, a student trained by `r1lab sft`."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from r1lab import distill
from r1lab.config import ConfigError, load_config
from r1lab.distill import DistillConfig
from r1lab.run.checkpoints import checkpoint_meta, checkpoints

SMALL_SFT = ["sft.batch_size=4", "sft.epochs=1", "sft.eval_every=0", "sft.mix="]


def cfg_of(*args: str) -> DistillConfig:
    return load_config(DistillConfig, None, list(args))


def test_exactly_one_of_teacher_and_data():
    with pytest.raises(ConfigError, match="teacher"):
        cfg_of()
    with pytest.raises(ConfigError, match="teacher"):
        cfg_of("teacher=/t", "data=/d.jsonl", "template=r1")
    with pytest.raises(ConfigError, match="template"):
        cfg_of("data=/d.jsonl")  # which template the rows were written for must be said


@pytest.mark.parametrize(
    "key",
    ["reject.model=/x", "reject.out=/x.jsonl", "sft.data=/x", "sft.out=/x", "sft.template=chat"],
)
def test_what_distill_wires_is_refused(key):
    with pytest.raises(ConfigError, match=rf"'{key.split('=')[0]}' must be left to r1lab distill"):
        cfg_of("teacher=/t", key)


def test_the_teacher_is_sampled_then_the_student_learns_its_rows_in_its_template(
    base_model, tiny_model, tmp_path
):
    """The shipped base teaches the tiny model, whose tokenizer is another one: the rows are
    text, so that works."""
    a, b = AutoTokenizer.from_pretrained(base_model), AutoTokenizer.from_pretrained(tiny_model)
    assert a.get_vocab() != b.get_vocab()
    out = tmp_path / "d"
    args = [f"teacher={base_model}", f"out={out}", f"sft.model={tiny_model}", *SMALL_SFT]
    args += ["reject.prompts=64", "reject.max_new_tokens=100", "reject.progress=false"]
    args += ["sft.progress=false", "sft.threads=1", "reject.threads=1"]
    assert distill.run(cfg_of(*args)) == 0
    rows = [json.loads(line) for line in (out / "teacher.jsonl").read_text().splitlines()]
    assert rows and all(r["model"] == str(base_model) for r in rows)
    student = checkpoints(out / "student")[-1]
    meta = checkpoint_meta(student)
    assert meta["template"] == "r1zero"  # the teacher's (its r1lab.json: none, so r1zero)
    assert meta["data"] == str(out / "teacher.jsonl")
    assert json.loads((student / "config.json").read_text())["vocab_size"] == len(b)
    # Run again: the sampling is done and the SFT run continues (here: is already finished).
    assert distill.run(cfg_of(*args)) == 0
    assert len((out / "teacher.jsonl").read_text().splitlines()) == len(rows)


def test_rows_given_as_data_train_the_student_in_the_template_named(tiny_model, tmp_path):
    data = tmp_path / "rows.jsonl"
    rows = [
        {
            "prompt": f"What is {i} + {i}?",
            "completion": f"<think> {i}+{i}={2 * i} </think> <answer> {2 * i} </answer>",
        }
        for i in range(12)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "d"
    args = [f"data={data}", "template=r1", f"out={out}", f"sft.model={tiny_model}", *SMALL_SFT]
    assert distill.run(cfg_of(*args, "sft.progress=false", "sft.threads=1")) == 0
    assert not (out / "teacher.jsonl").exists()  # nothing sampled
    assert checkpoint_meta(checkpoints(out / "student")[-1])["template"] == "r1"


def test_a_readable_teacher_is_graded_in_the_readable_format(tmp_path):
    cfg = cfg_of("teacher=/t", f"out={tmp_path}")
    assert distill.reject_config(cfg, "r1").task.format_reward == "format_readable"
    assert distill.reject_config(cfg, "r1zero").task.format_reward == ""
    assert distill.reject_config(cfg, "r1").model == "/t"
    assert distill.reject_config(cfg, "r1").out == str(tmp_path / "teacher.jsonl")
    named = cfg_of("teacher=/t", f"out={tmp_path}", "reject.task.format_reward=format")
    assert distill.reject_config(named, "r1").task.format_reward == "format"


def test_a_float16_student_is_refused_before_the_teacher_is_sampled(tmp_path, monkeypatch):
    import torch

    import r1lab.run.model as model

    # float16 is refused for training on any device (no loss scaling); on a "GPU" here, so the
    # refusal is the training one, not the CPU's.
    monkeypatch.setattr(model, "resolve_device", lambda device: torch.device("cuda"))
    cfg = cfg_of("teacher=/t", "sft.dtype=float16", f"out={tmp_path / 'd'}")
    with pytest.raises(ConfigError, match="float16 is not supported for training"):
        distill.run(cfg)
    assert not (tmp_path / "d").exists()
