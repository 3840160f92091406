"""Benchmark `r1lab reject`'s inner loop against Hugging Face `generate` + serial scoring.

    .venv/bin/python bench/reject.py                          # the shipped micro-world base
    .venv/bin/python bench/reject.py --model PATH --questions 64 --n 8

The same work on both sides, in one process, alternating, `--rounds` times, median taken: the
first `--questions` training questions of the micro-world arithmetic task (division, a fifth in
Chinese), `--n` samples each at temperature 0.7, top-p 0.95, at most `--max-new` tokens, ending
at `</answer>`, then every completion graded (format, answer, the report's filters). The model
is prompted with the template its r1lab.json records (r1zero if none) and graded in that
template's format (the readable one for `r1`: a teacher from the R1 stages, `r1lab distill`).

- r1lab: `ModelGenerator.generate` (r1lab's sampler: one prompt pass shared by the n samples,
  finished rows dropped from the batch) and `grade_batch` (the task's rewards in-process).
- peer: `model.generate(num_return_sequences=n, stop_strings=["</answer>"])` on left-padded
  prompts, then each completion graded one at a time with the task's `is_correct`, the format
  reward and `filter_reason`.

Reported: completions per second and the kept share on each side (the two samplers draw
different random numbers, so the kept counts differ by sampling noise only).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from pathlib import Path

import torch

from r1lab.data.reject import (
    Kept,
    RejectConfig,
    Sample,
    filter_reason,
    grade_batch,
    make_generator,
)
from r1lab.rewards import get_reward
from r1lab.run.model import load_model, resolve_model_dir, trained_template
from r1lab.tasks import ArithmeticTask, render_prompt, reward_score

ASSET_BASE = Path(__file__).resolve().parents[1] / "src" / "r1lab" / "assets" / "base"


def r1lab_side(gen, task, cfg, prompts, examples, seed) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    groups = gen.generate(prompts, cfg.n, seed)
    samples = [
        Sample(ex, i, text, done)
        for ex, group in zip(examples, groups, strict=True)
        for i, (text, done) in enumerate(group)
    ]
    rows = grade_batch(task, samples, cfg, None, Kept(), Counter())
    return time.perf_counter() - t0, len(samples), len(rows)


def hf_side(model, tok, task, cfg, prompts, examples, seed) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=True)
    torch.manual_seed(seed)
    out = model.generate(
        **enc,
        do_sample=True,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        num_return_sequences=cfg.n,
        stop_strings=list(cfg.stop),
        tokenizer=tok,
        pad_token_id=tok.pad_token_id,
    )
    texts = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    fmt = get_reward(task.rewards.format)
    kept, seen = 0, Counter()
    for k, text in enumerate(texts):  # serial scoring, one completion at a time
        ex = examples[k // cfg.n]
        if "</answer>" in text:
            text = text[: text.index("</answer>") + len("</answer>")]
        ok = reward_score(fmt(text, ex)) >= 1 and task.is_correct(text, ex)
        ok = ok and filter_reason(text, ex.get("language", "en"), cfg.filters) is None
        if ok and seen[(ex["question"], text)] == 0 and seen[ex["question"]] < cfg.max_per_prompt:
            seen[(ex["question"], text)] += 1
            seen[ex["question"]] += 1
            kept += 1
    return time.perf_counter() - t0, len(texts), kept


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ASSET_BASE))
    ap.add_argument("--questions", type=int, default=32)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new", type=int, default=160)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    path = resolve_model_dir(args.model)
    # Prompted as the checkpoint was trained, graded in its format (a teacher after the cold
    # start writes the readable one).
    template = trained_template(path)
    model, tok = load_model(path, "cpu", "float32", template)
    task = ArithmeticTask(seed=0, ops=("+", "*", "/"), zh_fraction=0.2)
    if template == "r1":
        task.rewards = task.rewards.with_format("format_readable")
    cfg = RejectConfig(model=args.model, n=args.n, max_new_tokens=args.max_new)
    gen = make_generator(cfg, path, model, tok, template)
    examples = [
        ex
        for ex in task.examples("train", args.questions * 2)
        if gen.fits(render_prompt(ex["question"], template, tok))
    ][: args.questions]
    prompts = [render_prompt(ex["question"], template, tok) for ex in examples]
    results: dict[str, list[tuple[float, int, int]]] = {"r1lab": [], "hf": []}
    for r in range(args.rounds):
        results["r1lab"].append(r1lab_side(gen, task, cfg, prompts, examples, r))
        results["hf"].append(hf_side(model, tok, task, cfg, prompts, examples, r))
    print(
        f"{path}, template {template}: "
        f"{len(examples)} questions x {args.n} samples, max {args.max_new} new tokens, "
        f"{args.threads} threads, {args.rounds} rounds (median)\n"
    )
    print("| side | seconds | completions/s | kept |")
    print("|---|---:|---:|---:|")
    speed = {}
    for side, runs in results.items():
        secs = statistics.median(s for s, _, _ in runs)
        done = runs[0][1]
        kept = statistics.median(k for _, _, k in runs)
        speed[side] = done / secs
        print(f"| {side} | {secs:.1f} | {speed[side]:.1f} | {kept:.0f} of {done} |")
    print(f"\nr1lab / HF: {speed['r1lab'] / speed['hf']:.2f}x completions per second")


if __name__ == "__main__":
    main()
