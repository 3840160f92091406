"""The R1-Zero run's configuration: every default in one place (STYLE.md 5)."""

from __future__ import annotations

from dataclasses import dataclass, field

from r1lab.config import ConfigError
from r1lab.microworld import DEFAULT_BASE
from r1lab.tasks import TaskConfig


@dataclass
class RolloutConfig:
    """How completions are sampled during training."""

    group_size: int = 8
    """G: completions per prompt (the report used 16)."""
    temperature: float = 1.0
    """Sampling temperature (the report used 1.0); log-probs are taken at the same temperature."""
    top_p: float = 1.0
    """Nucleus sampling during training (1.0 = off, as on-policy GRPO assumes)."""
    top_k: int = 0
    """Top-k during training (0 = off)."""
    max_new_tokens: int = 160
    """Completion length cap (L_max of the overlong handling)."""
    stop: list[str] = field(default_factory=lambda: ["</answer>"])
    """Stop strings; the completion keeps the stop string, so the format reward sees it."""


@dataclass
class AlgoConfig:
    """The GRPO-family algorithm: advantages, loss, clipping, KL, dynamic sampling, overlong."""

    prompts_per_step: int = 16
    """P: prompts per step (the report used 32). Each data-parallel rank owns whole groups."""
    advantage: str = "grpo"
    """Advantage estimator: `grpo` (group mean and std), `dr_grpo` (mean only), `rloo`."""
    scale: str = ""
    """Advantage scaling: `group`, `batch`, `none`; empty = the estimator's default."""
    loss_agg: str = "seq-mean-token-mean"
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
    overlong: str = "none"
    """Truncated completions: `none`, `mask` (excluded from the loss), `penalty` (DAPO soft)."""
    overlong_cache: int = 32
    """Soft overlong punishment: the penalty ramps over the last this-many tokens."""
    max_nan_steps: int = 3
    """Stop after this many consecutive steps with a non-finite loss (each is skipped)."""


@dataclass
class ZeroConfig:
    """`r1lab zero`: GRPO from a base model with rule-based rewards."""

    model: str = str(DEFAULT_BASE)
    """Policy to start from (a local HF causal LM directory); also the frozen reference."""
    task: TaskConfig = field(default_factory=TaskConfig)
    template: str = "r1zero"
    """Prompt template: `r1zero` (base models), `prefill` (ends in <think>), `chat`."""
    rewards: dict[str, float] = field(default_factory=dict)
    """Reward weights by name; empty = the task's own (format + accuracy)."""
    reward_params: dict[str, dict] = field(default_factory=dict)
    """Extra params per reward name, e.g. {cosine_length: {max_length: 160}}."""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
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
    """Keep the last this-many checkpoints."""
    out: str = "runs/zero"
    """Run directory."""
    resume: str = ""
    """A run directory to continue from its last checkpoint (its config is used as saved)."""
    seed: int = 0
    """Seed of data order and sampling."""
    workers: int = 2
    """Reward worker processes (0 scores in the training process)."""
    device: str = "auto"
    """`auto` (cuda if available), `cpu` or `cuda`."""
    dtype: str = "auto"
    """`auto` (bf16 on GPUs that support it, fp32 on CPU), `float32` or `bfloat16`."""
    threads: int = 2
    """torch CPU threads (0 leaves torch's default)."""
    tensorboard: bool = False
    """Also log to TensorBoard (needs the `tb` extra)."""
    wandb: bool = False
    """Also log to Weights & Biases (needs the `wandb` extra)."""
    progress: bool = True
    """Live progress display (a line per step when the output is not a terminal)."""

    def validate(self) -> None:
        a, r = self.algo, self.rollout
        if a.prompts_per_step < 1 or r.group_size < 2:
            raise ConfigError("algo.prompts_per_step must be >= 1 and rollout.group_size >= 2")
        if a.mu < 1:
            raise ConfigError(f"algo.mu must be >= 1, got {a.mu}")
        if a.overlong not in ("none", "mask", "penalty"):
            raise ConfigError(f"algo.overlong must be none, mask or penalty, got {a.overlong!r}")
        if a.micro_batch < 1:
            raise ConfigError(f"algo.micro_batch must be >= 1, got {a.micro_batch}")
        if a.micro_batch_cut_cost < 0:
            raise ConfigError(
                f"algo.micro_batch_cut_cost must be >= 0 (0 = auto), got {a.micro_batch_cut_cost}"
            )
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
