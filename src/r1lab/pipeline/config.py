"""`r1lab r1`'s configuration: the pipeline's own keys and one section per stage, each the
stage's own config class with the micro-world's defaults (STYLE.md 5).

A stage section holds everything its command takes except what ties the stages together: the
model it starts from, where it writes, the data it reads, the task, the device. Those keys are
set by the pipeline (`WIRED`); giving one is an error that says which top-level key to set.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from r1lab.config import ensure
from r1lab.data.coldstart import ColdStartConfig
from r1lab.data.filters import RULES
from r1lab.data.reject import RejectConfig
from r1lab.distill import DistillConfig
from r1lab.microworld import DEFAULT_BASE, DEFAULT_STUDENT
from r1lab.rl.config import AlgoConfig, GeneralConfig, RolloutConfig, ZeroConfig
from r1lab.rm.config import RMConfig
from r1lab.run.model import DTYPES
from r1lab.sft.config import SFTConfig
from r1lab.tasks import TaskConfig

BASE = "<base>"
"""The default of a wired `model` key that the pipeline sets to `base`."""


def _at(stage: str, name: str = "") -> str:
    """The default of a wired path: where the pipeline puts it (`out` is the pipeline's)."""
    return f"<out>/{stage}" + (f"/{name}" if name else "")


STAGES = (
    "zero",
    "coldstart",
    "sft_coldstart",
    "reasoning",
    "reject",
    "sft",
    "rm_helpful",
    "rm_harmless",
    "rl_all",
    "distill",
    "eval",
)
"""The stages in the order they run (R1_SYSTEM.md section 2)."""

COMMON = ("device", "dtype", "threads", "progress")
"""Keys every stage takes from the pipeline's own."""

WIRED: dict[str, tuple[str, ...]] = {
    "zero": ("model", "task", "out", "resume", "overwrite", *COMMON),
    "coldstart": (
        "model",
        "zero_model",
        "tasks",
        "ops",
        "languages",
        "task_seed",
        "task_path",
        "task_format",
        "out",
        "overwrite",
        *COMMON,
    ),
    "sft_coldstart": ("model", "data", "out", "resume", "overwrite", *COMMON),
    "reasoning": ("model", "task", "out", "resume", "overwrite", *COMMON),
    "reject": ("model", "task", "out", "overwrite", *COMMON),
    "sft": ("model", "data", "out", "resume", "overwrite", *COMMON),
    "rm_helpful": ("model", "out", "resume", "overwrite", *COMMON),
    "rm_harmless": ("model", "out", "resume", "overwrite", *COMMON),
    "rl_all": ("model", "task", "general.reward_models", "out", "resume", "overwrite", *COMMON),
    "distill": (
        "teacher",
        "data",
        "out",
        "sft.model",
        "reject.task",
        *(f"{part}.{key}" for part in ("reject", "sft") for key in COMMON),
    ),
}
"""Per stage section, the keys the pipeline sets: a value given for one is refused."""

INSTEAD = {
    "model": "base (the base model; later stages start from the stage before)",
    "task": "task.* (one task for every stage)",
    "tasks": "task.name",
    "ops": "task.ops",
    "languages": "task.zh_fraction",
    "task_seed": "task.seed",
    "task_path": "task.path",
    "task_format": "task.format",
    "zero_model": "nothing: it is the zero stage's model",
    "data": "nothing: it is the stage before's dataset",
    "general.reward_models": "rm_helpful.* and rm_harmless.*",
    "out": "out (the pipeline directory; each stage writes in out/<stage>)",
    "teacher": "nothing: it is the final R1 model (rl_all)",
    "sft.model": "student",
    "reject.task": "task.* (one task for every stage)",
    "resume": "nothing: rerunning `r1lab r1` resumes the interrupted stage",
    "overwrite": "rerun=[STAGE] (a stage run again moves its old directory aside)",
}
"""What to set instead of a wired key."""


def _readable_task() -> TaskConfig:
    return TaskConfig(format_reward="format_readable")


@dataclass
class FinalEvalConfig:
    """The final report: every stage's model on the same held-out questions and requests."""

    questions: int = 128
    """Held-out questions of the task per model (the first ones of its test split)."""
    n: int = 4
    """Samples per question (pass@1 is their mean; maj@k votes over the first k)."""
    ks: list[int] = field(default_factory=lambda: [1, 4])
    """The k of pass@k and maj@k (each <= n)."""
    temperature: float = 0.6
    """Sampling temperature (the report's 0.6, top-p 0.95)."""
    top_p: float = 0.95
    """Nucleus sampling."""
    max_new_tokens: int = 600
    """Completion length cap, the same for every model (the RL stages' own)."""
    general_questions: int = 60
    """Held-out general requests per model, graded by the world's hidden rule."""
    workers: int = 2
    """Reward worker processes (0 scores in this process)."""
    seed: int = 0
    """Sampling seed (the same for every model)."""

    def validate(self) -> None:
        ensure(self.questions >= 1, "questions", ">= 1", self.questions)
        ensure(self.n >= 1, "n", ">= 1", self.n)
        ok = bool(self.ks) and all(1 <= k <= self.n for k in self.ks)
        ensure(ok, "ks", f"a list of k in [1, n={self.n}]", self.ks)
        ensure(self.temperature >= 0, "temperature", ">= 0", self.temperature)
        ensure(0 < self.top_p <= 1, "top_p", "in (0, 1]", self.top_p)
        ensure(self.max_new_tokens >= 1, "max_new_tokens", ">= 1", self.max_new_tokens)
        ensure(self.general_questions >= 0, "general_questions", ">= 0", self.general_questions)
        ensure(self.workers >= 0, "workers", ">= 0", self.workers)


# Each stage's defaults: the micro-world's, sized for the shipped base model (its division
# checks need 600 new tokens) and 2 CPU cores. configs/r1-micro.yaml writes the report's values
# beside them; docs/r1.md has each stage's time.


def _rl(stage: str, model: str, steps: int, readable: bool = True, **kw: object) -> ZeroConfig:
    """An RL stage as `r1lab demo` runs R1-Zero (600 new tokens, lr 5e-5), evaluated and
    checkpointed every 10 steps; after the cold start, prompted for and graded in the readable
    format."""
    if readable:
        kw.update(task=_readable_task(), template="r1")
    kw.setdefault("algo", AlgoConfig(lr=5e-5))
    return ZeroConfig(
        model=model,
        out=_at(stage),
        steps=steps,
        eval_every=10,
        checkpoint_every=10,
        rollout=RolloutConfig(max_new_tokens=600),
        **kw,
    )


def _sft_stage(stage: str, data: str, epochs: int, **kw: object) -> SFTConfig:
    """An SFT stage from the base, in the readable format's template."""
    return SFTConfig(
        model=BASE,
        data=data,
        template="r1",
        batch_size=16,
        epochs=epochs,
        eval_every=10,
        out=_at(stage),
        **kw,
    )


def _zero() -> ZeroConfig:
    return _rl("zero", BASE, steps=30, readable=False)


def _coldstart() -> ColdStartConfig:
    # Without `long_paragraph`: it drops a third of R1-Zero's right divisions (their checks run
    # as one long paragraph), and the cold start then checks badly (docs/r1.md, section 4).
    # Sampling as docs/r1.md measured it (before `r1lab coldstart`'s defaults changed for the
    # 1,000-row build): 8 samples of 32 questions at 0.7, every source held to its share and
    # sampled up to max_candidates, a short operation's cell left short.
    return ColdStartConfig(
        model=BASE,
        zero_model=[_at("zero")],
        sources=["zero", "fewshot"],
        rows=400,
        filters=[f for f in RULES if f != "long_paragraph"],
        samples_per_question=8,
        questions_per_batch=32,
        temperature=0.7,
        give_up_after=512,
        min_relative_yield=0.0,
        candidates_per_row=4096,
        refill_ops=False,
        out=_at("coldstart", "rows.jsonl"),
    )


def _sft_coldstart() -> SFTConfig:
    return _sft_stage("sft_coldstart", _at("coldstart", "rows.jsonl"), epochs=3)


def _reasoning() -> ZeroConfig:
    rewards = {"math_accuracy": 1.0, "format_readable": 0.5, "language_consistency": 1.0}
    return _rl("reasoning", _at("sft_coldstart"), steps=30, rewards=rewards)


def _reject() -> RejectConfig:
    return RejectConfig(
        model=_at("reasoning"),
        task=_readable_task(),
        prompts=1024,
        out=_at("reject", "rows.jsonl"),
    )


def _sft() -> SFTConfig:
    return _sft_stage("sft", _at("reject", "rows.jsonl"), epochs=2, mix="microworld:general")


def _rm(aspect: str) -> RMConfig:
    return RMConfig(model=BASE, data=f"microworld:{aspect}", pairs=1000, out=_at(f"rm_{aspect}"))


def _rl_all() -> ZeroConfig:
    general = GeneralConfig(
        share=0.25,
        reward_models={"helpful": _at("rm_helpful"), "harmless": _at("rm_harmless")},
        parts={"helpful": "final", "harmless": "full"},
    )
    return _rl("rl_all", _at("sft"), steps=30, algo=AlgoConfig(lr=5e-5), general=general)


def _distill() -> DistillConfig:
    d = DistillConfig(teacher=_at("rl_all"), out=_at("distill"))
    return dataclasses.replace(
        d,
        reject=dataclasses.replace(d.reject, task=_readable_task(), prompts=1024),
        sft=dataclasses.replace(d.sft, model="<student>", batch_size=16),
    )


def _rm_helpful() -> RMConfig:
    return _rm("helpful")


def _rm_harmless() -> RMConfig:
    return _rm("harmless")


_FACTORIES = {
    "zero": _zero,
    "coldstart": _coldstart,
    "sft_coldstart": _sft_coldstart,
    "reasoning": _reasoning,
    "reject": _reject,
    "sft": _sft,
    "rm_helpful": _rm_helpful,
    "rm_harmless": _rm_harmless,
    "rl_all": _rl_all,
    "distill": _distill,
}


@dataclass
class R1Config:
    """`r1lab r1`: DeepSeek-R1's recipe, every stage, one resumable command."""

    out: str = "runs/r1"
    """The pipeline directory: manifest.json, report.md/png/json and one directory per stage."""
    base: str = str(DEFAULT_BASE)
    """The base model (a local HF causal LM directory): R1-Zero, the cold-start SFT, the SFT of
    stage 4 and the reward models start from it; the shipped micro-world model by default."""
    student: str = str(DEFAULT_STUDENT)
    """The student distilled from the final model (any local HF causal LM; its tokenizer may
    differ from the teacher's); the micro-world's shipped student by default."""
    task: TaskConfig = field(default_factory=lambda: TaskConfig(ops="+*/", zh_fraction=0.2))
    """The reasoning task of every stage and of the final report."""
    rerun: list[str] = field(default_factory=list)
    """Stages to run again although finished, with every stage that reads one of them; their
    old directories are moved aside, never deleted. Leave it off when continuing a run."""
    stop_after: Literal[("", *STAGES)] = ""  # type: ignore[valid-type]
    """Stop once this stage is done (empty: run every stage)."""
    device: str = "auto"
    """`auto` (cuda if available), `cpu`, `cuda` or `cuda:N`, for every stage."""
    dtype: Literal[DTYPES] = "auto"  # type: ignore[valid-type]
    """`auto` (bf16 on GPUs that support it, fp32 on CPU), `float32` or `bfloat16`; the training
    stages are mixed precision (fp32 weights, bf16 autocast), and float16 is refused."""
    threads: int = 2
    """torch CPU threads of every stage (0 leaves torch's default)."""
    progress: bool = True
    """Each stage's progress display."""
    zero: ZeroConfig = field(default_factory=_zero)
    """R1-Zero: GRPO from the base (the cold start's third source)."""
    coldstart: ColdStartConfig = field(default_factory=_coldstart)
    """Cold-start data (`r1lab coldstart`): R1-Zero's correct outputs made readable."""
    sft_coldstart: SFTConfig = field(default_factory=_sft_coldstart)
    """Stage 1: SFT of the base on the cold-start rows."""
    reasoning: ZeroConfig = field(default_factory=_reasoning)
    """Stage 2: reasoning RL with accuracy, readable format and language consistency."""
    reject: RejectConfig = field(default_factory=_reject)
    """Stage 3: rejection sampling of the reasoning RL model."""
    sft: SFTConfig = field(default_factory=_sft)
    """Stage 4: SFT of the base on the rejection-sampled rows and general requests (3:1)."""
    rm_helpful: RMConfig = field(default_factory=_rm_helpful)
    """The helpfulness reward model of stage 5."""
    rm_harmless: RMConfig = field(default_factory=_rm_harmless)
    """The harmlessness reward model of stage 5."""
    rl_all: ZeroConfig = field(default_factory=_rl_all)
    """Stage 5: RL for all scenarios, rules on questions, reward models on general requests."""
    distill: DistillConfig = field(default_factory=_distill)
    """Distillation: the final model's rejection-sampled completions, SFT of the student."""
    eval: FinalEvalConfig = field(default_factory=FinalEvalConfig)
    """The final report."""

    def validate(self) -> None:
        ensure(bool(self.out.strip()), "out", "a directory", self.out)
        unknown = [s for s in self.rerun if s not in STAGES]
        ensure(not unknown, "rerun", f"stage names ({', '.join(STAGES)})", self.rerun)
        ensure(self.threads >= 0, "threads", ">= 0 (0 = torch's default)", self.threads)
        default = {name: factory() for name, factory in _FACTORIES.items()}
        for section, keys in WIRED.items():
            for key in keys:
                given, expected = _get(getattr(self, section), key), _get(default[section], key)
                name = key.rsplit(".", 1)[-1]
                instead = INSTEAD.get(key) or f"the top-level {name}"
                ensure(
                    given == expected,
                    f"{section}.{key}",
                    f"left to r1lab r1, which wires the stages together; set {instead}",
                    given,
                )


def _get(obj: object, *dotted: str) -> object:
    for part in ".".join(dotted).split("."):
        obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
    return obj
