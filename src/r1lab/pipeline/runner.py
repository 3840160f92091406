"""Run the stages in order under one directory, with a manifest that makes rerunning safe.

    out/manifest.json       each stage: status, key, inputs, output, fingerprint, seconds
    out/<stage>/            the stage's run directory (or its dataset's directory)
    out/report.{md,json,png}

A stage's key is a hash of its section of the config (the keys the pipeline sets left out), the
task, the device and dtype, and its inputs' fingerprints (the hash of the model weights or
dataset bytes each earlier stage handed it). Rerunning `r1lab r1`:

- a stage recorded `done` under the same key is skipped;
- a stage recorded `running` under the same key (Ctrl-C, a crash) continues: a trainer from its
  last checkpoint, `reject` from its last finished batch, the final evaluation from its last
  finished model; `coldstart` writes its rows only at the end, so it starts over;
- any other stage runs afresh, its old directory moved aside (`<stage>.old-<time>`): its config
  changed, or an input did (an earlier stage ran again and gave other weights or rows), so the
  change reaches every stage after it and no further.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from r1lab.config import ConfigError, to_dict, validate
from r1lab.data.reject import check_rows
from r1lab.pipeline.config import COMMON, STAGES, WIRED, R1Config

MANIFEST = "manifest.json"

INPUTS: dict[str, tuple[str, ...]] = {
    "zero": ("base",),
    "coldstart": ("base", "zero"),
    "sft_coldstart": ("base", "coldstart"),
    "reasoning": ("sft_coldstart",),
    "reject": ("reasoning",),
    "sft": ("base", "reject"),
    "rm_helpful": ("base",),
    "rm_harmless": ("base",),
    "rl_all": ("sft", "rm_helpful", "rm_harmless"),
    "distill": ("student", "rl_all"),
    "eval": ("base", "zero", "sft_coldstart", "reasoning", "sft", "rl_all", "student", "distill"),
}
"""What each stage reads: `base` or `student` (the models given) or an earlier stage's output."""

TASK_FREE = ("rm_helpful", "rm_harmless")
"""Stages that do not read the task (a changed task does not rerun them)."""

DATASETS = ("coldstart", "reject")
"""Stages whose output is a dataset file (the others hand on a run directory)."""


def output_path(root: Path, stage: str) -> Path:
    """What a stage hands the next: a run directory, a dataset file, or the report."""
    if stage in DATASETS:
        return root / stage / "rows.jsonl"
    if stage == "eval":
        return root / "report.json"
    if stage == "distill":
        return root / stage / "student"
    return root / stage


def fingerprint(path: str | Path) -> str:
    """sha256 of what a stage's output holds: a dataset's bytes, or a model directory's (or a
    run's last checkpoint's) config and weights."""
    from r1lab.run.model import resolve_model_dir

    p = Path(path)
    h = hashlib.sha256()
    if p.is_file():
        files = [p]
    else:
        model = resolve_model_dir(p)
        files = sorted(model.glob("*.safetensors")) + [model / "config.json"]
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def section_config(cfg: R1Config, stage: str) -> dict[str, Any]:
    """The part of a stage's config its key hashes: its section without the wired keys."""
    data = to_dict(getattr(cfg, stage))
    for key in WIRED.get(stage, ()):
        *parents, last = key.split(".")
        node = data
        for part in parents:
            node = node[part]
        node.pop(last, None)
    return data


