"""Preference reward models (`r1lab rm`): the Bradley-Terry reward models of DeepSeek-R1's last
RL stage, one for helpfulness and one for harmlessness.

- `r1lab.rm.config`: `RMConfig`, every default in one place.
- `r1lab.rm.data`: preference rows (JSONL, Parquet, hf:, microworld:helpful|harmless|overall)
  -> chosen and rejected token sequences -> micro-batches that keep each pair together.
- `r1lab.rm.model`: the reward of a sequence (the score head on its last token) and loading.
- `r1lab.rm.trainer`: `train_step`, held-out pair accuracy and the command's `run`, over the run
  layer (`r1lab.run`).
"""
