"""Helpers of `bench/gpu_check.sh` (the GPU path, checked on a lent GPU).

    python bench/gpu_weights.py BASE RUN...              # checkpoints: dtypes, weights moved
    python bench/gpu_weights.py --same-metrics RUN RUN   # two runs' metrics, bit for bit
    python bench/gpu_weights.py --random-model DIR       # Qwen2.5-0.5B's shape, random weights
    python bench/gpu_weights.py --peak -- ARGS...         # `r1lab ARGS`, then peak GPU memory

For each run, its last checkpoint's tensors by dtype (mixed precision keeps them fp32) and the
share of the base model's weights the run moved (a trainer that stepped nothing moves none).
--same-metrics compares every metric of every step except times and speeds.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from collections import Counter
from pathlib import Path

import torch
from safetensors.torch import load_file

from r1lab.run.checkpoints import checkpoints

TIMING = ("time/", "perf/")


def weights(path: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(path.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def moved(base: Path, runs: list[Path]) -> int:
    start = weights(base)
    bad = 0
    for run in runs:
        found = checkpoints(run)
        if not found:
            print(f"{run}: no checkpoint")
            bad += 1
            continue
        last = weights(found[-1])
        dtypes = Counter(str(t.dtype).removeprefix("torch.") for t in last.values())
        shared = [k for k in last if k in start and last[k].shape == start[k].shape]
        total = sum(start[k].numel() for k in shared)
        changed = sum(int((last[k].float() != start[k].float()).sum()) for k in shared)
        share = changed / max(total, 1)
        print(
            f"{run.name} ({found[-1].name}): tensors by dtype {dict(dtypes)}; "
            f"{changed:,} of {total:,} base weights moved ({share:.1%})"
        )
        bad += set(dtypes) != {"float32"} or share < 0.5
    return bad


def same_metrics(a: Path, b: Path) -> int:
    rows = []
    for run in (a, b):
        lines = (run / "metrics.jsonl").read_text().splitlines()
        rows.append([json.loads(line) for line in lines if line.strip()])
    differ = Counter()
    compared = 0
    for ra, rb in zip(*rows, strict=True):
        for key in ra.keys() | rb.keys():
            if key.startswith(TIMING):
                continue
            compared += 1
            va, vb = ra.get(key), rb.get(key)
            both_nan = isinstance(va, float) and isinstance(vb, float) and math.isnan(va + vb)
            if va != vb and not both_nan:
                differ[key] += 1
    print(f"{len(rows[0])} rows, {compared} values compared, {sum(differ.values())} differ")
    for key, n in sorted(differ.items()):
        print(f"  {key}: {n} rows, e.g. {next(r.get(key) for r in rows[0] if key in r)}")
    return 0


def random_model(out: Path, hidden: int, layers: int, heads: int, inter: int) -> int:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    base = Path(__file__).resolve().parents[1] / "src" / "r1lab" / "assets" / "base"
    vocab = json.loads((base / "config.json").read_text())["vocab_size"]
    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(base / name, out / name)
    n = sum(p.numel() for p in model.parameters())
    print(f"{out}: Qwen2, {n:,} parameters, hidden {hidden}, {layers} layers")
    return 0


def peak(args: list[str]) -> int:
    from r1lab.cli import main as r1lab

    rc = r1lab(args)
    if torch.cuda.is_available():
        gib = torch.cuda.max_memory_allocated() / 2**30
        print(f"peak GPU memory allocated: {gib:.2f} GiB (rc {rc})")
    return rc


def main() -> int:
    if "--peak" in sys.argv:
        return peak(sys.argv[sys.argv.index("--") + 1 :])
    ap = argparse.ArgumentParser()
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--same-metrics", action="store_true")
    ap.add_argument("--random-model", action="store_true")
    ap.add_argument("--hidden", type=int, default=896)  # Qwen2.5-0.5B's shape
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--heads", type=int, default=14)
    ap.add_argument("--inter", type=int, default=4864)
    args = ap.parse_args()
    if args.same_metrics:
        return same_metrics(*args.paths)
    if args.random_model:
        return random_model(args.paths[0], args.hidden, args.layers, args.heads, args.inter)
    return 1 if moved(args.paths[0], args.paths[1:]) else 0


if __name__ == "__main__":
    sys.exit(main())
