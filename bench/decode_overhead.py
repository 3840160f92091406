"""How much of a decode step is the Hugging Face forward's Python: the model's forward against
the sampler's plain-ops step (`r1lab.rollout.fast_decode.PlainStep`), one token at a time, and
the logits of the two compared.

    .venv/bin/python bench/decode_overhead.py                 # shipped base, 1 and 16 rows
    .venv/bin/python bench/decode_overhead.py --rows 1 4 64 --tokens 600

Why: a GRPO rollout decodes until its longest completion ends, and once few rows are left each
step costs the model's Python rather than its arithmetic (docs/zero.md, the demo's time). Both
sides use the sampler's preallocated cache (`kv_cache.make_cache`), every row at the same
position, under `torch.inference_mode`, same model and inputs, in one process, rounds
alternating; the printed max |logit difference| over all steps says the two compute the same
thing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import AutoModelForCausalLM

from r1lab.microworld import DEFAULT_BASE
from r1lab.rollout.engine import cache_kwargs
from r1lab.rollout.fast_decode import PlainStep, plain_step_unsupported
from r1lab.rollout.kv_cache import make_cache


def run(model, rows: int, tokens: int, rounds: int) -> tuple[float, float, float]:
    """(HF s/token, plain s/token, max |logit diff|), medians over alternating rounds."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (rows, tokens), generator=gen)
    times: dict[str, list[float]] = {"hf": [], "plain": []}
    worst = 0.0
    step = PlainStep(model)
    for _ in range(rounds):
        cache = make_cache(model, tokens)
        hf_logits = []
        t0 = time.perf_counter()
        for t in range(tokens):
            out = model(
                input_ids=ids[:, t : t + 1],
                position_ids=torch.full((rows, 1), t),
                use_cache=True,
                **cache_kwargs(model, cache),
            )
            hf_logits.append(out.logits[:, -1])
        times["hf"].append((time.perf_counter() - t0) / tokens)
        cache = make_cache(model, tokens)
        # The first token through the model: it creates the cache's layers, as the prefill does.
        model(input_ids=ids[:, :1], use_cache=True, **cache_kwargs(model, cache))
        t0 = time.perf_counter()
        plain_logits = [
            step(ids[:, t], torch.full((rows,), t), cache, None, False) for t in range(1, tokens)
        ]
        times["plain"].append((time.perf_counter() - t0) / (tokens - 1))
        for a, b in zip(hf_logits[1:], plain_logits, strict=True):
            worst = max(worst, (a - b).abs().max().item())
    return statistics.median(times["hf"]), statistics.median(times["plain"]), worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(DEFAULT_BASE))
    ap.add_argument("--rows", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--tokens", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    why_not = plain_step_unsupported(model)
    if why_not is not None:
        raise SystemExit(f"{args.model}: the plain step does not cover it ({why_not})")
    print(f"{args.model}, {args.tokens} tokens, {args.threads} threads, median of {args.rounds}")
    print("| rows | HF forward, ms/token | plain ops, ms/token | HF / plain | max abs logit diff |")
    print("|---:|---:|---:|---:|---:|")
    with torch.inference_mode():
        for rows in args.rows:
            hf, plain, worst = run(model, rows, args.tokens, args.rounds)
            print(
                f"| {rows} | {1e3 * hf:.2f} | {1e3 * plain:.2f} | {hf / plain:.2f}x | {worst:.1e} |"
            )


if __name__ == "__main__":
    main()
