"""`r1lab r1`'s config: which stage reads which stage's output, and the keys it owns."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1lab.config import ConfigError, load_config
from r1lab.pipeline.config import STAGES, WIRED, R1Config
from r1lab.pipeline.runner import INPUTS, output_path, stage_config


@pytest.fixture
def cfg(tmp_path) -> R1Config:
    return load_config(
        R1Config,
        None,
        [f"out={tmp_path}", "base=/models/base", "student=/models/student"]
        + ["threads=1", "device=cpu", "progress=false"],
    )


def test_each_stage_starts_from_the_model_the_recipe_names(cfg, tmp_path):
    model = {s: stage_config(cfg, s, tmp_path).model for s in WIRED if s != "distill"}
    assert model == {
        "zero": "/models/base",
        "coldstart": "/models/base",  # the fewshot and direct sources prompt the base
        "sft_coldstart": "/models/base",
        "reasoning": str(tmp_path / "sft_coldstart"),
        "reject": str(tmp_path / "reasoning"),
        "sft": "/models/base",  # stage 4 starts again from the base, not the RL model
        "rm_helpful": "/models/base",
        "rm_harmless": "/models/base",
        "rl_all": str(tmp_path / "sft"),
    }
    distill = stage_config(cfg, "distill", tmp_path)
    assert distill.teacher == str(tmp_path / "rl_all")  # the final model teaches
    assert distill.sft.model == "/models/student" and distill.data == ""
    assert distill.out == str(tmp_path / "distill")
    assert distill.reject.task.format_reward == "format_readable"
    assert (distill.reject.threads, distill.sft.threads, distill.sft.device) == (1, 1, "cpu")


def test_datasets_and_reward_models_go_where_the_next_stage_reads_them(cfg, tmp_path):
    cold = stage_config(cfg, "coldstart", tmp_path)
    assert cold.zero_model == [str(tmp_path / "zero")]
    assert cold.out == str(output_path(tmp_path, "coldstart"))
    # The cold start samples as docs/r1.md measured it, not as `r1lab coldstart`'s defaults.
    sampling = (cold.samples_per_question, cold.questions_per_batch, cold.temperature)
    assert sampling == (8, 32, 0.7) and (cold.give_up_after, cold.max_candidates) == (512, 4096)
    assert (cold.min_relative_yield, cold.candidates_per_row) == (0, 4096)
    assert not cold.refill_ops
    assert stage_config(cfg, "sft_coldstart", tmp_path).data == cold.out
    reject = stage_config(cfg, "reject", tmp_path)
    assert reject.out == str(output_path(tmp_path, "reject"))
    sft = stage_config(cfg, "sft", tmp_path)
    assert sft.data == reject.out and sft.mix == "microworld:general" and sft.epochs == 2
    rl = stage_config(cfg, "rl_all", tmp_path)
    assert rl.general.reward_models == {
        "helpful": str(tmp_path / "rm_helpful"),
        "harmless": str(tmp_path / "rm_harmless"),
    }
    assert rl.general.parts == {"helpful": "final", "harmless": "full"}
    assert stage_config(cfg, "rm_helpful", tmp_path).data == "microworld:helpful"
    assert stage_config(cfg, "rm_harmless", tmp_path).data == "microworld:harmless"
    for s in WIRED:
        if s not in ("coldstart", "reject"):
            assert stage_config(cfg, s, tmp_path).out == str(tmp_path / s)


def test_inputs_name_exactly_what_the_wiring_reads(cfg, tmp_path):
    """A stage's key must change when anything it reads changes: every path its config names
    under the pipeline directory is one of its INPUTS (or its own output)."""
    for s in WIRED:
        text = repr(stage_config(cfg, s, tmp_path))
        named = {t for t in STAGES if f"{tmp_path}/{t}'" in text or f"{tmp_path}/{t}/" in text}
        given = {g for g in ("base", "student") if f"/models/{g}'" in text}
        read = (named - {s}) | given
        assert read == set(INPUTS[s]), s


def test_every_stage_gets_the_task_device_and_threads(cfg, tmp_path):
    cfg = load_config(
        R1Config, None, [f"out={tmp_path}", "task.ops=+", "task.zh_fraction=0", "threads=1"]
    )
    for s in ("zero", "reasoning", "reject", "rl_all"):
        sc = stage_config(cfg, s, tmp_path)
        assert (sc.task.ops, sc.task.zh_fraction, sc.threads) == ("+", 0.0, 1)
    # R1-Zero is graded in its tags, the stages after the cold start in the readable format
    assert stage_config(cfg, "zero", tmp_path).task.format_reward == ""
    for s in ("reasoning", "reject", "rl_all"):
        assert stage_config(cfg, s, tmp_path).task.format_reward == "format_readable"
        assert getattr(stage_config(cfg, s, tmp_path), "template", "r1") in ("r1", "")
    cold = stage_config(cfg, "coldstart", tmp_path)
    assert (cold.ops, cold.languages, cold.tasks) == ("+", ["en"], ["arithmetic"])
    zh = load_config(R1Config, None, [f"out={tmp_path}"])
    assert stage_config(zh, "coldstart", tmp_path).languages == ["en", "zh"]


def test_the_reasoning_stage_rewards_language_consistency(cfg, tmp_path):
    rl = stage_config(cfg, "reasoning", tmp_path)
    assert rl.rewards == {"math_accuracy": 1.0, "format_readable": 0.5, "language_consistency": 1.0}
    assert rl.template == "r1" and stage_config(cfg, "zero", tmp_path).template == "r1zero"


@pytest.mark.parametrize(
    ("override", "key", "instead"),
    [
        ("zero.model=/x", "zero.model", "set base"),
        ("sft.data=/x.jsonl", "sft.data", "dataset"),
        ("reasoning.task.ops=+", "reasoning.task", r"task\.\*"),
        ("reject.out=/x.jsonl", "reject.out", "pipeline directory"),
        ("rl_all.general.reward_models.helpful=/x", "rl_all.general.reward_models", "rm_helpful"),
        ("rm_harmless.threads=1", "rm_harmless.threads", "top-level threads"),
        ("coldstart.zero_model=/x", "coldstart.zero_model", "zero stage"),
        ("coldstart.languages=[en]", "coldstart.languages", "task.zh_fraction"),
        ("sft.resume=/x", "sft.resume", "resumes"),
    ],
)
def test_a_key_the_pipeline_sets_is_refused_with_what_to_set(override, key, instead, tmp_path):
    with pytest.raises(ConfigError, match=rf"'{key}' must be left to r1lab r1.*{instead}"):
        load_config(R1Config, None, [f"out={tmp_path}", override])


def test_stage_knobs_may_change(tmp_path):
    cfg = load_config(
        R1Config, None, [f"out={tmp_path}", "reasoning.steps=5", "reject.n=8", "sft.epochs=1"]
    )
    assert stage_config(cfg, "reasoning", tmp_path).steps == 5
    assert stage_config(cfg, "reject", tmp_path).n == 8


def test_rerun_and_stop_after_take_stage_names_only(tmp_path):
    with pytest.raises(ConfigError, match="rerun"):
        load_config(R1Config, None, [f"out={tmp_path}", "rerun=[rejct]"])
    with pytest.raises(ConfigError, match="stop_after"):
        load_config(R1Config, None, [f"out={tmp_path}", "stop_after=rejct"])


def test_the_shipped_config_file_restates_the_defaults():
    path = Path(__file__).parents[2] / "configs" / "r1-micro.yaml"
    assert load_config(R1Config, path) == load_config(R1Config)
