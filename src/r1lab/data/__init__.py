"""Datasets in, datasets out: the data stages of DeepSeek-R1 (STYLE.md's `data/`).

- `r1lab.data.coldstart`: `r1lab coldstart`, the cold-start data builder (the command and its
  config, the balanced build loop, the dataset and its stats report);
- `r1lab.data.sources`: where candidates come from (few-shot exemplars, a direct request,
  R1-Zero checkpoints and saved samples);
- `r1lab.data.filters`: the rules that drop candidates, each with its reason;
- `r1lab.data.readable`: the readable output format and the rule that rewrites into it;
- `r1lab.data.rewriter`: optional rewriter models (a local HF model, an OpenAI-compatible
  chat endpoint).

Importing this package imports neither torch nor transformers.
"""
