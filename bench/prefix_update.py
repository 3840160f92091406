"""Prefix sharing in the trainer's forward+backward: one pass per prompt vs one per completion.

    .venv/bin/python bench/prefix_update.py                 # shipped base model
    .venv/bin/python bench/prefix_update.py --model runs/demo/checkpoints/step-000040

Samples one default GRPO batch (16 arithmetic prompts x G = 8, temperature 1, up to 160 tokens),
then times forward + backward over it in micro-batches of 32 with `completion_logits` given
group_size 1 (every row recomputes its prompt) and G (each prompt once, its KV cache shared by
its G completions), alternating, median of the repeats. Also reports the largest logit
difference between the two, which should be float noise.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from r1lab.evaluate import load_model
from r1lab.microworld import DEFAULT_BASE
from r1lab.rollout import Sampler, SamplingParams, collate
from r1lab.rollout.batch import completion_logits
from r1lab.tasks import TaskConfig, make_task, render_prompt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(DEFAULT_BASE))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--micro-batch", type=int, default=32)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    model, tok = load_model(args.model, "cpu")
    g = 8
    examples = make_task(TaskConfig()).examples("train", 16)
    prompts = [render_prompt(e["question"], "r1zero", tok) for e in examples]
    params = SamplingParams(temperature=1.0, max_new_tokens=160, stop=("</answer>",), n=g)
    groups = Sampler(model, tok).generate(prompts, params, seed=0)
    batch = collate([c for grp in groups for c in grp], tok.pad_token_id)
    rows = batch.input_ids.shape[0]

    def forward_backward(group_size: int) -> float:
        model.zero_grad()
        t0 = time.perf_counter()
        for i in range(0, rows, args.micro_batch):
            logits = completion_logits(model, batch, slice(i, i + args.micro_batch), group_size)
            logits.float().logsumexp(-1).sum().backward()
        return time.perf_counter() - t0

    with torch.no_grad():
        mask = batch.completion_mask.bool()
        plain = completion_logits(model, batch)[mask]
        shared = completion_logits(model, batch, group_size=g)[mask]
        diff = (plain - shared).abs().max().item()
    times: dict[int, list[float]] = {1: [], g: []}
    forward_backward(g)  # warm-up
    for _ in range(args.repeats):
        for group_size in times:
            times[group_size].append(forward_backward(group_size))
    plain_s, shared_s = (statistics.median(times[k]) for k in (1, g))
    print(
        f"batch: {rows} rows, prompt columns {batch.prompt_len}, "
        f"mean completion {batch.completion_mask.sum(1).mean():.1f} tokens; "
        f"{args.threads} threads, torch {torch.__version__}"
    )
    print("| forward + backward | seconds (median) |\n|---|---:|")
    print(f"| every row recomputes its prompt | {plain_s:.2f} |")
    print(f"| each prompt once, cache shared by its {g} completions | {shared_s:.2f} |")
    print(f"\nspeed-up {plain_s / shared_s:.2f}x; max |logit difference| {diff:.1e}")


if __name__ == "__main__":
    main()
