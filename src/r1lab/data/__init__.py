"""Datasets in, datasets out: the data stages of DeepSeek-R1 (STYLE.md's `data/`).

- `r1lab.data.filters`: the rules that drop cold-start candidates, each with its reason;
- `r1lab.data.readable`: the readable output format and the rule that rewrites into it;
- `r1lab.data.rewriter`: optional rewriter models (a local HF model, an OpenAI-compatible
  chat endpoint).

Importing this package imports neither torch nor transformers.
"""
