"""r1lab's SFT step against TRL's SFTTrainer on the same model, data, batches and optimizer.

    .venv/bin/python bench/vs_trl_sft.py --threads 1 --plot docs/img/vs_trl_sft.png   # docs/benchmarks.md
    .venv/bin/python bench/vs_trl_sft.py --batch 16 --micro-batch 4 --rows 320 --json /tmp/sft.json

Needs the `bench` extra (TRL). Both sides: the shipped base model (fp32, CPU, 2 torch threads),
the same rows (micro-world arithmetic questions with worked solutions in R1-Zero's tags, and
general requests with their answers, in the R1-Zero template), completion-only loss, the same
optimisation batches in the same order (TRL samples sequentially through the rows in the order
r1lab's seeded epochs take them), batch B sequences per optimizer step, r1lab's AdamW with
warm-up + cosine on both sides. TRL runs its defaults otherwise: micro-batches of M rows padded
to their longest, B / M accumulation steps. r1lab cuts each batch by length (`batching=grouped`,
at most M x the longest sequence's positions per micro-batch, so never more than TRL's largest)
and, as a third side, packs it (`batching=packed`, the same budget per pack); a fourth,
`whole`, is grouped with `share_prefix=false` (every row computes the template's instruction
itself, as before the shared prefix), to measure what the shared prefix saves.

The sides alternate in one process: every TRL optimizer step ends in a callback that runs one
step of each r1lab side, so load from other processes hits all alike. A TRL step is the wall
time between the end of the previous callback and the end of this step (data loading and
collation included). Tokens per second count every real (non-padding) token of the batch, the
same batch on every side. Each step's process CPU time is recorded too: with `--threads 1` it
measures the work a side does, little disturbed by other jobs on a shared machine (wall time
there includes waiting for a core). Peak RSS is measured in one child process per side (build +
3 steps).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from r1lab.microworld.general import sft_examples, write_jsonl
from r1lab.sft.config import SFTConfig
from r1lab.sft.data import batch_rows
from r1lab.sft.trainer import build, make_optimizer, train_step
from r1lab.tasks import TaskConfig, make_task, render_prompt

ASSET_BASE = Path(__file__).resolve().parents[1] / "src" / "r1lab" / "assets" / "base"


# ---------------------------------------------------------------------------------------------
# Data


def worked(ex: dict) -> str:
    """A column-by-column solution of an arithmetic example, in R1-Zero's tags."""
    a, b, op = ex["a"], ex["b"], ex["op"]
    steps = []
    if op == "+":
        da, db, carry = str(a)[::-1], str(b)[::-1], 0
        for i in range(max(len(da), len(db))):
            x = int(da[i]) if i < len(da) else 0
            y = int(db[i]) if i < len(db) else 0
            s = x + y + carry
            steps.append(f"{x} + {y} + {carry} = {s}, write {s % 10} carry {s // 10}.")
            carry = s // 10
    else:
        carry = 0
        for i, d in enumerate(str(a)[::-1]):
            p = int(d) * b + carry
            steps.append(f"digit {i}: {d} * {b} + {carry} = {p}, write {p % 10} carry {p // 10}.")
            carry = p // 10
    return f" <think> {' '.join(steps)} So the answer is {ex['answer']}. </think> <answer> {ex['answer']} </answer>"


