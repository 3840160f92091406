"""`r1lab r1`'s manifest: which stages run, skip, continue or rerun, with the stages replaced by
a stand-in whose output is a function of its config and inputs (the real stages are exercised
in test_pipeline_stages.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1lab.config import ConfigError, load_config
from r1lab.pipeline import runner
from r1lab.pipeline.config import STAGES, R1Config
from r1lab.pipeline.runner import INPUTS, output_path, section_config, stage_key


class FakeStages:
    """Writes each stage's output as text derived from the stage's section and its inputs'
    bytes, so a changed config or input changes the output, and an unchanged one does not."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []
        self.interrupt_at: str | None = None

    def __call__(self, cfg: R1Config, stage: str, root: Path, resume: bool) -> None:
        self.calls.append((stage, resume))
        if stage == self.interrupt_at:
            (root / stage).mkdir(parents=True, exist_ok=True)
            (root / stage / "partial").write_text("half done")
            raise KeyboardInterrupt
        given = {"base": cfg.base, "student": cfg.student}
        ups = [runner.fingerprint(given.get(s) or output_path(root, s)) for s in INPUTS[stage]]
        text = json.dumps([stage, section_config(cfg, stage), ups], sort_keys=True)
        out = output_path(root, stage)
        if stage in runner.DATASETS:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
        elif stage == "eval":
            (root / "eval").mkdir(exist_ok=True)
            out.write_text(text)
        else:  # a model directory
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.json").write_text("{}")
            (out / "model.safetensors").write_text(text)

    def ran(self) -> list[str]:
        names = [s for s, _ in self.calls]
        self.calls.clear()
        return names


@pytest.fixture
def fake(monkeypatch) -> FakeStages:
    stages = FakeStages()
    monkeypatch.setattr(runner, "run_stage", stages)
    return stages


def r1(tmp_path: Path, *overrides: str) -> R1Config:
    return load_config(R1Config, None, [f"out={tmp_path / 'r1'}", *overrides])


def manifest(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "r1" / "manifest.json").read_text())["stages"]


def test_first_run_runs_every_stage_in_order_and_records_it(tmp_path, fake):
    assert runner.run(r1(tmp_path)) == 0
    assert fake.ran() == list(STAGES)
    m = manifest(tmp_path)
    assert list(m) == list(STAGES)
    assert all(rec["status"] == "done" and len(rec["fingerprint"]) == 64 for rec in m.values())
    assert m["reasoning"]["inputs"] == {"sft_coldstart": m["sft_coldstart"]["fingerprint"]}
    assert m["rl_all"]["inputs"] == {
        "sft": m["sft"]["fingerprint"],
        "rm_helpful": m["rm_helpful"]["fingerprint"],
        "rm_harmless": m["rm_harmless"]["fingerprint"],
    }
    assert m["zero"]["inputs"]["base"] == runner.fingerprint(r1(tmp_path).base)
    assert m["distill"]["inputs"] == {
        "student": runner.fingerprint(r1(tmp_path).student),
        "rl_all": m["rl_all"]["fingerprint"],
    }


def test_rerun_of_a_finished_pipeline_skips_every_stage(tmp_path, fake, capsys):
    runner.run(r1(tmp_path))
    fake.ran()
    before = manifest(tmp_path)
    runner.run(r1(tmp_path))
    assert fake.ran() == []
    assert manifest(tmp_path) == before
    assert "reject done" in capsys.readouterr().out


def test_a_changed_stage_reruns_with_the_stages_that_read_it_and_no_others(tmp_path, fake):
    runner.run(r1(tmp_path))
    fake.ran()
    runner.run(r1(tmp_path, "reasoning.steps=7"))
    assert fake.ran() == ["reasoning", "reject", "sft", "rl_all", "distill", "eval"]
    root = tmp_path / "r1"
    assert len(list(root.glob("reasoning.old-*"))) == 1  # moved aside, not deleted
    runner.run(r1(tmp_path, "reasoning.steps=7"))
    assert fake.ran() == []
    runner.run(r1(tmp_path, "reasoning.steps=7", "rm_harmless.pairs=10"))
    assert fake.ran() == ["rm_harmless", "rl_all", "distill", "eval"]


