"""The R1-Zero run's configuration: every default in one place (STYLE.md 5)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from r1lab.config import ensure
from r1lab.microworld import DEFAULT_BASE
from r1lab.rl.algos import ADVANTAGE_ESTIMATORS, AGGREGATIONS, SCALES
from r1lab.run.config import RunConfig
from r1lab.tasks import TEMPLATES, TaskConfig

# The allowed names come from the registries, so a config can never offer a name the code
# does not have (or miss one it does). Registering more after import does not extend them.
Advantage = Literal[tuple(ADVANTAGE_ESTIMATORS)]  # type: ignore[valid-type]
LossAgg = Literal[tuple(AGGREGATIONS)]  # type: ignore[valid-type]
Scale = Literal[("", *SCALES)]  # type: ignore[valid-type]
Template = Literal[TEMPLATES]  # type: ignore[valid-type]


@dataclass
class RolloutConfig:
    """How completions are sampled during training."""

    group_size: int = 8
    """G: completions per prompt (the report used 16)."""
    temperature: float = 1.0
    """Sampling temperature (the report used 1.0), > 0: log-probs are taken at the same
    temperature, and GRPO needs a group's samples to differ (no greedy training)."""
    top_p: float = 1.0
    """Nucleus sampling during training (1.0 = off, as on-policy GRPO assumes)."""
    top_k: int = 0
    """Top-k during training (0 = off)."""
    max_new_tokens: int = 160
    """Completion length cap (L_max of the overlong handling)."""
    stop: list[str] = field(default_factory=lambda: ["</answer>"])
    """Stop strings; the completion keeps the stop string, so the format reward sees it."""
    plain_step: bool | None = None
    """Decode steps in plain torch ops instead of the model's forward (`rollout.fast_decode`,
    Qwen2 and Llama architectures; same samples): null = where measured to pay (the CPU),
    true = always (an error for other architectures), false = never."""

    def validate(self) -> None:
        ensure(
            self.group_size >= 2,
            "group_size",
            "an integer >= 2 (GRPO compares a group)",
            self.group_size,
        )
        ensure(
            _finite(self.temperature) and self.temperature > 0,
            "temperature",
            "> 0 (GRPO needs a group's samples to differ; greedy training has no variance)",
            self.temperature,
        )
        ensure(_finite(self.top_p) and 0 < self.top_p <= 1, "top_p", "in (0, 1]", self.top_p)
        ensure(self.top_k >= 0, "top_k", ">= 0 (0 = off)", self.top_k)
        ensure(self.max_new_tokens >= 1, "max_new_tokens", ">= 1", self.max_new_tokens)
        ensure(all(self.stop), "stop", "non-empty strings", self.stop)


