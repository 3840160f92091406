"""`r1lab rm`: a Bradley-Terry reward model on chosen/rejected pairs.

    r1lab rm                                                  # micro-world helpfulness pairs
    r1lab rm data=microworld:harmless out=runs/rm-harmless
    r1lab rm data=prefs.jsonl model=runs/sft template=chat
    r1lab rm --resume runs/rm

`train_step` is one optimizer step, top to bottom: the step's pairs -> micro-batches (each
pair's two sequences together) -> rewards, the pairs' mean Bradley-Terry loss, backward ->
clip -> optimizer step -> metrics. Held-out pair accuracy is measured every `eval_every` steps;
at the end the held-out margins (r_chosen - r_rejected) are written with their histogram. The
run around it (run directory, checkpoints, resume, Ctrl-C, progress, data parallel) is the run
layer `r1lab sft` and `r1lab zero` stand on (`r1lab.run`).
"""

from __future__ import annotations

import hashlib
import json
import time
from array import array
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from r1lab.checkpoint import own_memory
from r1lab.rm.config import RMConfig
from r1lab.rm.data import (
    Pair,
    PairFields,
    RMData,
    collate,
    formats,
    load_pairs,
    micro_batches,
    plan,
)
from r1lab.rm.loss import pair_accuracy, pair_losses
from r1lab.rm.model import load_reward_model, sequence_rewards
from r1lab.rollout.batch import default_cut_cost
from r1lab.run.distributed import all_gather_object, all_max, all_sum, is_main, shard, teardown
from r1lab.run.fsdp import accumulate, gathered, shard_model
from r1lab.run.loop import open_or_resume, optimizer_step, restore, train_loop
from r1lab.sft.data import batch_rows
from r1lab.sft.trainer import make_optimizer

RM_KEYS = (
    ("loss", "loss/rm"),
    ("acc", "rm/accuracy"),
    ("eval acc", "eval/accuracy"),
    ("tok/s", "perf/tokens_per_s"),
    ("s", "time/step"),
)
"""What `r1lab rm` shows per step: (label, metric name)."""


@dataclass
class Trainer:
    """Everything a step needs, passed explicitly (STYLE.md 7)."""

    cfg: RMConfig
    model: Any
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    data: RMData
    total_steps: int
    device: torch.device
    dtype: torch.dtype = torch.float32
    """What the steps and evaluations compute in (`r1lab.run.model.autocast`); weights are fp32."""
    data_hash: str = ""
    pad_id: int = 0
    cut_cost: int = 64
    nan_streak: int = 0


# ---------------------------------------------------------------------------------------------
# One step


