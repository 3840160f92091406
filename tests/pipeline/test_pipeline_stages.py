"""`r1lab r1` with real stages on a tiny model: a trainer stage continued after a crash, the
final evaluation (each model in its own template and format) and the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from r1lab.cli import main
from r1lab.config import load_config
from r1lab.evaluate import EvalResult
from r1lab.pipeline import report, runner
from r1lab.pipeline.config import R1Config
from r1lab.run.checkpoints import checkpoints

TINY_ZERO = [
    "zero.steps=2",
    "zero.checkpoint_every=1",
    "zero.eval_every=0",
    "zero.sample_every=0",
    "zero.rollout.group_size=2",
    "zero.rollout.max_new_tokens=12",
    "zero.algo.prompts_per_step=2",
    "zero.train_pool=16",
    "zero.workers=0",
    "threads=1",
    "progress=false",
]


def test_a_crashed_trainer_stage_continues_from_its_last_checkpoint(tiny_model, tmp_path, capsys):
    root = tmp_path / "r1"
    cfg = load_config(
        R1Config, None, [f"out={root}", f"base={tiny_model}", "stop_after=zero", *TINY_ZERO]
    )
    assert runner.run(cfg) == 0
    path = root / "manifest.json"
    m = json.loads(path.read_text())
    assert [c.name for c in checkpoints(root / "zero")] == ["step-000001", "step-000002"]
    assert m["stages"]["zero"]["fingerprint"] == runner.fingerprint(checkpoints(root / "zero")[-1])
    # A crash between the two checkpoints: step 2's is not written, the stage not recorded done.
    shutil.rmtree(checkpoints(root / "zero")[-1])
    m["stages"]["zero"]["status"] = "running"
    path.write_text(json.dumps(m))
    capsys.readouterr()
    assert runner.run(cfg) == 0
    out = capsys.readouterr().out
    assert "zero: continuing" in out and "(step 1)" in out
    assert [c.name for c in checkpoints(root / "zero")] == ["step-000001", "step-000002"]
    assert not list(root.glob("zero.old-*"))  # continued in place
    m = json.loads(path.read_text())["stages"]["zero"]
    assert m["status"] == "done"
    assert m["fingerprint"] == runner.fingerprint(checkpoints(root / "zero")[-1])
    assert runner.run(cfg) == 0
    assert "zero done" in capsys.readouterr().out


def _models(tiny_model: Path, root: Path, readable: set[str]) -> None:
    """Every stage's model directory, a copy of the tiny model; `readable` ones record r1."""
    for _, stage in report.MODELS:
        if stage in ("base", "student"):
            continue
        d = runner.output_path(root, stage)
        shutil.copytree(tiny_model, d)
        if stage in readable:
            (d / "r1lab.json").write_text(json.dumps({"template": "r1"}))


def test_final_eval_grades_each_model_in_its_own_template_at_the_eval_settings(
    tiny_model, tmp_path, monkeypatch
):
    root = tmp_path / "r1"
    _models(tiny_model, root, readable={"sft_coldstart", "reasoning", "sft", "rl_all", "distill"})
    cfg = load_config(
        R1Config,
        None,
        [f"out={root}", f"base={tiny_model}", f"student={tiny_model}", "eval.temperature=0.3"]
        + ["eval.n=3", "eval.ks=[1,3]"],
    )
    calls = []

    def fake_evaluate(model, tokenizer, task, examples, **kw):
        calls.append((task.name, task.rewards.format, kw["template"], kw["n"], kw["temperature"]))
        hit = 1.0 if kw["template"] == "r1" else 0.0
        return EvalResult({"eval/pass@1": hit, "eval/helpful_rate": 0.5}, [])

    monkeypatch.setattr("r1lab.evaluate.evaluate", fake_evaluate)
    got = report.final_eval(cfg, root)
    reasoning = [c for c in calls if c[0] == "arithmetic"]
    general = [c for c in calls if c[0] == "general"]
    assert [c[1:3] for c in reasoning] == [
        ("format", "r1zero"),  # base
        ("format", "r1zero"),  # R1-Zero
        *[("format_readable", "r1")] * 4,
        ("format", "r1zero"),  # the student base
        ("format_readable", "r1"),  # distilled from the final model
    ]
    assert all(c[3:] == (3, 0.3) for c in reasoning)
    assert all(c[3] == 1 and c[4] == 0.3 for c in general) and len(general) == 8
    models = got["models"]
    assert list(models) == [label for label, _ in report.MODELS]
    assert models["base"]["eval/pass@1"] == 0.0 and models["final R1"]["eval/pass@1"] == 1.0
    assert models["final R1"]["eval/general/helpful_rate"] == 0.5
    assert (root / "report.png").stat().st_size > 0
    md = (root / "report.md").read_text()
    assert "| pass@1 | 0.0% | 0.0% | 100.0% |" in md and "| template | r1zero | r1zero | r1 |" in md
    # Continuing: the models already evaluated are read back, not sampled again.
    calls.clear()
    report.final_eval(cfg, root)
    assert calls == []
    (root / "rl_all" / "config.json").write_text(
        (root / "rl_all" / "config.json").read_text() + " "
    )  # other weights or config: evaluated again
    report.final_eval(cfg, root)
    assert len(calls) == 2


def test_final_eval_on_real_models_writes_every_report_row(tiny_model, tmp_path):
    root = tmp_path / "r1"
    _models(tiny_model, root, readable={"sft", "rl_all"})
    args = [f"out={root}", f"base={tiny_model}", f"student={tiny_model}"]
    args += ["threads=1", "progress=false"]
    args += ["eval.questions=2", "eval.n=2", "eval.ks=[1,2]", "eval.general_questions=24"]
    args += ["eval.max_new_tokens=8", "eval.workers=0"]
    got = report.final_eval(load_config(R1Config, None, args), root)
    for metrics in got["models"].values():
        for _, key in report.rows([1, 2]):
            if "mixed_language_rate_zh" not in key:
                assert key in metrics, key
    md = (root / "report.md").read_text()
    assert md.count("\n| ") >= len(report.rows([1, 2])) + 2


def test_cli_lists_r1_and_refuses_a_wired_key(capsys):
    assert main(["r1", "--help"]) == 0
    text = capsys.readouterr().out
    assert "[reasoning]" in text and "[rl_all.general]" in text and "stop_after" in text
    assert main(["r1", "reject.model=/x"]) == 2
    assert "reject.model" in capsys.readouterr().err


@pytest.mark.parametrize("stage", ["coldstart", "reject"])
def test_dataset_paths_are_files_under_their_stage(stage, tmp_path):
    assert runner.output_path(tmp_path, stage) == tmp_path / stage / "rows.jsonl"


def test_float16_is_refused_before_any_stage_runs(tmp_path, monkeypatch, capsys):
    import torch

    import r1lab.run.model as model

    monkeypatch.setattr(model, "resolve_device", lambda device: torch.device("cuda"))
    assert main(["r1", "dtype=float16", f"out={tmp_path / 'r1'}"]) == 2
    assert "float16 is not supported for training" in capsys.readouterr().err
    assert not (tmp_path / "r1").exists()