@dataclass
class AlgoConfig:
    """The GRPO-family algorithm: advantages, loss, clipping, KL, dynamic sampling, overlong."""

    prompts_per_step: int = 16
    """P: prompts per step (the report used 32). Each data-parallel rank owns whole groups."""
    advantage: Advantage = "grpo"
    """Advantage estimator: `grpo` (group mean and std), `dr_grpo` (mean only), `rloo`."""
    scale: Scale = ""
    """Advantage scaling: `group`, `batch`, `none`; empty = the estimator's default."""
    loss_agg: LossAgg = "seq-mean-token-mean"
    """`seq-mean-token-mean` (GRPO), `token-mean` (DAPO), `seq-mean-token-sum-norm` (Dr. GRPO)."""
    eps_low: float = 0.2
    """Lower clip range of the ratio (1 - eps_low)."""
    eps_high: float = 0.2
    """Upper clip range (1 + eps_high); DAPO's clip-higher uses 0.28."""
    beta: float = 0.001
    """KL coefficient against the frozen reference (k3 estimator); 0 drops the reference model."""
    mu: int = 1
    """Optimisation passes over each batch. With 1, pi_old is the current policy (ratio 1)."""
    micro_batch: int = 32
    """Most sequences per forward/backward (gradient accumulation over the batch)."""
    micro_batch_cut_cost: int = 0
    """Fixed cost of one more micro-batch, in token columns: rows sorted by length are cut into
    micro-batches of at most micro_batch rows where the padding saved exceeds it. 0 = auto (64
    on CPU, measured; 4096 on GPU); a huge value keeps every micro-batch micro_batch rows."""
    lr: float = 1e-4
    """AdamW learning rate (constant after warm-up). On the micro-world base model 3e-4
    collapsed it within 10 steps (format hacked, arithmetic forgotten); 1e-4 learns steadily."""
    warmup_steps: int = 5
    """Linear learning-rate warm-up, in optimizer steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping (global norm); the pre-clip norm is logged as policy/grad_norm."""
    dynamic_sampling: bool = False
    """DAPO: drop groups whose rewards are all equal and sample more prompts to refill."""
    max_resample_rounds: int = 3
    """Dynamic sampling: at most this many extra sampling rounds per step."""
    overlong: Literal["none", "mask", "penalty"] = "none"
    """Truncated completions: `none`, `mask` (excluded from the loss), `penalty` (DAPO soft)."""
    overlong_cache: int = 32
    """Soft overlong punishment: the penalty ramps over the last this-many tokens."""
    max_nan_steps: int = 3
    """Stop after this many consecutive steps with a non-finite loss (each is skipped)."""

    def validate(self) -> None:
        ensure(self.prompts_per_step >= 1, "prompts_per_step", ">= 1", self.prompts_per_step)
        ensure(
            _finite(self.eps_low) and 0 <= self.eps_low < 1, "eps_low", "in [0, 1)", self.eps_low
        )
        ensure(_finite(self.eps_high) and self.eps_high >= 0, "eps_high", ">= 0", self.eps_high)
        ensure(_finite(self.beta) and self.beta >= 0, "beta", ">= 0 (0 = no KL)", self.beta)
        ensure(self.mu >= 1, "mu", ">= 1", self.mu)
        ensure(self.micro_batch >= 1, "micro_batch", ">= 1", self.micro_batch)
        ensure(
            self.micro_batch_cut_cost >= 0,
            "micro_batch_cut_cost",
            ">= 0 (0 = auto)",
            self.micro_batch_cut_cost,
        )
        ensure(_finite(self.lr) and self.lr > 0, "lr", "> 0", self.lr)
        ensure(self.warmup_steps >= 0, "warmup_steps", ">= 0", self.warmup_steps)
        ensure(
            _finite(self.weight_decay) and self.weight_decay >= 0,
            "weight_decay",
            ">= 0",
            self.weight_decay,
        )
        ensure(
            _finite(self.max_grad_norm) and self.max_grad_norm > 0,
            "max_grad_norm",
            "> 0",
            self.max_grad_norm,
        )
        ensure(
            self.max_resample_rounds >= 0, "max_resample_rounds", ">= 0", self.max_resample_rounds
        )
        ensure(self.overlong_cache >= 1, "overlong_cache", ">= 1", self.overlong_cache)
        ensure(self.max_nan_steps >= 1, "max_nan_steps", ">= 1", self.max_nan_steps)


@dataclass
class GeneralConfig:
    """RL for all scenarios (DeepSeek-R1's last stage): the micro-world's general requests
    beside the task's questions, rewarded by preference reward models (`r1lab rm`) instead of a
    rule, and evaluated on the world's hidden rule (docs/r1.md)."""

    share: float = 0.0
    """Share of the training prompts that are general requests; 0 = none (R1-Zero)."""
    reward_models: dict[str, str] = field(default_factory=dict)
    """Reward models by name: an `r1lab rm` checkpoint or run each, e.g.
    {helpful: runs/rm-helpful, harmless: runs/rm-harmless}; a general request's reward is the
    weighted sum of their scores (logged as reward/rm_<name>) plus the task's format reward."""
    weights: dict[str, float] = field(default_factory=dict)
    """Weight of each reward model by name (missing: 1.0)."""
    parts: dict[str, str] = field(default_factory=dict)
    """What each reward model reads of a completion by name: `final` (after the reasoning:
    R1's helpfulness model) or `full` (everything: its harmlessness model; missing: full)."""
    eval_questions: int = 60
    """Held-out general requests per evaluation (graded by the hidden rule)."""

    def validate(self) -> None:
        ok = _finite(self.share) and 0 <= self.share < 1
        ensure(ok, "share", "a share in [0, 1)", self.share)
        if self.share > 0:
            ensure(
                bool(self.reward_models),
                "reward_models",
                "at least one `r1lab rm` checkpoint when general.share > 0",
                self.reward_models,
            )
        for key in ("weights", "parts"):
            extra = sorted(set(getattr(self, key)) - set(self.reward_models))
            ensure(not extra, key, "names of general.reward_models", extra)
        for name, w in self.weights.items():
            ensure(_finite(w), f"weights.{name}", "a finite number", w)
        for name, part in self.parts.items():
            ensure(part in ("full", "final"), f"parts.{name}", "full or final", part)
        ensure(self.eval_questions >= 1, "eval_questions", ">= 1", self.eval_questions)


