"""`r1lab sft`'s configuration: every default in one place (STYLE.md 5)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from r1lab.config import ensure
from r1lab.microworld import DEFAULT_BASE
from r1lab.run.config import RunConfig
from r1lab.tasks import TEMPLATES

Template = Literal[TEMPLATES]  # type: ignore[valid-type]
BATCHING = ("grouped", "packed")


@dataclass
class SFTConfig(RunConfig):
    """`r1lab sft`: supervised fine-tuning, loss on completion tokens only."""

    model: str = str(DEFAULT_BASE)
    """Model to fine-tune: a local Hugging Face causal LM directory with its tokenizer."""
    data: str = ""
    """Training data: a JSONL or Parquet file, `hf:NAME[:CONFIG][@SPLIT]` (a Hugging Face
    dataset, or a local dataset directory), or `microworld:general` (the micro-world's general
    requests, generated). Rows hold `prompt` and `completion`, or chat `messages`."""
    eval_data: str = ""
    """Held-out data in the same forms; empty: the dataset's test split when it has one, else
    `eval_size` of `data` held out by a seeded hash of the rendered prompt."""
    eval_size: float = 0.05
    """Share of `data` held out for eval/loss when there is no `eval_data` (0 = none)."""
    prompt_field: str = "prompt"
    """The column holding the prompt (a question, rendered with `template`)."""
    completion_field: str = "completion"
    """The column holding the completion the model learns to write."""
    messages_field: str = "messages"
    """The column holding a chat conversation [{role, content}, ...]; the last turn is the
    assistant's and is the completion. A row that has it is read as a conversation."""
    template: Template = "r1zero"
    """How a prompt is rendered, exactly as `r1lab eval` and `r1lab zero` render a question:
    `r1zero` (the R1-Zero template), `prefill` (the same ending in <think>), `chat` (the model's
    chat template), `raw` (the prompt text as written), `r1` (the R1-Zero template asking for
    the readable format of cold-start rows). Recorded in every checkpoint."""
    max_length: int = 0
    """Longest sequence (prompt + completion tokens); longer rows are dropped and counted.
    0 = the model's context (max_position_embeddings)."""
    epochs: int = 1
    """Passes over the training data (each in a fresh seeded order)."""
    steps: int = 0
    """Optimizer steps; 0 = epochs x ceil(rows / batch_size)."""
    batch_size: int = 32
    """Sequences per optimizer step. The loss is the mean over every completion token of the
    step's sequences, whatever the micro-batching."""
    micro_batch_tokens: int = 4096
    """Most token positions per forward/backward (rows x width when grouped, the pack length
    when packed); gradient accumulation covers the rest of the batch."""
    micro_batch_cut_cost: int = 0
    """`grouped`: the fixed cost of one more micro-batch, in token positions; the step's rows,
    sorted by length, are cut where that saves more padding. 0 = auto (64 on CPU, 4096 on GPU,
    as `r1lab zero`)."""
    batching: Literal[BATCHING] = "grouped"  # type: ignore[valid-type]
    """`grouped`: micro-batches of rows of similar length, right-padded, causal attention only
    (the padding left is a few tokens a row); `packed`: each micro-batch one row of whole
    sequences, position ids restarting per sequence, attention kept within each sequence
    (through the model's packed-sequence support: varlen flash attention on GPUs). Grouped is
    the faster here on CPU (docs/benchmarks.md)."""
    lr: float = 2e-4
    """Peak AdamW learning rate."""
    warmup_steps: int = 10
    """Linear warm-up from lr / warmup_steps to lr, in optimizer steps."""
    min_lr_ratio: float = 0.1
    """Cosine decay from lr after warm-up to lr x this at the last step."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping (global norm); the pre-clip norm is logged as policy/grad_norm."""
    max_nan_steps: int = 3
    """Stop after this many consecutive steps with a non-finite loss (each is skipped)."""
    eval_every: int = 50
    """Held-out loss every this many steps (and before the first and after the last); 0 = never."""
    checkpoint_every: int = 100
    """Write a checkpoint every this many steps (and at the end)."""
    keep_checkpoints: int = 2
    """Keep the last this-many checkpoints (0 keeps all)."""
    out: str = "runs/sft"
    seed: int = 0
    """Seed of the data order and the held-out split."""

    RESUMABLE: ClassVar[frozenset[str]] = RunConfig.RESUMABLE | {
        "eval_every",
        "checkpoint_every",
        "keep_checkpoints",
    }
    """What `--resume` may change: none of it alters a step already computed or to come."""

    def validate(self) -> None:
        ensure(
            bool(self.data.strip()),
            "data",
            "a JSONL/Parquet file, hf:NAME or microworld:general",
            self.data,
        )
        ok = math.isfinite(self.eval_size) and 0 <= self.eval_size < 1
        ensure(ok, "eval_size", "a share in [0, 1) (0 = none)", self.eval_size)
        for key in ("prompt_field", "completion_field", "messages_field"):
            value = getattr(self, key)
            ensure(bool(value.strip()), key, "a column name", value)
        ensure(
            self.max_length >= 0, "max_length", ">= 0 (0 = the model's context)", self.max_length
        )
        ensure(self.epochs >= 1, "epochs", ">= 1", self.epochs)
        ensure(self.steps >= 0, "steps", ">= 0 (0 = from epochs)", self.steps)
        ensure(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)
        ensure(self.micro_batch_tokens >= 1, "micro_batch_tokens", ">= 1", self.micro_batch_tokens)
        ok = self.micro_batch_cut_cost >= 0
        ensure(ok, "micro_batch_cut_cost", ">= 0 (0 = auto)", self.micro_batch_cut_cost)
        ensure(self.batching in BATCHING, "batching", " or ".join(BATCHING), self.batching)
        ensure(_finite(self.lr) and self.lr > 0, "lr", "> 0", self.lr)
        ensure(self.warmup_steps >= 0, "warmup_steps", ">= 0", self.warmup_steps)
        ok = _finite(self.min_lr_ratio) and 0 <= self.min_lr_ratio <= 1
        ensure(ok, "min_lr_ratio", "in [0, 1]", self.min_lr_ratio)
        ok = _finite(self.weight_decay) and self.weight_decay >= 0
        ensure(ok, "weight_decay", ">= 0", self.weight_decay)
        ok = _finite(self.max_grad_norm) and self.max_grad_norm > 0
        ensure(ok, "max_grad_norm", "> 0", self.max_grad_norm)
        ensure(self.max_nan_steps >= 1, "max_nan_steps", ">= 1", self.max_nan_steps)
        ensure(self.eval_every >= 0, "eval_every", ">= 0 (0 = never)", self.eval_every)
        ensure(self.checkpoint_every >= 1, "checkpoint_every", ">= 1", self.checkpoint_every)
        ok = self.keep_checkpoints >= 0
        ensure(ok, "keep_checkpoints", ">= 0 (0 = all)", self.keep_checkpoints)
        super().validate()


def _finite(x: float) -> bool:
    return math.isfinite(x)
