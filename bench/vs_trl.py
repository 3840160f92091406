"""r1lab's GRPO step against TRL's GRPOTrainer on the same model, prompts and settings.

    .venv/bin/python bench/vs_trl.py                        # timing + learning curves + memory
    .venv/bin/python bench/vs_trl.py --plot docs/img/vs_trl.png --json /tmp/vs_trl.json

Needs the `bench` extra (`pip install -e .[bench]`, which brings TRL). Both sides: the shipped
base model, arithmetic prompts in the r1zero template, P = 16 prompts x G = 8, 128 new tokens,
temperature 1, top-p 1, mu = 1, beta = 0.001 against a frozen reference, micro-batch 32 (TRL:
per-device batch 32 x 4 accumulation steps = one generation batch = one optimizer step), lr 1e-4
with r1lab's AdamW and 5-step linear warm-up on both sides,
seed 0, CPU fp32, 2 torch threads. Both stop at EOS or 128 tokens (r1lab's `</answer>` stop string
is switched off: TRL's generate path has no stop strings). TRL scores with r1lab's own composite
reward (format + math accuracy) wrapped in TRL's reward-function signature.

The two run in one process, alternating: every TRL optimizer step ends in a callback that runs one
r1lab step, so load from other processes hits both alike. The first `--warmup` steps of each are
not timed; evaluation (pass@1 on held-out questions, same sampler and grader for both models) runs
in the callback too, outside the timings. Peak RSS is measured in two child processes, one per
side, each building its trainer and running 2 steps (a process's peak RSS is a high-water mark,
so the in-process figure could not separate them). The same run measures the machine's matmul
peak and reports model FLOP utilisation of r1lab's rollout and update.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from r1lab.evaluate import evaluate
from r1lab.rewards import RewardPool
from r1lab.rl.config import AlgoConfig, RolloutConfig, ZeroConfig
from r1lab.rl.trainer import build, build_reward, make_optimizer, train_step
from r1lab.tasks import TaskConfig, make_task, render_prompt

ASSET_BASE = Path(__file__).resolve().parents[1] / "src" / "r1lab" / "assets" / "base"


def r1lab_config(args: argparse.Namespace) -> ZeroConfig:
    return ZeroConfig(
        model=args.model,
        task=TaskConfig(name="arithmetic"),
        rollout=RolloutConfig(
            group_size=args.group, temperature=1.0, max_new_tokens=args.max_new, stop=[]
        ),
        algo=AlgoConfig(
            prompts_per_step=args.prompts, beta=0.001, mu=1, micro_batch=args.micro_batch, lr=1e-4
        ),
        seed=0,
        threads=args.threads,
        progress=False,
        eval_every=0,
    )


# ---------------------------------------------------------------------------------------------
# The TRL side


class R1labRewardForTrl:
    """r1lab's composite reward in TRL's signature: (prompts, completions, **columns) -> [float].

    Scores exactly as r1lab's trainer does: the same CompositeReward, the same example dict plus
    the length keys the trainer adds (num_tokens, max_tokens)."""

    __name__ = "r1lab_composite"

    def __init__(self, composite, columns: list[str], max_tokens: int) -> None:
        self.composite, self.columns, self.max_tokens = composite, columns, max_tokens

    def __call__(self, prompts, completions, completion_ids, **kw) -> list[float]:
        out = []
        for i, (text, ids) in enumerate(zip(completions, completion_ids, strict=True)):
            ex = {k: kw[k][i] for k in self.columns}
            ex.update(num_tokens=len(ids), max_tokens=self.max_tokens)
            out.append(self.composite(text, ex).total)
        return out


def build_trl(cfg: ZeroConfig, steps: int, out_dir: str, callbacks=()):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    tok = AutoTokenizer.from_pretrained(cfg.model)
    model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32)
    task = make_task(cfg.task)
    train = task.examples("train", cfg.train_pool)
    columns = ["question", "answer"]
    data = Dataset.from_list(
        [
            {
                "prompt": render_prompt(ex["question"], cfg.template, tok),
                **{c: ex[c] for c in columns},
            }
            for ex in train
        ]
    )
    a, r = cfg.algo, cfg.rollout
    accumulation = (a.prompts_per_step * r.group_size) // a.micro_batch
    targs = GRPOConfig(
        output_dir=out_dir,
        per_device_train_batch_size=a.micro_batch,
        gradient_accumulation_steps=accumulation,  # one generation batch = one optimizer step
        num_generations=r.group_size,
        max_completion_length=r.max_new_tokens,
        temperature=r.temperature,
        top_p=1.0,
        top_k=0,
        beta=a.beta,
        num_iterations=a.mu,
        epsilon=a.eps_low,
        loss_type="grpo",  # per-sequence token mean, then mean over sequences (r1lab's default)
        scale_rewards="group",
        learning_rate=a.lr,  # the optimizer and schedule themselves are r1lab's (below)
        weight_decay=a.weight_decay,
        max_grad_norm=a.max_grad_norm,
        max_steps=steps,
        seed=cfg.seed,
        use_cpu=True,
        bf16=False,
        fp16=False,
        use_vllm=False,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    reward = R1labRewardForTrl(build_reward(cfg, task), columns, r.max_new_tokens)
    # The same AdamW and warm-up as r1lab's trainer: TRL's own constant_with_warmup starts at
    # lr 0, one step behind r1lab's lr / warmup_steps, which put r1lab a step ahead in learning
    # (and in completion length, so in cost) at every step.
    return GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=targs,
        train_dataset=data,
        processing_class=tok,
        callbacks=list(callbacks),
        optimizers=make_optimizer(model, a),
    )


# ---------------------------------------------------------------------------------------------
# Machine limits and FLOP counts


def matmul_peak(threads: int, n: int = 1024, seconds: float = 2.0) -> float:
    """Best fp32 FLOP/s of an n x n matmul over `seconds` (the machine's practical peak)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t0))
    return best


def copy_bandwidth(mib: int = 256) -> float:
    """Bytes/s of a large tensor copy (read + write), the memory-bandwidth ceiling."""
    x = torch.empty(mib * 2**20 // 4)
    y = torch.empty_like(x)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        y.copy_(x)
        best = max(best, 2 * x.numel() * 4 / (time.perf_counter() - t0))
    return best


def forward_flops_per_token(config, context: float) -> float:
    """2 x matmul parameters (attention projections, MLP, LM head) + attention scores and
    weighted sum (4 x layers x hidden x context) for one token seeing `context` tokens."""
    d, layers, ff = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    kv = d * config.num_key_value_heads // config.num_attention_heads
    per_layer = d * d * 2 + 2 * d * kv + 3 * d * ff  # q, o, k, v, gate/up/down
    matmul_params = layers * per_layer + d * config.vocab_size  # + LM head
    return 2 * matmul_params + 4 * layers * d * context


def one_token_forward_s(model, reps: int = 50, rounds: int = 5) -> float:
    """Wall time of a batch-1, one-token forward with a short cache: the per-call floor
    (Python, dispatch, kernel launch) that every decode step pays whatever the batch size.
    The best of `rounds` rounds of `reps` calls: a floor, so the least disturbed round."""
    from r1lab.rollout.engine import cache_kwargs
    from r1lab.rollout.kv_cache import make_cache

    ids = torch.zeros((1, 8), dtype=torch.long)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(rounds):
            kw = cache_kwargs(model, make_cache(model, 8 + reps + 1))  # outside the timing
            model(input_ids=ids, use_cache=True, **kw)
            t0 = time.perf_counter()
            for i in range(reps):
                pos = torch.tensor([[8 + i]])
                model(input_ids=ids[:, :1], position_ids=pos, use_cache=True, **kw)
            best = min(best, (time.perf_counter() - t0) / reps)
    return best


def limits(args: argparse.Namespace) -> dict[str, float]:
    """The machine's matmul peak, copy bandwidth and the model's one-token forward floor (and
    its size), measured in this process before anything else runs."""
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    peak, bw = matmul_peak(args.threads), copy_bandwidth()
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    params = sum(p.numel() for p in model.parameters())
    return {
        "matmul_peak_gflops": peak / 1e9,
        "copy_bandwidth_gbs": bw / 1e9,
        "one_token_forward_ms": one_token_forward_s(model) * 1e3,
        "params": params,
        "weights_mib": params * 4 / 2**20,
    }


# ---------------------------------------------------------------------------------------------
# Modes


def peak_rss_mib() -> float:
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across fork and exec, so a child
    # started by this (large) process would report at least the parent's peak.
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(side: str, args: argparse.Namespace) -> None:
    """One side alone: build, run 2 steps, print the peak RSS."""
    torch.set_num_threads(args.threads)
    cfg = r1lab_config(args)
    if side == "r1lab":
        with RewardPool(workers=cfg.workers) as pool:
            t = build(cfg, pool)
            for s in range(2):
                train_step(t, s)
    else:
        with tempfile.TemporaryDirectory() as d:
            build_trl(cfg, 2, d).train()
    print(json.dumps({"side": side, "peak_rss_mib": peak_rss_mib()}))


def measure_memory(args: argparse.Namespace) -> dict[str, float]:
    out = {}
    for side in ("r1lab", "trl"):
        cmd = [sys.executable, __file__, "--memory-child", side, "--model", args.model]
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[side] = json.loads(res.stdout.strip().splitlines()[-1])["peak_rss_mib"]
    return out


def side_by_side(args: argparse.Namespace) -> dict:
    """Alternate TRL and r1lab steps in one process; time them and evaluate both."""
    from transformers import TrainerCallback

    torch.set_num_threads(args.threads)
    cfg = r1lab_config(args)
    task = make_task(cfg.task)
    test = task.examples("test", args.eval_questions)
    rec: dict = {"trl": [], "r1lab": [], "r1lab_rows": [], "eval": {"trl": {}, "r1lab": {}}}

    def run_eval(side: str, model, tok, step: int, pool) -> None:
        res = evaluate(
            model,
            tok,
            task,
            test,
            n=args.eval_n,
            ks=[1],
            temperature=1.0,
            top_p=1.0,
            max_new_tokens=args.max_new,
            stop=(),
            greedy=False,
            pool=pool,
            seed=1234,
            progress=False,
        )
        model.train()
        rec["eval"][side][step] = res.metrics["eval/pass@1"]
        print(f"eval {side} step {step}: pass@1 {res.metrics['eval/pass@1']:.3f}", file=sys.stderr)

    with RewardPool(workers=cfg.workers) as pool, tempfile.TemporaryDirectory() as d:
        ours = build(cfg, pool)
        clock = {"t": 0.0}

        class Alternate(TrainerCallback):
            def on_train_begin(self, targs, state, control, model=None, **kw):
                if args.eval_every:
                    run_eval("trl", model, trainer.processing_class, 0, pool)
                    run_eval("r1lab", ours.policy, ours.tokenizer, 0, pool)
                clock["t"] = time.perf_counter()

            def on_step_end(self, targs, state, control, model=None, **kw):
                step = state.global_step  # optimizer steps done
                rec["trl"].append(time.perf_counter() - clock["t"])
                t0 = time.perf_counter()
                row = train_step(ours, step - 1)
                rec["r1lab"].append(time.perf_counter() - t0)
                rec["r1lab_rows"].append(row)
                print(
                    f"step {step}: trl {rec['trl'][-1]:.2f}s r1lab {rec['r1lab'][-1]:.2f}s "
                    f"load {os.getloadavg()[0]:.2f}",
                    file=sys.stderr,
                )
                if args.eval_every and step % args.eval_every == 0:
                    run_eval("trl", model, trainer.processing_class, step, pool)
                    run_eval("r1lab", ours.policy, ours.tokenizer, step, pool)
                clock["t"] = time.perf_counter()

            def on_log(self, targs, state, control, logs=None, **kw):
                if logs and "completions/mean_length" in logs:
                    rec.setdefault("trl_len", []).append(logs["completions/mean_length"])

        trainer = build_trl(cfg, args.steps, d, [Alternate()])
        trainer.train()
    return rec


def report(args: argparse.Namespace, rec: dict, mem: dict, machine: dict[str, float]) -> dict:
    from transformers import AutoConfig, AutoTokenizer

    w = args.warmup
    trl_t, our_t = rec["trl"][w:], rec["r1lab"][w:]
    rows = rec["r1lab_rows"][w:]
    trl_len = rec.get("trl_len", [])[w:]
    n_seq = args.prompts * args.group
    our_len = statistics.mean(r["response/length_mean"] for r in rows)
    trl_mean_len = statistics.mean(trl_len) if trl_len else float("nan")
    med_trl, med_ours = statistics.median(trl_t), statistics.median(our_t)
    tps_trl, tps_ours = n_seq * trl_mean_len / med_trl, n_seq * our_len / med_ours

    # Model FLOP utilisation of r1lab's phases. Prompt tokens count once per prompt (both the
    # sampler and the update share each prompt's prefix across its G completions).
    config = AutoConfig.from_pretrained(args.model)
    tok = AutoTokenizer.from_pretrained(args.model)
    task = make_task(TaskConfig(name="arithmetic"))
    qs = task.examples("train", 64)
    lp = statistics.mean(
        len(tok(render_prompt(q["question"], "r1zero", tok))["input_ids"]) for q in qs
    )
    prompt_fwd = args.prompts * lp * forward_flops_per_token(config, lp / 2)
    comp_fwd = n_seq * our_len * forward_flops_per_token(config, lp + our_len / 2)
    rollout_s = statistics.median(r["time/rollout"] for r in rows)
    update_s = statistics.median(r["time/update"] for r in rows)
    sampler_flops = prompt_fwd + comp_fwd
    update_flops = (prompt_fwd + comp_fwd) * (3 + 1)  # policy fwd+bwd (3x) + reference fwd
    peak = machine["matmul_peak_gflops"] * 1e9
    call_s = machine["one_token_forward_ms"] / 1e3
    return {
        "steps_timed": len(our_t),
        "step_s": {"r1lab": med_ours, "trl": med_trl, "ratio": med_ours / med_trl},
        "step_s_all": {"r1lab": rec["r1lab"], "trl": rec["trl"]},
        "tokens_per_s": {"r1lab": tps_ours, "trl": tps_trl, "ratio": tps_ours / tps_trl},
        "mean_completion_len": {"r1lab": our_len, "trl": trl_mean_len},
        "peak_rss_mib": {**mem, "ratio": mem["r1lab"] / mem["trl"]} if mem else {},
        "r1lab_phases_s": {
            "rollout": rollout_s,
            "reward": statistics.median(r["time/reward"] for r in rows),
            "update": update_s,
        },
        "machine": dict(machine),
        "mfu": {
            "sampler": sampler_flops / rollout_s / peak,
            "update": update_flops / update_s / peak,
            "sampler_gflops": sampler_flops / rollout_s / 1e9,
            "update_gflops": update_flops / update_s / 1e9,
            "prompt_len_mean": lp,
            "decode_floor_s": call_s * args.max_new,
        },
        "eval": rec["eval"],
        "loadavg": os.getloadavg(),
    }


def plot(evals: dict, path: str, caption: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for side, pts in evals.items():
        steps = sorted(int(s) for s in pts)
        ax.plot(steps, [pts[s] if s in pts else pts[str(s)] for s in steps], "o-", label=side)
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("held-out pass@1")
    ax.set_title(caption, fontsize=9)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(ASSET_BASE))
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps of each side")
    ap.add_argument("--warmup", type=int, default=2, help="untimed first steps of each side")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-new", type=int, default=128)
    ap.add_argument("--micro-batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-every", type=int, default=5, help="0: no learning curves")
    ap.add_argument("--eval-questions", type=int, default=64)
    ap.add_argument("--eval-n", type=int, default=4, help="samples per question for pass@1")
    ap.add_argument("--no-memory", action="store_true", help="skip the two memory children")
    ap.add_argument("--plot", default="", help="write the learning curves here (PNG)")
    ap.add_argument("--json", default="", help="write all results here")
    ap.add_argument("--limits-only", action="store_true", help="only the machine's limits")
    ap.add_argument("--memory-child", choices=["r1lab", "trl"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        return memory_child(args.memory_child, args)
    machine = limits(args)
    if args.limits_only:
        print(json.dumps(machine, indent=1))
        return None
    rec = side_by_side(args)
    mem = {} if args.no_memory else measure_memory(args)
    res = report(args, rec, mem, machine)
    import transformers
    import trl

    res["versions"] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "python": platform.python_version(),
    }
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.machine(),
    )
    res["machine"]["cpu"] = f"{cpu}, {os.cpu_count()} cores, {args.threads} torch threads"
    print(json.dumps(res, indent=1, default=float))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=float))
    if args.plot and args.eval_every:
        plot(
            res["eval"],
            args.plot,
            f"P={args.prompts} G={args.group}, {args.max_new} tokens, beta 0.001, lr 1e-4\n"
            f"pass@1 = mean of {args.eval_n} samples x {args.eval_questions} held-out questions",
        )


if __name__ == "__main__":
    main()
