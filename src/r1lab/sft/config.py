"""`r1lab sft`'s configuration: every default in one place (STYLE.md 5)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from r1lab.config import ensure
from r1lab.microworld import DEFAULT_BASE
from r1lab.run.config import FitConfig
from r1lab.tasks import TEMPLATES

Template = Literal[TEMPLATES]  # type: ignore[valid-type]
BATCHING = ("grouped", "packed")


@dataclass
class SFTConfig(FitConfig):
    """`r1lab sft`: supervised fine-tuning, loss on completion tokens only."""

    model: str = str(DEFAULT_BASE)
    """Model to fine-tune: a local Hugging Face causal LM directory with its tokenizer."""
    data: str = ""
    """Training data: a JSONL or Parquet file, `hf:NAME[:CONFIG][@SPLIT]` (a Hugging Face
    dataset, or a local dataset directory), or `microworld:general` (the micro-world's general
    requests, generated). Rows hold `prompt` and `completion`, or chat `messages`."""
    mix: str = ""
    """A second training source in the same forms, mixed in at `mix_ratio` (DeepSeek-R1's
    non-reasoning rows beside the rejection-sampled reasoning ones: `mix=microworld:general`);
    empty = none. Its held-out rows join the held-out set at the same ratio."""
    mix_ratio: float = 1 / 3
    """Rows of `mix` per training row of `data` (the report's 200k to 600k); drawn by a seeded
    sample, `mix` repeated whole when it has fewer rows."""
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
    share_prefix: bool = True
    """`grouped`: the first tokens all rows of a micro-batch share (the template's instruction)
    go through the model once per micro-batch, every row continuing from its KV cache: the
    same loss and gradient; the micro-world's step 1.2-1.5x faster (docs/benchmarks.md).
    Needs a model whose layers are all full attention (else rows are computed whole)."""
    out: str = "runs/sft"
    seed: int = 0
    """Seed of the data order and the held-out split."""

    def validate(self) -> None:
        ensure(
            bool(self.data.strip()),
            "data",
            "a JSONL/Parquet file, hf:NAME or microworld:general",
            self.data,
        )
        ok = math.isfinite(self.mix_ratio) and self.mix_ratio > 0
        ensure(ok, "mix_ratio", "> 0 (rows of mix per row of data)", self.mix_ratio)
        ok = math.isfinite(self.eval_size) and 0 <= self.eval_size < 1
        ensure(ok, "eval_size", "a share in [0, 1) (0 = none)", self.eval_size)
        for key in ("prompt_field", "completion_field", "messages_field"):
            value = getattr(self, key)
            ensure(bool(value.strip()), key, "a column name", value)
        ensure(
            self.max_length >= 0, "max_length", ">= 0 (0 = the model's context)", self.max_length
        )
        ensure(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)
        ensure(self.micro_batch_tokens >= 1, "micro_batch_tokens", ">= 1", self.micro_batch_tokens)
        ok = self.micro_batch_cut_cost >= 0
        ensure(ok, "micro_batch_cut_cost", ">= 0 (0 = auto)", self.micro_batch_cut_cost)
        ensure(self.batching in BATCHING, "batching", " or ".join(BATCHING), self.batching)
        super().validate()
