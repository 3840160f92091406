"""`r1lab rm`'s configuration: every default in one place (STYLE.md 5)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from r1lab.config import ensure
from r1lab.microworld import DEFAULT_BASE
from r1lab.run.config import FitConfig
from r1lab.tasks import TEMPLATES

Template = Literal[TEMPLATES]  # type: ignore[valid-type]


@dataclass
class RMConfig(FitConfig):
    """`r1lab rm`: a Bradley-Terry reward model trained on chosen/rejected pairs."""

    model: str = str(DEFAULT_BASE)
    """The model under the reward head: a local Hugging Face causal LM (base or SFT) directory,
    or a reward model to train further. Loaded with AutoModelForSequenceClassification, one
    output; a new score head is initialised from `seed`."""
    data: str = "microworld:helpful"
    """Preference pairs: a JSONL or Parquet file, `hf:NAME[:CONFIG][@SPLIT]`, or the
    micro-world's generated pairs labelled by its hidden rule, `microworld:helpful`,
    `microworld:harmless` or `microworld:overall` (helpful and harmless > harmless > harmful).
    Rows hold `prompt`, `chosen`, `rejected` as text, or `chosen` and `rejected` as chat
    conversations [{role, content}, ...] (with or without a `prompt` conversation before them)."""
    eval_data: str = ""
    """Held-out pairs in the same forms; empty: the source's test split when it has one (the
    micro-world's: pairs of held-out requests, labelled without noise), else `eval_size` of
    `data` held out by a seeded hash of the prompt."""
    eval_size: float = 0.05
    """Share of `data` held out when there is no test split or `eval_data` (0 = none)."""
    pairs: int = 2000
    """For microworld sources: training pairs generated (held-out: 400)."""
    label_noise: float = 0.1
    """For microworld sources: share of training pairs whose labels are flipped (human labels
    disagree); the held-out pairs are always labelled by the hidden rule itself."""
    prompt_field: str = "prompt"
    """The column holding the prompt (text, or a chat conversation)."""
    chosen_field: str = "chosen"
    """The column holding the preferred response (text, or a conversation)."""
    rejected_field: str = "rejected"
    """The column holding the other response."""
    template: Template = "raw"
    """How a text prompt is rendered before its response, as `r1lab sft` renders it: `raw` (as
    written: the micro-world's pairs are written `User: ...\\nAssistant:` as its corpus is),
    `chat` (the model's chat template), `r1zero`, `r1`, `prefill`. Recorded in every checkpoint,
    so whoever scores with the model renders prompts the same way."""
    max_length: int = 0
    """Longest sequence (prompt + response tokens); a pair with a longer side is dropped and
    counted. 0 = the model's context."""
    batch_size: int = 32
    """Pairs per optimizer step; the loss is their mean, whatever the micro-batching."""
    micro_batch_tokens: int = 4096
    """Most token positions per forward/backward (rows x width; a pair's two sequences are
    always in one micro-batch); gradient accumulation covers the rest of the batch."""
    micro_batch_cut_cost: int = 0
    """The fixed cost of one more micro-batch, in token positions (as `r1lab sft`); 0 = auto."""
    lr: float = 1e-4
    """Peak AdamW learning rate."""
    warmup_steps: int = 5
    """Linear warm-up from lr / warmup_steps to lr, in optimizer steps."""
    center_coef: float = 0.0
    """Weight of (r_chosen + r_rejected)^2 added to the loss, which keeps rewards centred on 0
    (Eisenstein et al. 2023; TRL's center_rewards_coefficient). 0 = the plain Bradley-Terry
    loss."""
    eval_every: int = 20
    """Held-out pair accuracy every this many steps (and before the first and after the last);
    0 = never."""
    checkpoint_every: int = 50
    """Write a checkpoint every this many steps (and at the end)."""
    out: str = "runs/rm"
    seed: int = 0
    """Seed of the data order, the held-out split and the new score head."""

    def validate(self) -> None:
        ensure(
            bool(self.data.strip()),
            "data",
            "a JSONL/Parquet file, hf:NAME or microworld:helpful|harmless|overall",
            self.data,
        )
        ok = math.isfinite(self.eval_size) and 0 <= self.eval_size < 1
        ensure(ok, "eval_size", "a share in [0, 1) (0 = none)", self.eval_size)
        ensure(self.pairs >= 1, "pairs", ">= 1", self.pairs)
        ok = math.isfinite(self.label_noise) and 0 <= self.label_noise <= 0.5
        ensure(ok, "label_noise", "a share in [0, 0.5]", self.label_noise)
        for key in ("prompt_field", "chosen_field", "rejected_field"):
            value = getattr(self, key)
            ensure(bool(value.strip()), key, "a column name", value)
        ensure(
            self.max_length >= 0, "max_length", ">= 0 (0 = the model's context)", self.max_length
        )
        ensure(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)
        ensure(self.micro_batch_tokens >= 2, "micro_batch_tokens", ">= 2", self.micro_batch_tokens)
        ok = self.micro_batch_cut_cost >= 0
        ensure(ok, "micro_batch_cut_cost", ">= 0 (0 = auto)", self.micro_batch_cut_cost)
        ok = math.isfinite(self.center_coef) and self.center_coef >= 0
        ensure(ok, "center_coef", ">= 0", self.center_coef)
        super().validate()