def test_a_changed_task_or_base_reaches_every_stage_that_reads_it(tmp_path, fake, tiny_model):
    runner.run(r1(tmp_path))
    fake.ran()
    runner.run(r1(tmp_path, "task.zh_fraction=0.5"))
    assert fake.ran() == [s for s in STAGES if s not in ("rm_helpful", "rm_harmless")]
    runner.run(r1(tmp_path, "task.zh_fraction=0.5", f"base={tiny_model}"))
    assert fake.ran() == list(STAGES)


def test_rerun_names_a_stage_and_everything_that_reads_it(tmp_path, fake):
    runner.run(r1(tmp_path))
    fake.ran()
    runner.run(r1(tmp_path, "rerun=[rm_helpful]"))
    assert fake.ran() == ["rm_helpful", "rl_all", "distill", "eval"]
    runner.run(r1(tmp_path, "rerun=[coldstart]"))
    assert fake.ran() == [
        "coldstart",
        "sft_coldstart",
        "reasoning",
        "reject",
        "sft",
        "rl_all",
        "distill",
        "eval",
    ]


def test_an_interrupted_stage_continues_and_the_finished_ones_are_kept(tmp_path, fake):
    fake.interrupt_at = "sft"
    with pytest.raises(KeyboardInterrupt):
        runner.run(r1(tmp_path))
    m = manifest(tmp_path)
    assert m["sft"]["status"] == "running" and m["reject"]["status"] == "done"
    fake.ran()
    fake.interrupt_at = None
    runner.run(r1(tmp_path))
    assert fake.calls[0] == ("sft", True)  # continued, not restarted
    assert fake.ran() == ["sft", "rm_helpful", "rm_harmless", "rl_all", "distill", "eval"]
    assert (tmp_path / "r1" / "sft" / "partial").is_file()  # what it had is still there
    assert manifest(tmp_path)["sft"]["status"] == "done"


def test_an_interrupted_stage_whose_config_changed_starts_afresh(tmp_path, fake):
    fake.interrupt_at = "sft"
    with pytest.raises(KeyboardInterrupt):
        runner.run(r1(tmp_path))
    fake.ran()
    fake.interrupt_at = None
    runner.run(r1(tmp_path, "sft.epochs=1"))
    assert fake.calls[0] == ("sft", False)
    assert not (tmp_path / "r1" / "sft" / "partial").exists()
    assert len(list((tmp_path / "r1").glob("sft.old-*"))) == 1


def test_stop_after_ends_the_run_at_that_stage(tmp_path, fake, capsys):
    runner.run(r1(tmp_path, "stop_after=reject"))
    assert fake.ran() == list(STAGES[: STAGES.index("reject") + 1])
    assert "stopped after reject" in capsys.readouterr().out


def test_a_directory_that_is_not_a_pipeline_is_refused(tmp_path, fake):
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an r1lab r1 pipeline"):
        runner.run(r1(tmp_path))
    assert fake.ran() == []


def test_a_dataset_stage_that_kept_no_rows_stops_the_pipeline_naming_the_knobs(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n")
    with pytest.raises(ConfigError, match=r"reject kept no rows .* reject\.prompts"):
        runner.check_rows("reject", path, runner.KNOBS["reject"])
    path.write_text('{"prompt": "q", "completion": "c"}\n')
    runner.check_rows("reject", path, runner.KNOBS["reject"])


def test_stage_key_hashes_the_section_the_task_and_the_inputs_not_the_wiring(tmp_path):
    cfg = r1(tmp_path)
    key = stage_key(cfg, "sft", {"base": "a", "reject": "b"})
    assert stage_key(cfg, "sft", {"base": "a", "reject": "c"}) != key
    assert stage_key(r1(tmp_path, "sft.lr=1e-3"), "sft", {"base": "a", "reject": "b"}) != key
    assert stage_key(r1(tmp_path, "task.seed=3"), "sft", {"base": "a", "reject": "b"}) != key
    # how a stage runs, not what it computes: the same key
    for same in ("threads=1", "progress=false", f"out={tmp_path / 'elsewhere'}"):
        assert stage_key(r1(tmp_path, same), "sft", {"base": "a", "reject": "b"}) == key
    assert "model" not in section_config(cfg, "sft") and "out" not in section_config(cfg, "sft")
    assert "reward_models" not in section_config(cfg, "rl_all")["general"]
    assert section_config(cfg, "rl_all")["general"]["share"] == 0.25


def test_under_torchrun_the_pipeline_refuses_before_writing(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="one process"):
        runner.run(r1(tmp_path))
    assert not (tmp_path / "r1").exists() and fake.ran() == []