def train_step(t: Trainer, step: int) -> dict[str, float]:
    """One optimizer step over the step's pairs; return its metrics.

    Data-parallel: each rank takes every world_size-th pair of the step's batch; the pair count
    the loss divides by and the gradients are summed over ranks, so every rank applies the
    update of one process with the whole batch."""
    cfg = t.cfg
    t0 = time.perf_counter()

    # 1. The step's pairs (a fresh seeded order each epoch; this rank's share), in micro-batches
    # that keep a pair's two sequences together.
    rows = batch_rows(len(t.data.train), cfg.batch_size, cfg.seed, step)
    batch = [t.data.train[i] for i in rows[shard(len(rows))]]
    micro = micro_batches(batch, cfg.micro_batch_tokens, t.cut_cost, t.pad_id)
    num_pairs = int(all_sum([len(batch)])[0])

    # 2. Rewards of both sides, the pairs' loss summed over the micro-batch and divided by the
    # batch's pair count (every rank's), backward; gradients accumulate and are summed over ranks.
    t.model.train()
    loss_sum = correct = margin_sum = 0.0
    with accumulate(t.model) as comm:
        for mb in micro:
            mb = mb.to(t.device)
            rewards = sequence_rewards(t.model, mb.input_ids, mb.position_ids, mb.last)  # [2P]
            chosen, rejected = rewards[0::2], rewards[1::2]  # [P], [P]
            loss = pair_losses(chosen, rejected, cfg.center_coef).sum() / num_pairs
            loss.backward()
            loss_sum += loss.item()
            correct += pair_accuracy(chosen, rejected).sum().item()
            margin_sum += (chosen - rejected).sum().item()
    loss_sum, correct, margin_sum = all_sum([loss_sum, correct, margin_sum])

    # 3. Clip and step; a non-finite loss or gradient skips the step (nothing applied).
    out = optimizer_step(t, loss_sum)
    seconds = all_max(time.perf_counter() - t0)

    # 4. Metrics, over every rank's pairs.
    tokens, positions, n_micro = all_sum(
        [
            sum(len(p.chosen) + len(p.rejected) for p in batch),
            sum(mb.input_ids.numel() for mb in micro),
            len(micro),
        ]
    )
    out.update(
        {
            "loss/rm": loss_sum,
            "rm/accuracy": correct / max(num_pairs, 1),
            "rm/margin": margin_sum / max(num_pairs, 1),
            "batch/pairs": float(num_pairs),
            "batch/tokens": tokens,
            "batch/micro_batches": n_micro,
            "batch/padding_frac": 1 - tokens / max(positions, 1),
            "train/epoch": (step + 1) / -(-len(t.data.train) // cfg.batch_size),
            "time/step": seconds,
            "time/comm": comm.seconds,
            "perf/tokens_per_s": tokens / max(seconds, 1e-9),
        }
    )
    return out


# ---------------------------------------------------------------------------------------------
# Held-out pairs


def pair_margins(t: Trainer, pairs: list[Pair]) -> list[tuple[float, float, str]]:
    """(r_chosen, r_rejected, kind) of each pair under the current weights, in pair order.
    Each data-parallel rank scores its share; the shares are gathered on every rank."""
    t.model.eval()
    mine = list(range(len(pairs)))[shard(len(pairs))]
    scored: list[tuple[int, float, float, str]] = []
    with torch.no_grad(), gathered(t.model):
        for group in plan([pairs[i] for i in mine], t.cfg.micro_batch_tokens, t.cut_cost):
            mb = collate([pairs[mine[k]] for k in group], t.pad_id).to(t.device)
            r = sequence_rewards(t.model, mb.input_ids, mb.position_ids, mb.last).tolist()
            for j, k in enumerate(group):
                i = mine[k]
                scored.append((i, r[2 * j], r[2 * j + 1], pairs[i].kind))
    everyone = sorted(s for part in all_gather_object(scored) for s in part)
    return [(c, r, kind) for _, c, r, kind in everyone]


def eval_metrics(scored: list[tuple[float, float, str]], center_coef: float) -> dict[str, float]:
    """Held-out accuracy (strictly higher reward for chosen), loss, mean margin and rewards,
    and accuracy per kind where pairs have kinds."""
    if not scored:
        return {}
    chosen = torch.tensor([s[0] for s in scored], dtype=torch.float64)
    rejected = torch.tensor([s[1] for s in scored], dtype=torch.float64)
    correct = pair_accuracy(chosen, rejected)
    out = {
        "eval/accuracy": correct.mean().item(),
        "eval/loss": pair_losses(chosen, rejected, center_coef).mean().item(),
        "eval/margin": (chosen - rejected).mean().item(),
        "eval/reward_chosen": chosen.mean().item(),
        "eval/reward_rejected": rejected.mean().item(),
        "eval/ties": (chosen == rejected).double().mean().item(),
        "eval/pairs": float(len(scored)),
    }
    by_kind: dict[str, list[float]] = defaultdict(list)
    for (_, _, kind), ok in zip(scored, correct.tolist(), strict=True):
        if kind:
            by_kind[kind].append(ok)
    for kind, oks in sorted(by_kind.items()):
        out[f"eval/accuracy/{kind}"] = sum(oks) / len(oks)
    return out


def write_margins(run_dir: Path, step: int, scored: list[tuple[float, float, str]]) -> Path:
    """margins.json (each held-out pair's rewards, margin and kind) and margins.png (the
    histogram of margins, right and wrong sides of 0 apart)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    margins = [c - r for c, r, _ in scored]
    rows = [{"chosen": c, "rejected": r, "margin": c - r, "kind": k} for (c, r, k) in scored]
    (run_dir / "margins.json").write_text(json.dumps({"step": step, "pairs": rows}) + "\n")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = 40
    ax.hist([m for m in margins if m > 0], bins=bins, color="tab:green", alpha=0.7, label="right")
    ax.hist([m for m in margins if m <= 0], bins=bins, color="tab:red", alpha=0.7, label="wrong")
    ax.axvline(0, color="black", lw=0.8)
    right = sum(m > 0 for m in margins) / max(len(margins), 1)
    ax.set_title(f"held-out margins r(chosen) - r(rejected), step {step}: {right:.1%} right")
    ax.set_xlabel("margin")
    ax.set_ylabel("pairs")
    ax.legend()
    fig.tight_layout()
    path = run_dir / "margins.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------
# Building a run


def fingerprint(pairs: list[Pair]) -> str:
    """A digest of the training pairs, saved with each checkpoint: a resumed run whose data (or
    tokenizer, template, max_length, label noise) changed is refused."""
    h = hashlib.sha1()
    for p in pairs:
        h.update(array("q", (len(p.chosen), *p.chosen, len(p.rejected), *p.rejected)).tobytes())
    return h.hexdigest()


def build(cfg: RMConfig, checkpoint: Path | None = None) -> Trainer:
    """Data first (its errors cost no weight loading), then the model and the optimizer."""
    from r1lab.run.model import context_length, load_tokenizer, resolve_device, training_dtype

    device = resolve_device(cfg.device)
    dtype = training_dtype(cfg.dtype, device)  # float16 fails here, before anything loads
    tokenizer = load_tokenizer(cfg.model, cfg.template)
    max_length = cfg.max_length or context_length(cfg.model)
    fields = PairFields(cfg.prompt_field, cfg.chosen_field, cfg.rejected_field)
    data = load_pairs(
        cfg.data,
        cfg.template,
        tokenizer,
        max_length,
        eval_data=cfg.eval_data,
        eval_size=cfg.eval_size,
        seed=cfg.seed,
        fields=fields,
        pairs=cfg.pairs,
        noise=cfg.label_noise,
    )
    model, tokenizer, new_head = load_reward_model(
        str(checkpoint or cfg.model), str(device), cfg.dtype, cfg.template, train=True
    )
    model = own_memory(model)
    if cfg.fsdp:
        model = shard_model(model)
    per_epoch = -(-len(data.train) // cfg.batch_size)
    total = cfg.steps or cfg.epochs * per_epoch
    optimizer, scheduler = make_optimizer(model, cfg, total)  # type: ignore[arg-type]
    if is_main():
        held = f"{len(data.eval)} held out ({data.eval_source})" if data.eval else "none held out"
        notes = [f"{data.dropped} longer than {max_length} tokens"] if data.dropped else []
        notes += [f"{data.identical} with identical responses"] if data.identical else []
        dropped = f"; dropped {', '.join(notes)}" if notes else ""
        head = "a new score head" if new_head else "its score head"
        print(
            f"rm: {len(data.train)} training pairs, {held}{dropped}; {total} steps of "
            f"{cfg.batch_size} pairs; {cfg.model} with {head}"
        )
    return Trainer(
        cfg=cfg,
        model=model,
        tokenizer=tokenizer,
        optimizer=optimizer,
        scheduler=scheduler,
        data=data,
        total_steps=total,
        device=device,
        dtype=dtype,
        data_hash=fingerprint(data.train),
        pad_id=tokenizer.pad_token_id or 0,
        cut_cost=cfg.micro_batch_cut_cost or default_cut_cost(device.type),
    )


# ---------------------------------------------------------------------------------------------
# The command


def run(cfg: RMConfig, command: str = "rm") -> int:
    """Train, in a fresh run directory or (cfg.resume) the one being continued. The new score
    head is drawn from `seed` (set by `open_or_resume` before the model loads)."""
    opened = open_or_resume(cfg)
    t = build(opened.cfg, opened.checkpoint)
    changed = (
        f"the training pairs differ from those the run started with ({t.cfg.data}, template, "
        "tokenizer, max_length or label_noise changed)"
    )
    start = restore(t, opened, changed)
    scored: list[tuple[float, float, str]] = []

    def evaluate() -> dict[str, float]:
        scored[:] = pair_margins(t, t.data.eval)
        return eval_metrics(scored, t.cfg.center_coef)

    # How prompts were rendered goes with the weights, so a scorer renders them the same way.
    prompt_format, response_format = formats(t.cfg.data)
    meta = {
        "command": "r1lab rm",
        "template": t.cfg.template,
        "prompt_format": prompt_format,
        "response_format": response_format,
        "data": t.cfg.data,
    }
    train_loop(
        t,
        opened,
        start,
        command,
        RM_KEYS,
        train_step=lambda step: train_step(t, step),
        evaluate=evaluate if t.data.eval else None,
        meta=meta,
    )
    if is_main():
        _finish(opened.run_dir, t.total_steps, scored)
    teardown()
    return 0


def _finish(run_dir: Path, step: int, scored: list[tuple[float, float, str]]) -> None:
    from r1lab.plotting import plot_run
    from r1lab.tracking import read_metrics

    plot_run(run_dir)
    rows = [r for r in read_metrics(run_dir) if "eval/accuracy" in r]
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        print(
            f"\nheld-out pair accuracy, step {first['step']} -> step {last['step']}: "
            f"{first['eval/accuracy']:.1%} -> {last['eval/accuracy']:.1%}"
        )
    if scored:
        write_margins(run_dir, step, scored)
    print(f"run directory: {run_dir} (plot: {run_dir / 'plot.png'}, margins: margins.png)")
