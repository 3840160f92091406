"""Data-parallel training on 2 CPU processes (gloo), launched by torchrun from the tests.

What must hold: one GRPO step at world size 2 moves the weights as one process does with the
same global batch; `r1lab zero` under torchrun writes one run (rank 0), resumes after a kill,
sharded and on another number of processes; a rank that raises ends the whole job, naming that
rank's error. Launches are few (each spends ~13 s of the 2 cores starting up): one runs every
single-step mode of dist_worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from r1lab.run import distributed
from r1lab.tracking import read_metrics

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
import dist_worker  # noqa: E402
from sft._helpers import QA  # noqa: E402

# Same weights to float tolerance. The two runs batch other rows together (each rank's forward
# passes see 2 groups, one process's see 4: other matmul shapes and padding widths), so logits
# differ in the last bits of float32 (~1e-7), and the all-reduce adds the ranks' sums in another
# order. Measured: the whole update differs by 1.2e-6 (relative L2), the worst tensor (a norm
# weight, whose gradient is a sum of many cancelling terms) by 2.5e-5. A wiring error (one rank's
# gradient, a per-rank token count) is off by tens of percent.
RTOL_ALL, RTOL_TENSOR = 1e-5, 2e-4


def torchrun(*args: str, nproc: int = 2, **popen) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    cmd += ["--rdzv-backend", "c10d", "--rdzv-endpoint", "localhost:0", *args]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
    )


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc: torchrun's workers are not in its process group)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_job(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and every rank at once, as a crash or an OOM killer would."""
    for pid in [*descendants(proc.pid), proc.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    """The job's output once it ends; a job still running after `timeout` (ranks hung in a
    collective) is killed, every rank, so it does not hold the cores for the rest of the suite."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_job(proc)
        raise
    return out


def test_one_process_is_untouched_by_the_distributed_layer():
    assert distributed.rank_world() == (0, 1) and distributed.is_main()
    assert distributed.all_sum([1.5, 2]) == [1.5, 2.0]
    assert distributed.all_gather_object({"a": 1}) == [{"a": 1}]
    assert distributed.all_reduce_grads([torch.nn.Parameter(torch.ones(2))]) == 0.0
    assert distributed.shard(5) == slice(0, 5, 1)


def same_update(a: dict, b: dict) -> None:
    """Two saved steps moved the weights alike (within RTOL_*) and really moved them."""
    flat_a = torch.cat([d.flatten() for d in a["delta"].values()])
    flat_b = torch.cat([b["delta"][name].flatten() for name in a["delta"]])
    assert flat_a.abs().max() > 1e-4
    rel = ((flat_a - flat_b).norm() / flat_a.norm()).item()
    worst = max(
        ((da - b["delta"][k]).norm() / (da.norm() + 1e-30)).item() for k, da in a["delta"].items()
    )
    print(f"update: relative L2 {rel:.2e}, worst tensor {worst:.2e}")  # pytest -s shows it
    assert rel <= RTOL_ALL
    for name, da in a["delta"].items():
        assert (da - b["delta"][name]).norm() <= RTOL_TENSOR * da.norm() + 1e-12, name


def same_optimizer_state(a: dict, b: dict, sharded: bool) -> None:
    """Both runs saved the same optimizer state (SGD's momentum: the step's gradient), full and
    index-keyed as one process holds it, and it loads back unchanged (what resume does). Under
    fsdp the rank held about half of the parameters."""
    sa, sb = a["opt"]["state"], b["opt"]["state"]
    assert sa.keys() == sb.keys() and len(sa) > 10
    for i, s in sa.items():
        m_a, m_b = s["momentum_buffer"], sb[i]["momentum_buffer"]
        assert m_a.shape == m_b.shape
        assert (m_a - m_b).norm() <= RTOL_TENSOR * m_a.norm() + 1e-12, i
        assert torch.equal(b["again"]["state"][i]["momentum_buffer"], m_b), i
    assert b["again"]["param_groups"] == b["opt"]["param_groups"] == a["opt"]["param_groups"]
    full = sum(s["momentum_buffer"].numel() for s in sa.values())
    assert a["held"] == full
    assert (b["held"] < 0.6 * full) if sharded else (b["held"] == full)


# The modes of dist_worker, each run once on two processes in one torchrun launch (a launch
# spends ~13 s of the 2 cores starting up); the tests compare them with one process. `fail`
# ends the launch, so it goes last.
STEP_MODES = ["step", "step-fsdp", "sft", "sft-fsdp", "rm", "rm-fsdp", "empty", "empty-fsdp"]


@pytest.fixture(scope="module")
def on_two(base_model, tiny_model, tiny_rm, tmp_path_factory) -> dict:
    """Paths: each mode's output (`MODE`) and the data they read; the launch's `log`,
    `returncode` and when it `ended`."""
    d = tmp_path_factory.mktemp("two")
    paths: dict = {"sft-data": d / "data.jsonl", "rm-data": d / "pairs.jsonl"}
    rows = QA[:7]  # of varied lengths; the ranks get 4 and 3
    paths["sft-data"].write_text(
        "".join(json.dumps({"prompt": q, "completion": c}) + "\n" for q, c in rows)
    )
    pairs = [{"prompt": q, "chosen": c, "rejected": c[: len(c) // 2]} for q, c in rows]
    paths["rm-data"].write_text("".join(json.dumps(r) + "\n" for r in pairs))
    extra = {"sft": [str(paths["sft-data"])], "rm": [str(paths["rm-data"])]}
    extra["general"] = [str(tiny_rm)]
    jobs = []
    for mode in [*STEP_MODES, "general", "refuse", "fail"]:
        model = tiny_model if mode in ("refuse", "fail") else base_model
        paths[mode] = d / (f"{mode}.pt" if mode not in ("refuse", "fail") else mode)
        jobs.append([mode, str(model), str(paths[mode]), *extra.get(mode.split("-")[0], [])])
    (d / "jobs.json").write_text(json.dumps(jobs))
    proc = torchrun(str(HERE / "dist_worker.py"), "batch", str(d / "jobs.json"))
    paths["log"] = finish(proc, timeout=400)
    paths["returncode"], paths["ended"] = proc.returncode, time.time()
    return paths


def saved(on_two: dict, mode: str) -> dict:
    """What rank 0 saved for `mode` (the launch's log if it saved nothing)."""
    assert on_two[mode].exists(), on_two["log"][-5000:]
    return torch.load(on_two[mode])


# fsdp=true: parameters, gradients and optimizer state sharded (FSDP2 on gloo), same update.
@pytest.mark.parametrize("mode", ["step", "step-fsdp"])
def test_a_grpo_step_on_two_processes_equals_one_process(base_model, on_two, tmp_path, mode):
    one = tmp_path / "one.pt"
    dist_worker.one_step(str(base_model), str(one))
    a, b = torch.load(one), saved(on_two, mode)
    # The weights move by the same amount on 2 processes, each with 2 of the 4 groups ...
    same_update(a, b)
    same_optimizer_state(a, b, sharded=mode.endswith("fsdp"))
    # ... and the metrics are over the whole batch on both.
    for key in (
        "reward/total",
        "reward/accuracy",
        "reward/format_rate",
        "response/length_mean",
        "loss/total",
        "loss/kl",
        "policy/entropy",
        "policy/grad_norm",
        "policy/advantage_abs_mean",
    ):
        assert b["metrics"][key] == pytest.approx(a["metrics"][key], rel=1e-5, abs=1e-7), key
    assert a["metrics"]["batch/groups"] == b["metrics"]["batch/groups"] == 4
    assert b["metrics"]["time/comm"] > 0 and a["metrics"]["time/comm"] == 0


@pytest.mark.parametrize("mode", ["sft", "sft-fsdp"])
def test_an_sft_step_on_two_processes_equals_one_process(base_model, on_two, tmp_path, mode):
    one = tmp_path / "one.pt"
    dist_worker.one_sft_step(str(base_model), str(one), str(on_two["sft-data"]))
    a, b = torch.load(one), saved(on_two, mode)
    same_update(a, b)
    same_optimizer_state(a, b, sharded=mode.endswith("fsdp"))
    for key in ("loss/sft", "policy/grad_norm", "batch/tokens", "batch/completion_tokens"):
        assert b["metrics"][key] == pytest.approx(a["metrics"][key], rel=1e-5), key
    assert a["metrics"]["batch/sequences"] == b["metrics"]["batch/sequences"] == 7


@pytest.mark.parametrize("mode", ["rm", "rm-fsdp"])
def test_a_reward_model_step_on_two_processes_equals_one_process(
    base_model, on_two, tmp_path, mode
):
    one = tmp_path / "one.pt"
    dist_worker.one_rm_step(str(base_model), str(one), str(on_two["rm-data"]))
    a, b = torch.load(one), saved(on_two, mode)
    same_update(a, b)
    same_optimizer_state(a, b, sharded=mode.endswith("fsdp"))
    assert b["delta"]["score.weight"].abs().max() > 1e-4  # the new head learned, alike
    for key in ("loss/rm", "rm/accuracy", "rm/margin", "policy/grad_norm", "batch/tokens"):
        assert b["metrics"][key] == pytest.approx(a["metrics"][key], rel=1e-5, abs=1e-7), key
    assert a["metrics"]["batch/pairs"] == b["metrics"]["batch/pairs"] == 7


def test_a_step_of_rl_for_all_scenarios_on_two_processes_equals_one_process(
    base_model, tiny_rm, on_two, tmp_path
):
    """Half the prompts general requests: each rank scores its own requests with the reward
    model, and the step equals one process's on the same global batch."""
    one = tmp_path / "one.pt"
    dist_worker.one_general_step(str(base_model), str(one), str(tiny_rm))
    a, b = torch.load(one), saved(on_two, "general")
    same_update(a, b)
    assert 0 < a["metrics"]["batch/general_share"] < 1
    for key in (
        "batch/general_share",
        "reward/total",
        "reward/rm_helpful",
        "reward/general/total",
        "reward/accuracy",
        "loss/total",
        "policy/grad_norm",
    ):
        assert b["metrics"][key] == pytest.approx(a["metrics"][key], rel=1e-5, abs=1e-6), key


def test_distill_under_torchrun_samples_the_teacher_once_and_trains_as_one_process(
    base_model, tiny_model, tmp_path
):
    from r1lab import distill
    from r1lab.config import load_config

    args = [f"teacher={base_model}", f"sft.model={tiny_model}", "reject.prompts=32"]
    args += ["reject.max_new_tokens=100", "reject.progress=false", "reject.threads=1"]
    args += ["sft.progress=false", "sft.threads=1", "sft.eval_every=0", "sft.mix="]
    args += ["sft.batch_size=2", "sft.epochs=1", "sft.eval_size=0"]
    distill.run(load_config(distill.DistillConfig, None, [f"out={tmp_path / 'one'}", *args]))
    proc = torchrun("-m", "r1lab", "distill", f"out={tmp_path / 'two'}", *args)
    out = finish(proc)
    assert proc.returncode == 0, out
    rows = (tmp_path / "one" / "teacher.jsonl").read_text()
    assert rows and (tmp_path / "two" / "teacher.jsonl").read_text() == rows  # written once
    a = [r for r in read_metrics(tmp_path / "one" / "student") if "loss/sft" in r]
    b = [r for r in read_metrics(tmp_path / "two" / "student") if "loss/sft" in r]
    assert len(a) == len(b) >= 2
    for ra, rb in zip(a, b, strict=True):
        assert rb["loss/sft"] == pytest.approx(ra["loss/sft"], rel=1e-4)


@pytest.mark.parametrize("mode", ["empty", "empty-fsdp"])
def test_a_rank_with_no_groups_to_learn_from_takes_the_same_step(on_two, mode):
    b = saved(on_two, mode)
    m = b["metrics"]
    # Rank 1 kept none of its groups (every one scored alike, two rounds), rank 0 its two ...
    assert m["batch/groups"] == 2 and "batch/skipped" not in m
    assert m["batch/zero_std_groups"] == pytest.approx(4 / 6)
    # ... and both applied rank 0's update: the weights moved, the replicas agree.
    assert max(d.abs().max() for d in b["delta"].values()) > 1e-4
    assert m["test/replicas_differ"] == 0.0


def zero_args(model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "-m",
        "r1lab",
        "zero",
        f"model={model}",
        f"out={out}",
        "rollout.group_size=4",
        "rollout.max_new_tokens=16",
        "algo.prompts_per_step=4",
        "train_pool=64",
        "steps=200",
        "eval_every=0",
        "checkpoint_every=1",
        "keep_checkpoints=0",
        "workers=0",
        "threads=1",
        "progress=false",
        *extra,
    ]


def test_a_global_batch_that_does_not_split_into_whole_groups_is_refused(on_two):
    for rank in (0, 1):
        message = Path(f"{on_two['refuse']}.rank{rank}").read_text()
        assert "algo.prompts_per_step=3" in message and "2 processes" in message, message
    assert not on_two["refuse"].exists()  # nothing written


def test_a_rank_that_raises_ends_the_job_with_its_error(on_two):
    run, out = on_two["fail"], on_two["log"]
    assert on_two["returncode"] != 0
    # Rank 0, waiting in a collective, was stopped.
    assert on_two["ended"] - float(Path(f"{run}.started").read_text()) < 120
    assert "rank 1 fails on purpose at step 1" in out
    assert "rank    : 1" in out or "rank: 1" in out, out[-3000:]
    # The checkpoint written before the failure loads.
    last = sorted((run / "checkpoints").iterdir())[-1]
    assert last.name == "step-000001"
    json.loads((last / "r1lab.json").read_text())
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(last)


def test_zero_under_torchrun_resumes_after_a_kill_sharded_and_on_another_world_size(
    tiny_model, tmp_path
):
    """One run through three launches (each launch costs ~13 s of start-up): killed on two
    processes; resumed on two with fsdp (a replicated checkpoint loaded sharded, full
    checkpoints written); continued on one process from the sharded run's checkpoint."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    run = tmp_path / "run"
    proc = torchrun(*zero_args(tiny_model, run, "eval_questions=4", "eval_n=2"))
    deadline = time.time() + 180
    while not (run / "checkpoints" / "step-000002" / "trainer_state.pt").exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline
        time.sleep(0.2)
    kill_job(proc)  # the launcher and both ranks, mid-run
    last = int(sorted((run / "checkpoints").glob("step-*"))[-1].name[5:])
    assert last < 200
    state = torch.load(run / "checkpoints" / "step-000002" / "trainer_state.pt", weights_only=False)
    assert state["world_size"] == 2

    end = last + 2
    resume = ("--resume", str(run), f"steps={end}", "fsdp=true", "eval_every=2")
    proc = torchrun("-m", "r1lab", "zero", *resume)
    out = finish(proc)
    assert proc.returncode == 0, out
    assert out.count(f"(step {last})") == 1  # resumed where it stopped; rank 0 speaks
    assert "continues on" not in out  # saved by 2 processes, continued on 2
    # One line per step (and the closing one): only rank 0 writes metrics, and resuming
    # dropped nothing it kept.
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == list(range(end + 1))
    assert all(r["batch/groups"] == 4 for r in rows if "batch/groups" in r)
    # Rank 0 evaluated with the gathered weights, at the even steps and the last one.
    evals = [r["step"] for r in rows if "eval/pass@1" in r]
    assert evals == [s for s in range(last, end + 1) if s % 2 == 0 or s == end]
    # A checkpoint is the whole model, as one process saves it, under the model's own class.
    ckpt = run / "checkpoints" / f"step-{end:06d}"
    assert json.loads((ckpt / "config.json").read_text())["architectures"] == ["Qwen2ForCausalLM"]
    base = AutoModelForCausalLM.from_pretrained(tiny_model).state_dict()
    saved_model = AutoModelForCausalLM.from_pretrained(ckpt)
    weights = saved_model.state_dict()
    assert weights.keys() == base.keys()
    assert all(weights[k].shape == base[k].shape for k in base)
    assert any(not torch.equal(weights[k], base[k]) for k in base)  # trained
    assert load_file(ckpt / "model.safetensors").keys() <= base.keys()
    state = torch.load(ckpt / "trainer_state.pt", weights_only=False)
    shapes = sorted(tuple(s["exp_avg"].shape) for s in state["optimizer"]["state"].values())
    assert shapes == sorted(tuple(p.shape) for p in saved_model.parameters())

    # The same run continues unsharded on one process: the global batch and the stream are
    # the same.
    done = subprocess.run(
        [sys.executable, "-m", "r1lab", "zero", "--resume", str(run), f"steps={end + 1}"]
        + ["fsdp=false"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"(step {end}); saved by 2 process(es), continues on 1" in done.stdout
    assert [r["step"] for r in read_metrics(run)] == list(range(end + 2))
