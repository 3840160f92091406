"""The update's forward+backward: prompts once per pass, micro-batches cut from length-sorted rows.

    .venv/bin/python bench/prefix_update.py                 # shipped base model
    .venv/bin/python bench/prefix_update.py --model runs/demo/checkpoints/step-000040

Samples one default GRPO batch (16 arithmetic prompts x G = 8, temperature 1, up to 160 tokens),
then times forward + backward over it in micro-batches of 32 rows three ways, alternating,
median of the repeats:

- plain: every row recomputes its prompt, micro-batches in sampled order;
- prompt cache: each distinct prompt once per pass (`PromptCache`), same micro-batches;
- prompt cache + sorted: the same, 32-row micro-batches of rows sorted by completion length, so
  each is as wide as its own longest completion;
- prompt cache + cut: sorted rows cut into micro-batches of at most 32 rows where the padding
  saved outweighs a micro-batch's fixed cost (`micro_batches`, what `r1lab zero` does on CPU).

All give the same gradient (tests/rollout/test_prefix_logits.py); the script also reports the
largest logit difference, which should be float noise.

    .venv/bin/python bench/prefix_update.py --shapes --model runs/demo/checkpoints/step-000040

times one micro-batch's forward + backward at several shapes (rows x completion columns, fixed
length, prompts cached), the measurement behind `micro_batches`' fixed cost per micro-batch.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

from r1lab.evaluate import load_model
from r1lab.microworld import DEFAULT_BASE
from r1lab.rollout import Sampler, SamplingParams, collate
from r1lab.rollout.batch import PromptCache, completion_logits, micro_batches
from r1lab.tasks import TaskConfig, make_task, render_prompt


def micro_batch_costs(model, tok, prompts: list[str], repeats: int) -> None:
    """Forward + backward of one micro-batch of b rows x w completion columns (prompts cached
    and not timed): the fixed cost per call and the cost per column."""
    params = SamplingParams(temperature=1.0, max_new_tokens=128, n=8, ignore_eos=True)
    full = [c for grp in Sampler(model, tok).generate(prompts, params, seed=0) for c in grp]
    print("| rows x columns | token columns | ms (median) | ms per column |\n|---|---:|---:|---:|")
    for b, w in [(1, 8), (1, 128), (8, 64), (16, 64), (32, 16), (32, 64), (16, 128), (32, 128)]:
        rows = [replace(c, token_ids=c.token_ids[:w], logprobs=c.logprobs[:w]) for c in full[:b]]
        batch = collate(rows, tok.pad_token_id)
        times = []
        for _ in range(repeats + 1):  # the first is a warm-up
            prompts_kv = PromptCache(model, batch)
            t0 = time.perf_counter()
            logits = completion_logits(model, batch, slice(None), prompts_kv)
            logits.float().logsumexp(-1).sum().backward()
            times.append(time.perf_counter() - t0)
        ms = statistics.median(times[1:]) * 1e3
        print(f"| {b} x {w} | {b * w} | {ms:.1f} | {ms / (b * w):.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(DEFAULT_BASE))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--micro-batch", type=int, default=32)
    ap.add_argument("--shapes", action="store_true", help="instead: one micro-batch's cost")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    model, tok = load_model(args.model, "cpu")
    g = 8
    examples = make_task(TaskConfig()).examples("train", 16)
    prompts = [render_prompt(e["question"], "r1zero", tok) for e in examples]
    params = SamplingParams(temperature=1.0, max_new_tokens=160, stop=("</answer>",), n=g)
    if args.shapes:
        return micro_batch_costs(model, tok, prompts, args.repeats)
    groups = Sampler(model, tok).generate(prompts, params, seed=0)
    batch = collate([c for grp in groups for c in grp], tok.pad_token_id)
    lengths = batch.completion_mask.sum(1)  # [N]
    in_order = torch.arange(len(lengths)).split(args.micro_batch)
    by_length = lengths.sort(descending=True, stable=True).indices.split(args.micro_batch)
    cut = micro_batches(lengths, args.micro_batch, cut_cost=64)
    layouts = {
        "plain": (False, in_order),
        "prompt cache": (True, in_order),
        "prompt cache + sorted": (True, by_length),
        "prompt cache + cut": (True, cut),
    }

    def forward_backward(cached: bool, micro: list[torch.Tensor]) -> float:
        model.zero_grad()
        t0 = time.perf_counter()
        prompts = PromptCache(model, batch) if cached else None
        for rows in micro:
            logits = completion_logits(model, batch, rows, prompts)
            logits.float().logsumexp(-1).sum().backward()
        if prompts is not None:
            prompts.backward()
        return time.perf_counter() - t0

    with torch.no_grad():
        plain = completion_logits(model, batch)
        cached = completion_logits(model, batch, slice(None), PromptCache(model, batch))
        mask = batch.completion_mask[:, : plain.shape[1]].bool()
        diff = (plain - cached)[mask].abs().max().item()
    times: dict[str, list[float]] = {name: [] for name in layouts}
    forward_backward(*layouts["prompt cache + cut"])  # warm-up
    for _ in range(args.repeats):
        for name, layout in layouts.items():
            times[name].append(forward_backward(*layout))
    print(
        f"batch: {len(lengths)} rows, prompt columns {batch.prompt_len}, mean completion "
        f"{lengths.mean():.1f} tokens (longest {int(lengths.max())}); {args.threads} threads, "
        f"torch {torch.__version__}"
    )
    for name, micro in (("in order", in_order), ("sorted", by_length), ("cut", cut)):
        shape = [f"{len(m)}x{int(lengths[m].max())}" for m in micro]
        area = sum(len(m) * int(lengths[m].max()) for m in micro)
        print(f"micro-batches {name} (rows x completion columns): {' '.join(shape)} = {area}")
    base = statistics.median(times["plain"])
    print("| forward + backward | seconds (median) | speed-up |\n|---|---:|---:|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name} | {med:.2f} | {base / med:.2f}x |")
    print(f"\nmax |logit difference| plain vs prompt cache: {diff:.1e}")


if __name__ == "__main__":
    main()