def make_rows(n: int) -> list[dict[str, str]]:
    """n rows, two thirds arithmetic with worked solutions, a third general requests."""
    task = make_task(TaskConfig(name="arithmetic"))
    arith = [
        {"prompt": ex["question"], "completion": worked(ex)}
        for ex in task.examples("train", n - n // 3)
    ]
    general = [
        {"prompt": r["prompt"], "completion": " " + r["response"]} for r in sft_examples(n // 3)
    ]
    rows = arith + general
    import random

    random.Random(0).shuffle(rows)
    return rows


R1LAB_SIDES = {
    "grouped": ("grouped", True),
    "whole": ("grouped", False),
    "packed": ("packed", True),
}
"""r1lab's sides: (batching, share_prefix)."""


def r1lab_config(
    args: argparse.Namespace, data: str, batching: str, budget: int, share_prefix: bool = True
) -> SFTConfig:
    return SFTConfig(
        model=args.model,
        data=data,
        eval_size=0.0,
        template="r1zero",
        batch_size=args.batch,
        micro_batch_tokens=budget,
        batching=batching,
        share_prefix=share_prefix,
        steps=args.steps,
        lr=args.lr,
        warmup_steps=2,
        seed=0,
        threads=args.threads,
        progress=False,
        device="cpu",
        dtype="float32",
    )


def prepare(args: argparse.Namespace, workdir: str) -> tuple[str, list[dict], int]:
    """The data file, the rows in the order r1lab's steps take them, and the micro-batch budget."""
    rows = make_rows(args.rows)
    data = str(write_jsonl(rows, Path(workdir) / "rows.jsonl"))
    order = [i for s in range(args.steps) for i in batch_rows(len(rows), args.batch, 0, s)]
    ordered = [
        {"prompt": render_prompt(rows[i]["prompt"]), "completion": rows[i]["completion"]}
        for i in order
    ]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model)
    longest = max(len(tok(r["prompt"] + r["completion"])["input_ids"]) + 1 for r in ordered)
    return data, ordered, args.micro_batch * longest


# ---------------------------------------------------------------------------------------------
# TRL


def build_trl(args: argparse.Namespace, ordered: list[dict], out_dir: str, callbacks=()):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig as TrlConfig
    from trl import SFTTrainer

    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    targs = TrlConfig(
        output_dir=out_dir,
        completion_only_loss=True,
        per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=args.batch // args.micro_batch,
        train_sampling_strategy="sequential",  # r1lab's batches, in r1lab's order
        max_length=None,
        padding_free=args.trl_padding_free,
        max_steps=args.steps,
        learning_rate=args.lr,
        max_grad_norm=1.0,
        seed=0,
        use_cpu=True,
        bf16=False,
        fp16=False,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    cfg = r1lab_config(args, "unused", "grouped", 1)
    return SFTTrainer(
        model=model,
        args=targs,
        train_dataset=Dataset.from_list(ordered),
        processing_class=tok,
        callbacks=list(callbacks),
        optimizers=make_optimizer(model, cfg, args.steps),  # r1lab's AdamW and schedule
    )


# ---------------------------------------------------------------------------------------------
# Memory


def peak_rss_mib() -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork and exec.
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory_child(side: str, args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    args.steps = 3
    with tempfile.TemporaryDirectory() as d:
        data, ordered, budget = prepare(args, d)
        if side == "trl":
            build_trl(args, ordered, d).train()
        else:
            batching, share = R1LAB_SIDES[side.split("-")[1]]
            t = build(r1lab_config(args, data, batching, budget, share))
            for s in range(3):
                train_step(t, s)
    print(json.dumps({"side": side, "peak_rss_mib": peak_rss_mib()}))


def measure_memory(args: argparse.Namespace) -> dict[str, float]:
    out = {}
    for side in (*(f"r1lab-{k}" for k in R1LAB_SIDES), "trl"):
        cmd = [sys.executable, __file__, "--memory-child", side, "--model", args.model]
        cmd += ["--batch", str(args.batch), "--micro-batch", str(args.micro_batch)]
        cmd += ["--threads", str(args.threads)]
        cmd += ["--rows", str(args.rows)] + (
            ["--trl-padding-free"] if args.trl_padding_free else []
        )
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[side] = json.loads(res.stdout.strip().splitlines()[-1])["peak_rss_mib"]
    return out


# ---------------------------------------------------------------------------------------------
# Side by side


def side_by_side(args: argparse.Namespace) -> dict:
    from transformers import TrainerCallback

    torch.set_num_threads(args.threads)
    rec: dict = {"loss": {}, "cpu": {}, "tokens": [], "padding": []}
    for side in ("trl", *R1LAB_SIDES):
        rec[side], rec["loss"][side], rec["cpu"][side] = [], [], []
    with tempfile.TemporaryDirectory() as d:
        data, ordered, budget = prepare(args, d)
        sides = {
            name: build(r1lab_config(args, data, batching, budget, share))
            for name, (batching, share) in R1LAB_SIDES.items()
        }
        clock = {"t": 0.0, "cpu": 0.0}

        class Alternate(TrainerCallback):
            def on_train_begin(self, targs, state, control, **kw):
                clock["t"], clock["cpu"] = time.perf_counter(), time.process_time()

            def on_step_end(self, targs, state, control, **kw):
                step = state.global_step - 1
                rec["trl"].append(time.perf_counter() - clock["t"])
                rec["cpu"]["trl"].append(time.process_time() - clock["cpu"])
                for name, t in sides.items():
                    t0, c0 = time.perf_counter(), time.process_time()
                    row = train_step(t, step)
                    rec[name].append(time.perf_counter() - t0)
                    rec["cpu"][name].append(time.process_time() - c0)
                    rec["loss"][name].append(row["loss/sft"])
                    if name == "grouped":
                        rec["tokens"].append(row["batch/tokens"])
                        rec["padding"].append(row["batch/padding_frac"])
                times = " ".join(f"{k} {rec[k][-1]:.2f}s" for k in ("trl", *R1LAB_SIDES))
                print(f"step {step}: {times} load {os.getloadavg()[0]:.2f}", file=sys.stderr)
                clock["t"], clock["cpu"] = time.perf_counter(), time.process_time()

            def on_log(self, targs, state, control, logs=None, **kw):
                if logs and "loss" in logs:
                    rec["loss"]["trl"].append(logs["loss"])

        trainer = build_trl(args, ordered, d, [Alternate()])
        trainer.train()
        rec["trl_padded_frac"] = _trl_padding(trainer, args)
    return rec


def _trl_padding(trainer, args) -> float:
    """Share of the positions TRL's micro-batches compute that are padding (its collator)."""
    loader = trainer.get_train_dataloader()
    real = total = 0
    for i, batch in enumerate(loader):
        if i >= args.steps * (args.batch // args.micro_batch):
            break
        mask = batch.get("attention_mask")
        ids = batch["input_ids"]
        total += ids.numel()
        real += int(mask.sum()) if mask is not None else ids.numel()
    return 1 - real / max(total, 1)


def report(args: argparse.Namespace, rec: dict, mem: dict) -> dict:
    w = args.warmup
    sides = ("trl", *R1LAB_SIDES)
    med = {k: statistics.median(rec[k][w:]) for k in sides}
    cpu = {k: statistics.median(rec["cpu"][k][w:]) for k in sides}
    tokens = statistics.mean(rec["tokens"][w:])
    tps = {k: tokens / v for k, v in med.items()}
    tps_cpu = {k: tokens / v for k, v in cpu.items()}
    n = min(len(v) for v in rec["loss"].values())
    diff = max(abs(rec["loss"]["trl"][i] - rec["loss"]["grouped"][i]) for i in range(n))
    return {
        "steps_timed": len(rec["trl"]) - w,
        "step_s": med,
        "tokens_per_s": tps,
        "speedup_vs_trl": {k: tps[k] / tps["trl"] for k in R1LAB_SIDES},
        "cpu_s": cpu,
        "tokens_per_cpu_s": tps_cpu,
        "speedup_vs_trl_cpu": {k: tps_cpu[k] / tps_cpu["trl"] for k in R1LAB_SIDES},
        "tokens_per_step": tokens,
        "padding_frac": {"grouped": statistics.mean(rec["padding"]), "trl": rec["trl_padded_frac"]},
        "peak_rss_mib": mem,
        "loss": rec["loss"],
        "loss_max_abs_diff_trl_vs_grouped": diff,
        "step_s_all": {k: rec[k] for k in sides},
        "cpu_s_all": rec["cpu"],
        "loadavg": os.getloadavg(),
    }


def plot(loss: dict, path: str, caption: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for (side, ys), style in zip(loss.items(), ("o-", "s--", "x:", "d-."), strict=False):
        ax.plot(range(len(ys)), ys, style, ms=4, label=side)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("train loss (completion tokens)")
    ax.set_title(caption, fontsize=9)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(ASSET_BASE))
    ap.add_argument("--rows", type=int, default=640, help="a multiple of --batch")
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps of each side")
    ap.add_argument("--warmup", type=int, default=1, help="untimed first steps of each side")
    ap.add_argument("--batch", type=int, default=32, help="sequences per optimizer step")
    ap.add_argument("--micro-batch", type=int, default=8, help="TRL rows per micro-batch")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--trl-padding-free", action="store_true", help="TRL's padding_free=True")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory children")
    ap.add_argument("--plot", default="", help="write the loss curves here (PNG)")
    ap.add_argument("--json", default="", help="write all results here")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.batch % args.micro_batch:
        ap.error("--batch must be a multiple of --micro-batch (TRL's accumulation steps)")
    if args.rows % args.batch:
        ap.error("--rows must be a multiple of --batch (every batch full on both sides)")
    if args.memory_child:
        return memory_child(args.memory_child, args)
    rec = side_by_side(args)
    mem = {} if args.no_memory else measure_memory(args)
    res = report(args, rec, mem)
    import transformers
    import trl

    res["versions"] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "python": platform.python_version(),
    }
    print(json.dumps(res, indent=1, default=float))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=float))
    if args.plot:
        plot(
            rec["loss"],
            args.plot,
            f"SFT, micro-world base model: B={args.batch} sequences/step, lr {args.lr:g}\n"
            "the same batches in the same order on every side",
        )
    return None


if __name__ == "__main__":
    main()
