"""`r1lab zero` end to end on a tiny model: the run directory, resume, crashes and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from r1lab.config import ConfigError, load_config
from r1lab.rl import trainer
from r1lab.rl.config import AlgoConfig, RolloutConfig, ZeroConfig
from r1lab.rl.state import checkpoints
from r1lab.tasks import TaskConfig, make_task
from r1lab.tracking import read_metrics

# Metrics that measure the machine, not the run: they differ between identical runs.
NONDETERMINISTIC = ("time/", "perf/")


def tiny_config(model: Path, out: Path, **kw) -> ZeroConfig:
    defaults = dict(
        model=str(model),
        task=TaskConfig(name="arithmetic"),
        rollout=RolloutConfig(group_size=4, max_new_tokens=24),
        algo=AlgoConfig(prompts_per_step=2, micro_batch=4, lr=1e-3, warmup_steps=1),
        steps=4,
        train_pool=64,
        eval_every=2,
        eval_questions=4,
        eval_n=2,
        sample_every=1,
        checkpoint_every=2,
        keep_checkpoints=3,
        workers=0,
        threads=1,
        progress=False,
        out=str(out),
    )
    defaults.update(kw)
    return ZeroConfig(**defaults)


def comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(NONDETERMINISTIC)} for r in rows]


def test_run_directory_holds_config_metrics_samples_checkpoints_plot(base_model, tmp_path):
    cfg = tiny_config(base_model, tmp_path / "run")
    assert trainer.run(cfg) == 0
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and (run / "plot.png").stat().st_size > 0
    rows = read_metrics(run)
    train = [r for r in rows if "reward/total" in r]
    assert [r["step"] for r in train] == [0, 1, 2, 3]
    # Each metric is in its range and the parts agree with each other (that the trainer's
    # log-probs are the sampler's, i.e. mu = 1 is on-policy, is checked row by row in
    # test_train_step.py: the ratio logged here is 1 by construction).
    weights = make_task(cfg.task).rewards.weights
    for r in train:
        parts = sum(w * r[f"reward/{name}"] for name, w in weights.items())
        assert r["reward/total"] == pytest.approx(parts, abs=1e-9)
        for key in ("reward/accuracy", "reward/format_rate", "response/clipped_ratio"):
            assert 0 <= r[key] <= 1, key
        for key in ("response/reflection_rate", "batch/zero_std_groups"):
            assert 0 <= r[key] <= 1, key
        assert 1 <= r["response/length_min"] <= r["response/length_mean"]
        assert r["response/length_mean"] <= r["response/length_max"] <= 24
        assert r["loss/total"] == pytest.approx(r["loss/policy"] + r["loss/kl"], abs=1e-9)
        assert r["policy/kl"] >= 0 and r["policy/entropy"] > 0
        assert r["policy/clip_frac_low"] == r["policy/clip_frac_high"] == 0  # mu = 1
        assert r["policy/lr"] == pytest.approx(1e-3)  # warmup_steps = 1
        assert r["batch/groups"] == 2 and r["batch/sampling_rounds"] == 1
        assert r["policy/grad_norm"] > 1e-6 or r["policy/advantage_abs_mean"] == 0
        for key in ("time/rollout", "time/reward", "time/update", "perf/tokens_per_s"):
            assert r[key] > 0, key
    assert train[0]["policy/kl"] < 1e-6  # step 0's reference is the policy itself
    evals = [r["step"] for r in rows if "eval/pass@1" in r]
    assert evals == [0, 2, 4]
    sample = json.loads((run / "samples" / "step-000000.jsonl").read_text().splitlines()[0])
    assert {"question", "completion", "reward", "parts", "advantage"} <= set(sample)
    found = checkpoints(run)
    assert [p.name for p in found] == ["step-000002", "step-000004"]
    model = AutoModelForCausalLM.from_pretrained(found[-1])
    assert model.num_parameters() > 0


def test_interrupted_and_resumed_run_is_bit_identical_to_an_uninterrupted_one(
    base_model, tmp_path, monkeypatch
):
    # Room for worked answers and 4 x 4 samples a step: rewards vary within groups, so every
    # step really moves the policy (checked below) and a wrong restore shows in the metrics.
    # A pool of 6 prompts: the checkpoint after step 2 (8 prompts taken) is inside the stream's
    # second epoch, so a stream that restored only epoch 0's order would feed other prompts.
    kw = dict(
        rollout=RolloutConfig(group_size=4, max_new_tokens=80),
        algo=AlgoConfig(prompts_per_step=4, micro_batch=8, lr=1e-3, warmup_steps=1),
        train_pool=6,
    )
    full = tmp_path / "full"
    trainer.run(tiny_config(base_model, full, **kw))

    crashed = tmp_path / "crashed"
    real_step = trainer.train_step

    def crash_at_3(t, step):
        if step == 3:
            raise RuntimeError("simulated crash")
        return real_step(t, step)

    monkeypatch.setattr(trainer, "train_step", crash_at_3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer.run(tiny_config(base_model, crashed, **kw))
    monkeypatch.setattr(trainer, "train_step", real_step)
    assert [p.name for p in checkpoints(crashed)] == ["step-000002"]
    state = torch.load(checkpoints(crashed)[0] / "trainer_state.pt", weights_only=False)
    assert state["stream"]["epoch"] == 1

    trainer.run(ZeroConfig(resume=str(crashed)))
    a, b = comparable(read_metrics(full)), comparable(read_metrics(crashed))
    # The comparison means something only if the policy moved and the data differed by step.
    assert sum(r["batch/zero_std_groups"] < 1 for r in a if "batch/zero_std_groups" in r) >= 2
    assert [r["step"] for r in a] == [r["step"] for r in b]
    # Exactly: the same samples, rewards, losses and weights to the last bit (CPU, fp32). The
    # reference model once differed in the last bits here (loaded from disk on resume, a
    # deepcopy otherwise: see checkpoint.own_memory).
    for ra, rb in zip(a, b, strict=True):
        assert ra == rb, (ra["step"], {k: (ra[k], rb.get(k)) for k in ra if ra[k] != rb.get(k)})
    wa = AutoModelForCausalLM.from_pretrained(checkpoints(full)[-1]).state_dict()
    wb = AutoModelForCausalLM.from_pretrained(checkpoints(crashed)[-1]).state_dict()
    assert wa.keys() == wb.keys()
    assert [k for k in wa if not torch.equal(wa[k], wb[k])] == []
    for name in ("optimizer", "scheduler", "stream"):
        sa = torch.load(checkpoints(full)[-1] / "trainer_state.pt", weights_only=False)[name]
        sb = torch.load(checkpoints(crashed)[-1] / "trainer_state.pt", weights_only=False)[name]
        _assert_same_state(sa, sb, name)
    base = AutoModelForCausalLM.from_pretrained(base_model).state_dict()
    assert any(not torch.equal(wa[k], base[k]) for k in wa)


def _assert_same_state(a, b, where: str) -> None:
    """Nested state dicts equal to the bit, tensors included (dtype too)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from r1lab.checkpoint import save_hf

    src, dst, flag = sys.argv[1:]
    model = AutoModelForCausalLM.from_pretrained(src)
    tok = AutoTokenizer.from_pretrained(src)

    def stall(path):
        Path(flag).write_text("writing")
        time.sleep(60)

    save_hf(dst, model, tok, extra_files={"trainer_state.pt": stall})
    """
)


def test_process_killed_while_writing_a_checkpoint_leaves_the_previous_one(tiny_model, tmp_path):
    run = tmp_path / "run"
    trainer.run(tiny_config(tiny_model, run, steps=2))
    before = checkpoints(run)
    assert [p.name for p in before] == ["step-000002"]
    flag = tmp_path / "flag"
    # The next checkpoint is killed half-written, and so is a rewrite of the existing one.
    for target in ("step-000004", "step-000002"):
        flag.unlink(missing_ok=True)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                KILLED_WRITER,
                str(tiny_model),
                str(run / "checkpoints" / target),
                str(flag),
            ]
        )
        deadline = time.monotonic() + 60
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert flag.exists(), "the writer never reached the middle of its checkpoint"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert checkpoints(run) == before
        AutoModelForCausalLM.from_pretrained(before[-1])
    # And the run resumes from it.
    trainer.run(ZeroConfig(resume=str(run)))


def test_non_finite_loss_steps_are_skipped_then_the_run_stops(base_model, tmp_path, monkeypatch):
    real_loss = trainer.grpo_loss

    def nan_loss(*args, **kw):
        loss, stats = real_loss(*args, **kw)
        return loss * float("nan"), {**stats, "loss/total": float("nan")}

    monkeypatch.setattr(trainer, "grpo_loss", nan_loss)
    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="3 steps in a row had a non-finite loss"):
        trainer.run(tiny_config(base_model, run, steps=8, eval_every=0))
    rows = [r for r in read_metrics(run) if "reward/total" in r]
    assert [r.get("train/nan_skipped") for r in rows] == [1.0, 1.0]  # the third raised
    # The skipped steps applied nothing: the checkpoint written after step 1 is the base model.
    base = AutoModelForCausalLM.from_pretrained(base_model).state_dict()
    saved = AutoModelForCausalLM.from_pretrained(checkpoints(run)[-1]).state_dict()
    for k in base:
        torch.testing.assert_close(saved[k], base[k], rtol=0, atol=0)


FLAT = {"format": 0.0, "math_accuracy": 0.0}  # every completion scores 0


def test_all_equal_rewards_give_zero_advantage_and_dynamic_sampling_skips(base_model, tmp_path):
    cfg = tiny_config(base_model, tmp_path / "flat", steps=2, eval_every=0, rewards=FLAT)
    trainer.run(cfg)
    rows = [r for r in read_metrics(tmp_path / "flat") if "reward/total" in r]
    assert all(r["batch/zero_std_groups"] == 1.0 for r in rows)
    assert all(r["policy/advantage_abs_mean"] == 0.0 for r in rows)
    assert all(abs(r["loss/policy"]) < 1e-12 for r in rows)

    algo = AlgoConfig(
        prompts_per_step=2, micro_batch=4, dynamic_sampling=True, max_resample_rounds=2
    )
    cfg = tiny_config(base_model, tmp_path / "dyn", steps=1, eval_every=0, rewards=FLAT, algo=algo)
    trainer.run(cfg)
    row = [r for r in read_metrics(tmp_path / "dyn") if "batch/skipped" in r][0]
    assert row["batch/skipped"] == 1.0


def test_prompt_longer_than_the_context_is_refused_before_training(tiny_model, tmp_path):
    cfg = tiny_config(
        tiny_model, tmp_path / "run", rollout=RolloutConfig(group_size=2, max_new_tokens=500)
    )
    with pytest.raises(ConfigError, match="rollout.max_new_tokens"):
        trainer.run(cfg)


def test_a_negative_micro_batch_cut_cost_is_refused_by_name():
    with pytest.raises(ConfigError, match="algo.micro_batch_cut_cost"):
        load_config(ZeroConfig, None, ["algo.micro_batch_cut_cost=-1"])
    assert (
        load_config(ZeroConfig, None, ["algo.micro_batch_cut_cost=0"]).algo.micro_batch_cut_cost
        == 0
    )


def test_empty_dataset_names_the_file(tiny_model, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    cfg = tiny_config(tiny_model, tmp_path / "run", task=TaskConfig(name="file", path=str(empty)))
    with pytest.raises((ConfigError, ValueError), match="empty.jsonl"):
        trainer.run(cfg)


def test_tiny_dataset_cycles(base_model, tmp_path):
    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps({"question": "Compute 2 + 3", "answer": "5"}) + "\n")
    cfg = tiny_config(
        base_model,
        tmp_path / "run",
        task=TaskConfig(name="file", path=str(data), test_path=str(data)),
        steps=2,
        eval_questions=1,
    )
    assert trainer.run(cfg) == 0
    run = tmp_path / "run"
    assert [r["step"] for r in read_metrics(run) if "reward/total" in r] == [0, 1]
    for step in (0, 1):  # both groups of both steps are the one example, epoch after epoch
        path = run / "samples" / f"step-{step:06d}.jsonl"
        samples = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(samples) == 8 and {s["question"] for s in samples} == {"Compute 2 + 3"}
    state = torch.load(checkpoints(run)[-1] / "trainer_state.pt", weights_only=False)
    assert state["stream"] == {"epoch": 3, "index": 1}  # 4 prompts taken from a pool of 1


def test_resume_of_a_directory_that_is_not_a_run(tmp_path):
    with pytest.raises(ConfigError, match="config.yaml"):
        trainer.run(ZeroConfig(resume=str(tmp_path)))


def test_cli_runs_a_step_and_resumes_by_flag(tiny_model, tmp_path, capsys):
    from r1lab.cli import main

    out = tmp_path / "run"
    args = [
        "zero",
        f"model={tiny_model}",
        f"out={out}",
        "steps=1",
        "eval_every=0",
        "algo.prompts_per_step=2",
        "rollout.group_size=2",
        "rollout.max_new_tokens=8",
        "workers=0",
        "progress=false",
    ]
    assert main(args) == 0
    assert "run directory" in capsys.readouterr().out
    assert [r["step"] for r in read_metrics(out) if "loss/total" in r] == [0]
    before = {p.name: (p / "model.safetensors").read_bytes() for p in checkpoints(out)}
    assert list(before) == ["step-000001"]
    # Already finished: nothing is trained again and the checkpoint is untouched.
    assert main(["zero", "--resume", str(out)]) == 0
    assert [r["step"] for r in read_metrics(out) if "loss/total" in r] == [0]
    assert {p.name: (p / "model.safetensors").read_bytes() for p in checkpoints(out)} == before
    assert main(["zero", f"model={tmp_path / 'nope'}", f"out={out}2"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_code_reward_requiring_full_isolation_refuses_the_run_before_the_model_loads(
    tiny_model, tmp_path, monkeypatch, capsys
):
    # `unshare` refused (a container without CAP_SYS_ADMIN): the run must not start and score
    # every code item 0 (or run programs with less isolation than asked for).
    import warnings

    from r1lab.cli import main
    from r1lab.rewards import sandbox
    from r1lab.run import model as run_model

    loaded = []
    real_load = run_model.load_model
    monkeypatch.setattr(
        run_model, "load_model", lambda *a, **k: loaded.append(a) or real_load(*a, **k)
    )
    monkeypatch.setattr(sandbox, "_unshare_works", lambda cmd: False)
    sandbox.probe_isolation.cache_clear()
    out = tmp_path / "run"
    args = [
        "zero",
        f"model={tiny_model}",
        f"out={out}",
        "steps=1",
        "workers=0",
        "progress=false",
        "rewards={code: 1.0, format: 0.0, math_accuracy: 0.0}",
    ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the floor-mode warning itself
            assert main([*args, "reward_params={code: {require: full}}"]) == 2
            err = capsys.readouterr().err
            assert "reward 'code' cannot run here" in err and "netns" in err
            assert not out.exists() and loaded == []
            monkeypatch.setenv("R1LAB_SANDBOX_REQUIRE", "full")  # the same, machine-wide
            assert main(args) == 2
            assert "R1LAB_SANDBOX_REQUIRE" in capsys.readouterr().err
            assert not out.exists() and loaded == []
    finally:
        sandbox.probe_isolation.cache_clear()


def test_bf16_runs_step_fp32_weights_under_autocast(base_model, tmp_path):
    # dtype=bfloat16 is mixed precision: the policy (and the reference it is compared with)
    # stay fp32, so an lr-sized update lands on every weight; sampling and the update compute
    # in bf16. Pure bf16 weights would keep most of them unchanged at this lr.
    from safetensors.torch import load_file

    old = load_file(str(Path(base_model) / "model.safetensors"))
    weights, cfgs = {}, {}
    for dtype in ("bfloat16", "float32"):
        out = tmp_path / dtype
        cfg = tiny_config(base_model, out, steps=1, eval_every=0, dtype=dtype)
        # 80 tokens: room for a worked addition (61) or multiplication (75), which score.
        cfg.rollout.max_new_tokens, cfg.algo.prompts_per_step, cfg.algo.lr = 80, 4, 1e-5
        cfgs[dtype] = cfg
        t = trainer.build(cfg, None)
        assert t.dtype == getattr(torch, dtype) and t.ref.lm_head.weight.dtype == torch.float32
        assert trainer.run(cfg) == 0
        assert read_metrics(out)[0]["batch/zero_std_groups"] < 1  # a step that moves
        weights[dtype] = load_file(str(checkpoints(out)[-1] / "model.safetensors"))
    resumed = trainer.build(cfgs["bfloat16"], None, checkpoints(tmp_path / "bfloat16")[-1])
    assert resumed.ref.lm_head.weight.dtype == torch.float32  # loaded, not copied: still fp32
    new = weights["bfloat16"]
    assert {v.dtype for v in new.values()} == {torch.float32}
    moved = sum((new[k] != old[k]).sum().item() for k in new) / sum(v.numel() for v in new.values())
    assert moved > 0.9, moved
    fp32 = weights["float32"]
    assert any(not torch.equal(new[k], fp32[k]) for k in new)  # computed in bf16
    assert all(torch.allclose(new[k], fp32[k], atol=1e-4) for k in new)
