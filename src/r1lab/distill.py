"""`r1lab distill`: DeepSeek-R1's distillation, SFT of a smaller student on a teacher's
rejection-sampled completions, no RL (R1_SYSTEM.md section 2, step 6).

    r1lab distill teacher=runs/r1/rl_all                 # sample the teacher, SFT the student
    r1lab distill data=runs/reject.jsonl template=r1     # or SFT on rows already sampled
    r1lab distill teacher=runs/r1/rl_all sft.model=/path/to/Qwen2.5-0.5B template=chat sft.mix=

Two commands underneath, nothing of its own: `r1lab reject` samples the teacher into
out/teacher.jsonl (with `reject.*` keys), `r1lab sft` trains the student on it into
out/student (with `sft.*` keys). The rows are text, so a student with another tokenizer than
the teacher's works. Run it again with the same keys and it continues: the sampling from its
last finished batch, the SFT from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from r1lab.config import ConfigError, ensure, validate
from r1lab.data.reject import RejectConfig
from r1lab.microworld import DEFAULT_STUDENT
from r1lab.sft.config import SFTConfig
from r1lab.tasks import TEMPLATES

TEACHER_ROWS = "teacher.jsonl"
STUDENT = "student"


def _sft() -> SFTConfig:
    return SFTConfig(
        model=str(DEFAULT_STUDENT),
        data="<out>/teacher.jsonl",
        mix="microworld:general",
        epochs=2,
        eval_every=10,
        out="<out>/student",
    )


def _reject() -> RejectConfig:
    return RejectConfig(model="<teacher>", out="<out>/teacher.jsonl")


@dataclass
class DistillConfig:
    """`r1lab distill`: a teacher's good completions, then SFT of a student on them."""

    teacher: str = ""
    """The teacher checkpoint (a model directory or a run) to sample by rejection sampling;
    empty: train on `data`."""
    data: str = ""
    """Rows already sampled (JSONL, Parquet, hf:NAME; `r1lab reject` writes them), used
    instead of sampling a teacher."""
    template: Literal[("", *TEMPLATES)] = ""  # type: ignore[valid-type]
    """How the student is prompted, in training and after: empty = the teacher's (its
    r1lab.json). With `data`, name the one the rows were written for (`r1` for readable rows,
    `r1zero` for R1-Zero's tags, `chat` for a chat student)."""
    out: str = "runs/distill"
    """Directory of the teacher's rows (teacher.jsonl, its stats) and the student's SFT run
    (student/)."""
    reject: RejectConfig = field(default_factory=_reject)
    """The rejection sampling of the teacher (`r1lab reject` keys; model and out are set here)."""
    sft: SFTConfig = field(default_factory=_sft)
    """The student's SFT (`r1lab sft` keys): `sft.model` is the student (the micro-world's
    shipped student by default); data, template and out are set here."""

    def validate(self) -> None:
        ensure(
            bool(self.teacher) != bool(self.data),
            "teacher",
            "given, or else data (exactly one of them)",
            self.teacher,
        )
        if self.data:
            ensure(
                bool(self.template),
                "template",
                "the template the rows were written for when data= is given (r1, r1zero, chat)",
                self.template,
            )
        ensure(bool(self.out.strip()), "out", "a directory", self.out)
        defaults = DistillConfig.__dataclass_fields__
        for section, keys in (
            ("reject", ("model", "out")),
            ("sft", ("data", "template", "out", "resume")),
        ):
            default = defaults[section].default_factory()  # type: ignore[misc]
            for key in keys:
                value = getattr(getattr(self, section), key)
                ensure(
                    value == getattr(default, key),
                    f"{section}.{key}",
                    "left to r1lab distill (set teacher, data, template or out)",
                    value,
                )


def teacher_template(cfg: DistillConfig) -> str:
    """The template the student learns with: the one given, else the teacher's own (its
    r1lab.json; r1zero when it records none)."""
    from r1lab.run.model import trained_template

    return cfg.template or trained_template(cfg.teacher)


def reject_config(cfg: DistillConfig, template: str) -> RejectConfig:
    """The teacher's sampling; a teacher trained on the readable format (template r1) is graded
    in it unless reject.task.format_reward says otherwise."""
    task = cfg.reject.task
    if template == "r1" and not task.format_reward:
        task = dataclasses.replace(task, format_reward="format_readable")
    out = Path(cfg.out) / TEACHER_ROWS
    return validate(dataclasses.replace(cfg.reject, model=cfg.teacher, task=task, out=str(out)))


def sft_config(cfg: DistillConfig, template: str) -> SFTConfig:
    data = cfg.data or str(Path(cfg.out) / TEACHER_ROWS)
    run = Path(cfg.out) / STUDENT
    resume = str(run) if (run / "config.yaml").is_file() else ""
    sft = dataclasses.replace(cfg.sft, data=data, template=template, out=str(run), resume=resume)
    return validate(sft)


def run(cfg: DistillConfig) -> int:
    """Sample the teacher (once: on rank 0 under torchrun, the other ranks waiting), then train
    the student, data-parallel under torchrun as `r1lab sft` is."""
    from r1lab.data import reject
    from r1lab.run.distributed import barrier, is_main, setup
    from r1lab.run.model import check_model_dir, resolve_device, training_dtype
    from r1lab.sft import trainer

    validate(cfg)
    check_model_dir(cfg.sft.model)  # a missing student fails before the teacher is sampled
    training_dtype(cfg.sft.dtype, resolve_device(cfg.sft.device))  # so does sft.dtype=float16
    template = teacher_template(cfg)  # with data=, the template given (validated)
    setup(resolve_device(cfg.sft.device).type)
    if cfg.teacher:
        rows = Path(cfg.out) / TEACHER_ROWS
        if is_main():
            Path(cfg.out).mkdir(parents=True, exist_ok=True)
            reject.run(reject_config(cfg, template))  # continues from its progress file
        barrier()  # R1LAB_DIST_TIMEOUT_MIN bounds the wait (docs/distributed.md)
        reject.check_rows("reject", rows, "reject.prompts or reject.n")
    elif not Path(cfg.data).exists() and not cfg.data.startswith(("hf:", "microworld:")):
        raise ConfigError(f"data={cfg.data} does not exist")
    scfg = sft_config(cfg, template)
    if scfg.resume and is_main():
        print(f"distill: continuing the student's SFT in {scfg.resume}")
    return trainer.run(scfg, command="distill")