@dataclass
class ZeroConfig(RunConfig):
    """`r1lab zero`: GRPO from a base model with rule-based rewards."""

    model: str = str(DEFAULT_BASE)
    """Policy to start from (a local HF causal LM directory); also the frozen reference."""
    task: TaskConfig = field(default_factory=TaskConfig)
    template: Template = "r1zero"
    """Prompt template: `r1zero` (base models), `prefill` (ends in <think>), `chat`, `raw`
    (the question as written), `r1` (asks for the readable format: a model fine-tuned on
    cold-start data, with task.format_reward=format_readable)."""
    rewards: dict[str, float] = field(default_factory=dict)
    """Reward weights by name; empty = the task's own (format + accuracy), else exactly these.
    A dotted key sets one of them and keeps the rest (`rewards.language_consistency=0.5`).
    Weights that leave out the task's accuracy reward are refused (name it, or give it 0)."""
    reward_params: dict[str, dict] = field(default_factory=dict)
    """Extra params per reward name, e.g. {cosine_length: {max_length: 160}}."""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    general: GeneralConfig = field(default_factory=GeneralConfig)
    steps: int = 120
    """Training steps (one step = one batch of P x G completions)."""
    train_pool: int = 4096
    """Generated tasks: size of the training prompt pool, cycled in seeded epochs."""
    eval_every: int = 20
    """Held-out evaluation every this many steps (and before the first); 0 = never."""
    eval_questions: int = 64
    """Held-out questions per evaluation."""
    eval_n: int = 4
    """Samples per question at evaluation (pass@1 mean, maj@n)."""
    eval_temperature: float = 0.6
    """Evaluation temperature (the report's 0.6, top-p 0.95)."""
    sample_every: int = 10
    """Write a few completions with their rewards every this many steps."""
    checkpoint_every: int = 20
    """Write a checkpoint every this many steps (and at the end)."""
    keep_checkpoints: int = 2
    """Keep the last this-many checkpoints (0 keeps all)."""
    out: str = "runs/zero"
    workers: int = 2
    """Reward worker processes (0 scores in the training process)."""

    RESUMABLE: ClassVar[frozenset[str]] = RunConfig.RESUMABLE | {
        "steps",
        "eval_every",
        "eval_questions",
        "eval_n",
        "eval_temperature",
        "sample_every",
        "checkpoint_every",
        "keep_checkpoints",
        "workers",
    }
    """What `--resume` may change: none of it alters a step already computed."""

    def validate(self) -> None:
        from r1lab.rewards.registry import check_reward_config

        check_reward_config(("rewards", self.rewards), ("reward_params", self.reward_params))
        for name, weight in self.rewards.items():
            ensure(_finite(weight), f"rewards.{name}", "a finite number", weight)
        ensure(self.steps >= 1, "steps", ">= 1", self.steps)
        ensure(self.train_pool >= 1, "train_pool", ">= 1", self.train_pool)
        ensure(self.eval_every >= 0, "eval_every", ">= 0 (0 = never)", self.eval_every)
        ensure(self.eval_questions >= 1, "eval_questions", ">= 1", self.eval_questions)
        ensure(self.eval_n >= 1, "eval_n", ">= 1", self.eval_n)
        ensure(
            _finite(self.eval_temperature) and self.eval_temperature >= 0,
            "eval_temperature",
            ">= 0 (0 = greedy)",
            self.eval_temperature,
        )
        ensure(self.sample_every >= 0, "sample_every", ">= 0 (0 = never)", self.sample_every)
        ensure(self.checkpoint_every >= 1, "checkpoint_every", ">= 1", self.checkpoint_every)
        ensure(
            self.keep_checkpoints >= 0, "keep_checkpoints", ">= 0 (0 = all)", self.keep_checkpoints
        )
        ensure(self.workers >= 0, "workers", ">= 0 (0 = in-process)", self.workers)
        super().validate()


def _finite(x: float) -> bool:
    return math.isfinite(x)