def stage_key(cfg: R1Config, stage: str, inputs: Mapping[str, str]) -> str:
    payload = {
        "stage": stage,
        "config": section_config(cfg, stage),
        "task": None if stage in TASK_FREE else to_dict(cfg.task),
        "device": cfg.device,
        "dtype": cfg.dtype,
        "inputs": dict(inputs),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stage_config(cfg: R1Config, stage: str, root: Path) -> Any:
    """The stage's own config: its section with the wired keys set to the stages before it."""
    section = getattr(cfg, stage)
    common = {key: getattr(cfg, key) for key in COMMON}
    task = dataclasses.replace(cfg.task, format_reward=_graded_by(section, stage))
    d = root / stage
    if stage in ("zero", "reasoning", "rl_all"):
        model = {"zero": cfg.base, "reasoning": root / "sft_coldstart", "rl_all": root / "sft"}
        wired: dict[str, Any] = {"model": str(model[stage]), "task": task, "out": str(d)}
        if stage == "rl_all":
            rms = {"helpful": str(root / "rm_helpful"), "harmless": str(root / "rm_harmless")}
            wired["general"] = dataclasses.replace(section.general, reward_models=rms)
    elif stage == "coldstart":
        wired = {
            "model": cfg.base,
            "zero_model": [str(root / "zero")],
            "tasks": [cfg.task.name],
            "ops": cfg.task.ops,
            "languages": ["en", "zh"] if cfg.task.zh_fraction > 0 else ["en"],
            "task_seed": cfg.task.seed,
            "task_path": cfg.task.path,
            "task_format": cfg.task.format,
            "out": str(output_path(root, stage)),
        }
    elif stage == "reject":
        wired = {
            "model": str(root / "reasoning"),
            "task": task,
            "out": str(output_path(root, stage)),
        }
    elif stage in ("sft_coldstart", "sft"):
        data = output_path(root, "coldstart" if stage == "sft_coldstart" else "reject")
        wired = {"model": cfg.base, "data": str(data), "out": str(d)}
    elif stage in ("rm_helpful", "rm_harmless"):
        wired = {"model": cfg.base, "out": str(d)}
    elif stage == "distill":
        wired = {
            "teacher": str(root / "rl_all"),
            "out": str(d),
            "reject": dataclasses.replace(section.reject, task=task, **common),
            "sft": dataclasses.replace(section.sft, model=cfg.student, **common),
        }
        return validate(dataclasses.replace(section, **wired))
    else:
        raise ValueError(f"no stage config for {stage}")
    return validate(dataclasses.replace(section, **wired, **common))


def _graded_by(section: Any, stage: str) -> str:
    """The format reward a stage's section grades with (the readable format after the cold
    start, R1-Zero's tags before)."""
    owner = section.reject if stage == "distill" else section
    task = getattr(owner, "task", None)
    return task.format_reward if task is not None else ""


class Manifest:
    """out/manifest.json: what each stage did, rewritten atomically after every change."""

    def __init__(self, root: Path) -> None:
        self.path = root / MANIFEST
        self.stages: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            try:
                self.stages = json.loads(self.path.read_text())["stages"]
            except (ValueError, KeyError, TypeError) as e:
                raise ConfigError(
                    f"{self.path}: not a readable manifest ({e}); move it aside to start afresh"
                ) from None

    def get(self, stage: str) -> dict[str, Any] | None:
        return self.stages.get(stage)

    def update(self, stage: str, **fields: Any) -> None:
        self.stages.setdefault(stage, {}).update(fields)
        self.save()

    def save(self) -> None:
        tmp = self.path.with_name(f".{MANIFEST}.tmp")
        tmp.write_text(json.dumps({"stages": self.stages}, indent=1))
        os.replace(tmp, self.path)


def check_root(out: str) -> Path:
    """The pipeline directory: new, empty, or one `r1lab r1` made (it has a manifest)."""
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"out={out} is a file, not a directory; pick another out=")
    if root.is_dir() and any(root.iterdir()) and not (root / MANIFEST).is_file():
        raise ConfigError(
            f"out={out} holds something that is not an r1lab r1 pipeline (no {MANIFEST}); "
            "pick another out="
        )
    return root


