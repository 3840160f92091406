"""Supervised fine-tuning (`r1lab sft`): the trainer every later R1 stage uses (cold start,
SFT on rejection-sampled data, distillation).

- `r1lab.sft.config`: `SFTConfig`, every default in one place.
- `r1lab.sft.data`: rows (JSONL, Parquet, hf:, microworld:general) -> rendered prompt and
  completion -> token sequences -> micro-batches (grouped by length, or packed).
- `r1lab.sft.loss`: the completion-only token-mean loss and the warm-up + cosine schedule.
- `r1lab.sft.trainer`: `train_step` and the command's `run`, over the run layer (`r1lab.run`).
"""
