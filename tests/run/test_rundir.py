"""The run layer's run directories: never lose a run, fail before writing, resume honestly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from r1lab.cli import main
from r1lab.config import ConfigError, load_config
from r1lab.microworld import DEFAULT_BASE
from r1lab.rl import trainer
from r1lab.rl.config import ZeroConfig
from r1lab.run import (
    check_free,
    claim,
    load_run_config,
    resume_command,
    resume_config,
    save_run_config,
)
from r1lab.tasks import render_prompt
from r1lab.tracking import read_metrics

# One step of a few short completions on the shipped base model: the run layer is the point.
SMALL = [
    "steps=1",
    "eval_every=0",
    "algo.prompts_per_step=1",
    "rollout.group_size=2",
    "rollout.max_new_tokens=8",
    "sample_every=1",
    "checkpoint_every=1",
    "workers=0",
    "threads=1",
    "progress=false",
]


def fake_run(path: Path, **kw) -> Path:
    """A run directory as a finished run leaves it, without training (for refusal tests)."""
    path.mkdir(parents=True)
    save_run_config(ZeroConfig(out=str(path), **kw), path)
    (path / "metrics.jsonl").write_text('{"step": 0, "reward/total": 0.5}\n')
    (path / "checkpoints").mkdir()
    return path


def snapshot(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


# --- refusing to overwrite --------------------------------------------------------------------


def test_check_free_refuses_a_run_and_any_non_empty_directory(tmp_path):
    run = fake_run(tmp_path / "run")
    with pytest.raises(ConfigError, match=f"holds a run; continue it with --resume {run}"):
        check_free(run)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"not empty \(notes.txt\)"):
        check_free(other)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        check_free(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    assert check_free(tmp_path / "empty") == tmp_path / "empty"
    assert check_free(tmp_path / "new") == tmp_path / "new"
    assert not (tmp_path / "new").exists()  # checking writes nothing


def test_overwrite_moves_the_old_run_aside_and_deletes_nothing(tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    before = snapshot(run)
    assert claim(run, overwrite=True) == run
    assert list(run.iterdir()) == []
    (aside,) = tmp_path.glob("run.old-*")
    assert snapshot(aside) == before
    assert str(aside) in capsys.readouterr().out


@pytest.mark.parametrize(
    "bad",
    [
        "model=/nope",  # the example: config.yaml used to be replaced first
        f"model={DEFAULT_BASE}",  # a valid start is refused too, before anything loads
        "task.name=file",
    ],
)
def test_an_existing_run_is_never_touched_without_resume_or_overwrite(tmp_path, capsys, bad):
    run = fake_run(tmp_path / "run", steps=7)
    before = snapshot(run)
    assert main(["zero", bad, f"out={run}", *SMALL]) == 2
    err = capsys.readouterr().err
    assert snapshot(run) == before
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    "bad",
    [
        "model=/nope",
        "task.name=file task.path=/nope.jsonl",
        "device=cuda:7",
        "tensorboard=true wandb=true",  # when an optional logger is missing
    ],
)
def test_a_failed_start_leaves_nothing_behind(tmp_path, capsys, bad):
    import importlib.util

    if bad.startswith("tensorboard") and importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed")
    out = tmp_path / "runs" / "a"
    assert main(["zero", *bad.split(), f"out={out}", *SMALL]) == 2
    assert not out.exists() and not (tmp_path / "runs").exists()
    assert "Traceback" not in capsys.readouterr().err


def test_a_model_without_tokenizer_fails_before_the_run_dir_exists(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    for name in ("config.json", "model.safetensors"):
        (model / name).symlink_to(Path(DEFAULT_BASE) / name)
    out = tmp_path / "run"
    assert main(["zero", f"model={model}", f"out={out}", *SMALL]) == 2
    assert "has no tokenizer" in capsys.readouterr().err
    assert not out.exists()


# --- resume: the saved config, extended but not changed ---------------------------------------


def test_resume_allows_extending_and_refuses_changes_naming_them(tmp_path):
    run = fake_run(tmp_path / "run", steps=4, seed=3)
    cfg = load_run_config(ZeroConfig, None, ["--resume", str(run), "steps=9", "eval_every=3"])
    assert (cfg.steps, cfg.eval_every, cfg.seed, cfg.resume) == (9, 3, 3, str(run))
    with pytest.raises(ConfigError) as e:
        load_run_config(ZeroConfig, None, ["--resume", str(run), "seed=4", "algo.lr=0.1"])
    msg = str(e.value)
    assert "seed" in msg and "algo.lr" in msg and "steps" in msg  # refused ones, then allowed
    assert "3 -> 4" in msg
    # Setting a key to the value it already has is not a change.
    assert load_run_config(ZeroConfig, None, [f"resume={run}", "seed=3"]).seed == 3


def test_resume_in_python_applies_only_the_keys_that_were_set(tmp_path):
    run = fake_run(tmp_path / "run", steps=4, seed=3)
    assert resume_config(ZeroConfig(resume=str(run))).steps == 4
    assert resume_config(ZeroConfig(resume=str(run), steps=8)).steps == 8
    with pytest.raises(ConfigError, match="seed"):
        resume_config(ZeroConfig(resume=str(run), seed=5))


def test_resume_command_quotes_the_path():
    assert resume_command("zero", "runs/a b") == "r1lab zero --resume 'runs/a b'"


@pytest.fixture(scope="module")
def one_step_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run") / "a"
    assert main(["zero", f"out={run}", *SMALL]) == 0
    return run


def test_samples_store_the_exact_prompt(one_step_run):
    (line, *_) = (one_step_run / "samples" / "step-000000.jsonl").read_text().splitlines()
    sample = json.loads(line)
    assert sample["prompt"] == render_prompt(sample["question"], "r1zero")


def test_resume_extends_a_finished_run(one_step_run, tmp_path, capsys):
    run = tmp_path / "a"
    shutil.copytree(one_step_run, run)
    assert main(["zero", "--resume", str(run), "steps=2"]) == 0
    steps = [r["step"] for r in read_metrics(run) if "reward/total" in r]
    assert steps == [0, 1]
    assert load_config(ZeroConfig, run / "config.yaml").steps == 2  # the run is now 2 steps
    assert main(["zero", "--resume", str(run), "rollout.group_size=4"]) == 2
    assert "rollout.group_size" in capsys.readouterr().err


def test_ctrl_c_prints_the_command_that_resumes(one_step_run, tmp_path, capsys, monkeypatch):
    run = tmp_path / "a"
    shutil.copytree(one_step_run, run)
    real_step = trainer.train_step

    def interrupted(t, step):
        if step == 2:
            raise KeyboardInterrupt
        return real_step(t, step)

    monkeypatch.setattr(trainer, "train_step", interrupted)
    assert main(["zero", "--resume", str(run), "steps=4"]) == 130
    err = capsys.readouterr().err
    assert "last checkpoint (step 2)" in err
    command = next(line.strip() for line in err.splitlines() if "r1lab zero --resume" in line)
    assert command == f"r1lab zero --resume {run}"
    monkeypatch.setattr(trainer, "train_step", real_step)
    assert main(command.split()[1:]) == 0  # the printed command, as given, finishes the run
    steps = [r["step"] for r in read_metrics(run) if "reward/total" in r]
    assert steps == [0, 1, 2, 3]


def test_overwrite_starts_afresh_and_keeps_the_old_run(one_step_run, tmp_path):
    run = tmp_path / "a"
    shutil.copytree(one_step_run, run)
    before = snapshot(run)
    assert main(["zero", f"out={run}", "--overwrite", *SMALL, "seed=1"]) == 0
    (aside,) = tmp_path.glob("a.old-*")
    assert snapshot(aside) == before
    assert load_config(ZeroConfig, run / "config.yaml").seed == 1
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert "overwrite" not in saved and "resume" not in saved  # how it started, not what it is


def test_the_display_prints_a_line_of_the_trainers_keys_per_step_when_not_a_terminal(capsys):
    from r1lab.run.progress import Display

    row = {"reward/accuracy": 0.25, "time/step": 2.5, "eval/pass@1": 0.0469, "loss/total": 1.0}
    Display("zero", total=3, start=0, enabled=True).update(1, row)
    assert capsys.readouterr().out == "step    1  acc 0.25  s 2.5  eval@1 0.0469\n"
    Display("zero", total=3, start=0, enabled=False).update(1, row)
    assert capsys.readouterr().out == ""


def test_a_trainer_loop_closes_its_display_and_logger_and_says_how_to_resume(tmp_path, capsys):
    from r1lab.run.checkpoints import interruptible, stop_on_nan_streak

    closed: list[str] = []

    class Closing:
        def __init__(self, name: str) -> None:
            self.name = name

        def close(self) -> None:
            closed.append(self.name)

    parts = (Closing("display"), Closing("logger"))
    with pytest.raises(KeyboardInterrupt), interruptible(tmp_path, "zero out=x", *parts):
        raise KeyboardInterrupt
    # The display goes first, so the hint is not drawn over; then everything is closed.
    assert closed == ["display", "display", "logger"]
    assert f"--resume {tmp_path}" in capsys.readouterr().err
    closed.clear()
    stop_on_nan_streak(2, 3, tmp_path)  # under the limit: nothing
    with (
        pytest.raises(RuntimeError, match="3 steps in a row had a non-finite loss"),
        interruptible(tmp_path, "sft", *parts),
    ):
        stop_on_nan_streak(3, 3, tmp_path)
    assert closed == ["display", "logger"] and "interrupted" not in capsys.readouterr().err