def run(cfg: R1Config) -> int:
    """Run every stage not yet done under the same key, then write the report."""
    from r1lab.run.distributed import env_world_size
    from r1lab.run.model import check_model_dir, resolve_device, training_dtype
    from r1lab.run.rundir import move_aside, save_run_config

    validate(cfg)
    training_dtype(cfg.dtype, resolve_device(cfg.device))  # stages train: float16 fails first
    if env_world_size() > 1:
        raise ConfigError(
            "r1lab r1 runs its stages in one process; under torchrun, run a trainer stage by "
            "itself (torchrun ... -m r1lab zero/sft/rm/distill, docs/distributed.md)"
        )
    root = check_root(cfg.out)
    check_model_dir(cfg.base)
    check_model_dir(cfg.student)
    root.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(root)
    manifest.save()  # first: it marks the directory as a pipeline's
    save_run_config(cfg, root)
    forced = rerun_closure(cfg.rerun)
    prints = {"base": fingerprint(cfg.base), "student": fingerprint(cfg.student)}
    for stage in STAGES:
        inputs = {name: prints[name] for name in INPUTS[stage]}
        key = stage_key(cfg, stage, inputs)
        rec = manifest.get(stage) or {}
        out = output_path(root, stage)
        same = rec.get("key") == key and stage not in forced
        if same and rec.get("status") == "done" and out.exists():
            print(f"r1lab r1: {stage} done ({rec['seconds']:.0f} s), skipped")
        else:
            resume = same and rec.get("status") == "running" and (root / stage).exists()
            seconds = float(rec.get("seconds", 0.0)) if resume else 0.0
            why = _why(rec, key, stage in forced)
            if not resume and (root / stage).exists():
                aside = move_aside(root / stage)
                print(f"r1lab r1: {stage}: {why}; moved its old directory to {aside}")
            if stage == "eval" and not resume and out.exists():
                move_aside(out)
            print(f"r1lab r1: {stage}: {'continuing' if resume else 'running'}")
            manifest.update(
                stage, status="running", key=key, inputs=inputs, output=str(out), seconds=seconds
            )
            t0 = time.time()
            try:
                run_stage(cfg, stage, root, resume)
            except BaseException as e:
                manifest.update(stage, seconds=seconds + time.time() - t0)
                if isinstance(e, KeyboardInterrupt):
                    print(
                        f"\nr1lab r1: interrupted in stage {stage}; the same `r1lab r1` command "
                        f"(out={cfg.out}) continues it from its last checkpoint",
                        flush=True,
                    )
                raise
            manifest.update(
                stage,
                status="done",
                fingerprint=fingerprint(out),
                seconds=seconds + time.time() - t0,
                finished=time.strftime("%Y-%m-%d %H:%M:%S"),
            )
        prints[stage] = manifest.stages[stage]["fingerprint"]
        if cfg.stop_after == stage:
            print(f"r1lab r1: stopped after {stage} (stop_after)")
            break
    return 0


def rerun_closure(names: Sequence[str]) -> set[str]:
    """The stages `rerun=names` runs again: those named and every stage that reads one of
    them, directly or through others."""
    out = set(names)
    for stage in STAGES:  # in order: a stage's inputs come before it
        if out & set(INPUTS[stage]):
            out.add(stage)
    return out


def _why(rec: Mapping[str, Any], key: str, forced: bool) -> str:
    if not rec:
        return "not run before"
    if forced:
        return "rerun names it or a stage it reads"
    if rec.get("key") != key:
        return "its config or an input changed"
    return "its last run did not finish" if rec.get("status") != "done" else "its output is gone"


def run_stage(cfg: R1Config, stage: str, root: Path, resume: bool) -> None:
    """Run one stage: fresh, or continuing what an interrupted run of it left."""
    import importlib

    if stage == "eval":
        from r1lab.pipeline.report import final_eval

        final_eval(cfg, root)
        return
    scfg = stage_config(cfg, stage, root)
    d = root / stage
    if stage in ("reject", "distill"):
        d.mkdir(parents=True, exist_ok=True)  # both continue what a run of theirs left
    elif hasattr(scfg, "resume") and resume and (d / "config.yaml").is_file():
        scfg = dataclasses.replace(scfg, resume=str(d))
    else:
        if d.exists():
            from r1lab.run.rundir import move_aside

            move_aside(d)
        if stage in DATASETS:
            d.mkdir(parents=True)
    module, command = {
        "zero": ("r1lab.rl.trainer", "zero"),
        "reasoning": ("r1lab.rl.trainer", "zero"),
        "rl_all": ("r1lab.rl.trainer", "zero"),
        "coldstart": ("r1lab.data.coldstart", None),
        "reject": ("r1lab.data.reject", None),
        "sft_coldstart": ("r1lab.sft.trainer", "sft"),
        "sft": ("r1lab.sft.trainer", "sft"),
        "rm_helpful": ("r1lab.rm.trainer", "rm"),
        "rm_harmless": ("r1lab.rm.trainer", "rm"),
        "distill": ("r1lab.distill", None),
    }[stage]
    runner = importlib.import_module(module).run
    rc = runner(scfg) if command is None else runner(scfg, command=command)
    if rc:
        raise RuntimeError(f"stage {stage} ended with status {rc}")
    if stage in DATASETS:
        check_rows(stage, output_path(root, stage), KNOBS[stage])


KNOBS = {
    "coldstart": "coldstart.rows, coldstart.samples_per_question or zero.steps",
    "reject": "reject.prompts, reject.n or reasoning.steps",
}
"""What to raise when a dataset stage keeps no row."""
