"""`r1lab sft` end to end on tiny models: the run directory, schedule, checkpoints, resume,
Ctrl-C, the command line and its mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from r1lab.cli import main
from r1lab.config import ConfigError
from r1lab.run import checkpoints, load_model
from r1lab.sft import trainer
from r1lab.sft.config import SFTConfig
from r1lab.sft.data import batch_rows, load_data
from r1lab.sft.loss import lr_factor
from r1lab.tracking import read_metrics

from ._helpers import QA, sft_config, write_jsonl

NONDETERMINISTIC = ("time/", "perf/")


def config(model: Path, data: Path, out: Path, **kw) -> SFTConfig:
    """Two epochs with warm-up and cosine decay, evaluated and saved every 2 steps."""
    schedule = dict(epochs=2, warmup_steps=2, min_lr_ratio=0.1, eval_every=2, checkpoint_every=2)
    return sft_config(model, data, out, **{**schedule, "keep_checkpoints": 0, **kw})


def comparable(rows):
    return [{k: v for k, v in r.items() if not k.startswith(NONDETERMINISTIC)} for r in rows]


def test_run_directory_metrics_schedule_checkpoints_and_plot(
    tiny_qwen, qa_file, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "run"
    cfg = config(tiny_qwen, qa_file, out)
    assert trainer.run(cfg) == 0
    assert (out / "config.yaml").is_file() and (out / "plot.png").stat().st_size > 0
    rows = read_metrics(out)
    train = [r for r in rows if "loss/sft" in r]
    assert [r["step"] for r in train] == list(range(6))  # 2 epochs of ceil(8 / 3) steps
    assert [r["step"] for r in rows if "eval/loss" in r] == [0, 2, 4, 6]
    evals = [r["eval/loss"] for r in rows if "eval/loss" in r]
    assert evals[-1] < evals[0] - 0.5  # it learns the data it is evaluated on
    data = load_data(str(qa_file), "r1zero", AutoTokenizer.from_pretrained(tiny_qwen), 10**6)
    for r in train:
        batch = [data.train[i] for i in batch_rows(8, 3, 0, r["step"])]
        assert r["batch/sequences"] == len(batch)
        assert r["batch/completion_tokens"] == sum(e.num_targets for e in batch)
        assert r["batch/tokens"] == sum(len(e.ids) for e in batch)
        assert r["policy/lr"] == pytest.approx(1e-2 * lr_factor(r["step"], 2, 6, 0.1))
        assert r["policy/grad_norm"] > 0 and r["perf/tokens_per_s"] > 0
        assert 0 <= r["batch/padding_frac"] < 1 and r["loss/sft"] > 0
    assert train[-1]["train/epoch"] == pytest.approx(2.0)
    found = checkpoints(out)
    assert [p.name for p in found] == ["step-000002", "step-000004", "step-000006"]
    meta = json.loads((found[-1] / "r1lab.json").read_text())
    assert meta["template"] == "r1zero" and meta["command"] == "r1lab sft" and meta["step"] == 6
    model = AutoModelForCausalLM.from_pretrained(found[-1])
    AutoTokenizer.from_pretrained(found[-1])
    start = AutoModelForCausalLM.from_pretrained(tiny_qwen).state_dict()
    assert any(not torch.equal(v, start[k]) for k, v in model.state_dict().items())
    assert "held-out loss, step 0 -> step 6" in capsys.readouterr().out
    # Prompting it with another template than it was trained with is flagged.
    load_model(found[-1], "cpu", "float32", template="raw")
    assert "was trained with template=r1zero" in capsys.readouterr().err
    # Its plot has the SFT panels.
    import matplotlib.axes

    from r1lab.plotting import plot_run

    titles = []
    real = matplotlib.axes.Axes.set_title
    monkeypatch.setattr(
        matplotlib.axes.Axes, "set_title", lambda ax, t, *a, **k: titles.append(t) or real(ax, t)
    )
    plot_run(out)
    assert titles == [
        "loss (completion tokens)",
        "learning rate",
        "gradient norm (before clipping)",
        "tokens per second",
    ]


def test_interrupted_and_resumed_run_is_bit_identical_to_an_uninterrupted_one(
    tiny_qwen, qa_file, tmp_path, monkeypatch
):
    full = tmp_path / "full"
    trainer.run(config(tiny_qwen, qa_file, full))
    crashed = tmp_path / "crashed"
    real = trainer.train_step

    def crash_at_3(t, step):
        if step == 3:
            raise RuntimeError("simulated crash")
        return real(t, step)

    monkeypatch.setattr(trainer, "train_step", crash_at_3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer.run(config(tiny_qwen, qa_file, crashed))
    monkeypatch.setattr(trainer, "train_step", real)
    assert [p.name for p in checkpoints(crashed)] == ["step-000002"]

    trainer.run(SFTConfig(resume=str(crashed)))
    a, b = comparable(read_metrics(full)), comparable(read_metrics(crashed))
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert ra == rb, (ra["step"], {k: (ra[k], rb.get(k)) for k in ra if ra[k] != rb.get(k)})
    wa = AutoModelForCausalLM.from_pretrained(checkpoints(full)[-1]).state_dict()
    wb = AutoModelForCausalLM.from_pretrained(checkpoints(crashed)[-1]).state_dict()
    assert [k for k in wa if not torch.equal(wa[k], wb[k])] == []
    sa = torch.load(checkpoints(full)[-1] / "trainer_state.pt", weights_only=False)
    sb = torch.load(checkpoints(crashed)[-1] / "trainer_state.pt", weights_only=False)
    assert sa["scheduler"] == sb["scheduler"]
    for pa, pb in zip(
        sa["optimizer"]["state"].values(), sb["optimizer"]["state"].values(), strict=True
    ):
        assert all(torch.equal(pa[k], pb[k]) for k in pa)


def test_resume_refuses_changed_data_and_changed_settings(tiny_qwen, qa_file, tmp_path):
    out = tmp_path / "run"
    trainer.run(config(tiny_qwen, qa_file, out, epochs=1))
    with pytest.raises(ConfigError, match="cannot change lr"):
        trainer.run(SFTConfig(resume=str(out), lr=0.5))
    with pytest.raises(ConfigError, match="cannot change epochs"):
        trainer.run(SFTConfig(resume=str(out), epochs=5))
    write_jsonl(qa_file, [{"prompt": q, "completion": a + "!"} for q, a in QA])
    with pytest.raises(ConfigError, match="the training data differ"):
        trainer.run(SFTConfig(resume=str(out)))


def test_ctrl_c_prints_the_command_that_resumes(tiny_qwen, qa_file, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    real = trainer.train_step

    def interrupt_at_3(t, step):
        if step == 3:
            raise KeyboardInterrupt
        return real(t, step)

    monkeypatch.setattr(trainer, "train_step", interrupt_at_3)
    with pytest.raises(KeyboardInterrupt):
        trainer.run(config(tiny_qwen, qa_file, out))
    err = capsys.readouterr().err
    assert "continues from its last checkpoint (step 2)" in err
    assert f"r1lab sft --resume {out}" in err


def hf_token_mean(model_dir, examples) -> float:
    """The batch's completion-token mean loss from HF's own loss (labels -100 on the prompt)."""
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    total = sum(e.num_targets for e in examples)
    out = 0.0
    with torch.no_grad():
        for e in examples:
            ids = torch.tensor([e.ids])
            labels = ids.clone()
            labels[0, : e.prompt_len] = -100
            out += model(input_ids=ids, labels=labels).loss.item() * e.num_targets / total
    return out


def test_a_step_trains_the_same_whatever_the_micro_batching(tiny_qwen, qa_file, tmp_path):
    kw = dict(epochs=1, eval_every=3)
    cuts = {
        "one": dict(micro_batch_cut_cost=10**9),  # the whole batch in one micro-batch
        "rows": dict(micro_batch_tokens=1),  # every sequence alone
        "packed": dict(batching="packed", micro_batch_tokens=300),  # 1-2 sequences a pack
    }
    rows = {}
    for name, cut in cuts.items():
        trainer.run(config(tiny_qwen, qa_file, tmp_path / name, **kw, **cut))
        rows[name] = read_metrics(tmp_path / name)
    train = {k: [r for r in v if "loss/sft" in r] for k, v in rows.items()}
    assert [r["batch/micro_batches"] for r in train["one"]] == [1, 1, 1]
    assert [r["batch/micro_batches"] for r in train["rows"]] == [3, 3, 2]
    assert all(r["batch/padding_frac"] == 0 for r in train["packed"] + train["rows"])
    for name in ("rows", "packed"):
        for a, b in zip(train["one"], train[name], strict=True):
            assert b["loss/sft"] == pytest.approx(a["loss/sft"], rel=1e-5), (name, a["step"])
        assert [r["eval/loss"] for r in rows[name] if "eval/loss" in r] == pytest.approx(
            [r["eval/loss"] for r in rows["one"] if "eval/loss" in r], rel=1e-5
        )
    # Step 0's loss is the token mean of its batch before any update, every completion token
    # weighing the same: sequences of very different lengths, cut apart, change nothing.
    tok = AutoTokenizer.from_pretrained(tiny_qwen)
    data = load_data(str(qa_file), "r1zero", tok, 10**6)
    batch = [data.train[i] for i in batch_rows(8, 3, 0, 0)]
    assert train["rows"][0]["loss/sft"] == pytest.approx(hf_token_mean(tiny_qwen, batch), 1e-5)
    assert rows["one"][0]["eval/loss"] == pytest.approx(hf_token_mean(tiny_qwen, data.train), 1e-5)


def test_share_prefix_reaches_the_steps_and_the_evaluations(
    tiny_qwen, qa_file, tmp_path, monkeypatch
):
    seen = []
    real = trainer.target_logits

    def spy(model, mb, share_prefix=False):
        seen.append((share_prefix, torch.is_grad_enabled()))
        return real(model, mb, share_prefix)

    monkeypatch.setattr(trainer, "target_logits", spy)
    losses = {}
    for share in (True, False):
        seen.clear()
        out = tmp_path / str(share)
        trainer.run(config(tiny_qwen, qa_file, out, epochs=1, eval_every=3, share_prefix=share))
        assert set(seen) == {(share, True), (share, False)}  # training and held-out passes
        losses[share] = [r.get("loss/sft", r.get("eval/loss")) for r in read_metrics(out)]
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)


def test_a_llama_with_its_own_chat_template_is_fine_tuned(tiny_llama, qa_file, tmp_path):
    out = tmp_path / "run"
    cfg = config(tiny_llama, qa_file, out, template="chat", epochs=1, steps=2, eval_every=0)
    assert trainer.run(cfg) == 0
    last = checkpoints(out)[-1]
    assert json.loads((last / "r1lab.json").read_text())["template"] == "chat"
    model = AutoModelForCausalLM.from_pretrained(last)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert AutoTokenizer.from_pretrained(last).chat_template


# --- the command line --------------------------------------------------------------------------


def test_the_command_trains_and_writes_a_run(tiny_qwen, qa_file, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["sft", f"data={qa_file}", f"model={tiny_qwen}", f"out={out}", "steps=2"]
    assert main([*args, "batch_size=4", "eval_size=0", "threads=1", "progress=false"]) == 0
    assert [p.name for p in checkpoints(out)] == ["step-000002"]
    assert main(args) == 2  # the run exists now
    assert f"--resume {out}" in capsys.readouterr().err


def _mistakes(tmp_path: Path, tiny_qwen: Path, qa_file: Path) -> list[list[str]]:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "q", "completion": "a"}\n{"prompt": "q"}\n')
    nochat = tmp_path / "nochat"
    nochat.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (nochat / name).symlink_to(tiny_qwen / name)
    return [
        ["sft"],
        ["sft", f"data={tmp_path / 'nope.jsonl'}"],
        ["sft", f"data={bad}"],
        ["sft", f"data={qa_file}", "template=chat", f"model={nochat}"],
        ["sft", f"data={qa_file}", "batching=padded"],
        ["sft", f"data={qa_file}", "eval_size=1"],
        ["sft", f"data={qa_file}", "lr=0"],
        ["sft", f"data={qa_file}", "model=/nope"],
        ["sft", f"data={qa_file}", "device=cpu", "dtype=float16"],
        ["sft", "--resume", str(tmp_path / "nope")],
        ["sft", f"data={qa_file}", "mix=microworld:general", "mix_ratio=0"],
        ["sft", f"data={qa_file}", f"mix={tmp_path / 'nope.jsonl'}"],
    ]


def test_user_mistakes_are_one_line_and_write_nothing(tiny_qwen, qa_file, tmp_path, capsys):
    out = tmp_path / "out"
    messages = []
    for argv in _mistakes(tmp_path, tiny_qwen, qa_file):
        args = [*argv, f"model={tiny_qwen}"] if not any("model=" in a for a in argv) else argv
        assert main([*args, f"out={out}"]) == 2, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (argv, err)
        assert not out.exists(), argv
        messages.append(err)
    assert "'data' must be" in messages[0]
    assert "bad.jsonl, line 2: missing field 'completion'" in messages[2]
    assert "has no chat template" in messages[3]


def _changed(model_dir: Path, base: Path) -> tuple[float, set[torch.dtype], dict]:
    """The share of weights that moved from `base`, the dtypes saved, and the saved weights."""
    from safetensors.torch import load_file

    new = load_file(str(model_dir / "model.safetensors"))
    old = load_file(str(base / "model.safetensors"))
    moved = sum((new[k].float() != old[k].float()).sum().item() for k in new)
    return moved / sum(v.numel() for v in new.values()), {v.dtype for v in new.values()}, new


def test_bf16_training_keeps_fp32_weights_so_small_updates_land(tiny_qwen, qa_file, tmp_path):
    # An lr-sized update is far below a bf16 weight's resolution: stepping bf16 weights at
    # lr 1e-5 leaves most of them unchanged. Mixed precision steps fp32 master weights.
    runs = {}
    for dtype in ("bfloat16", "float32"):
        out = tmp_path / dtype
        cfg = config(tiny_qwen, qa_file, out, dtype=dtype, lr=1e-5, epochs=1, eval_every=0)
        assert trainer.run(cfg) == 0
        runs[dtype] = _changed(checkpoints(out)[-1], tiny_qwen)
    moved, dtypes, bf16 = runs["bfloat16"]
    assert dtypes == {torch.float32} and moved > 0.9, moved
    fp32 = runs["float32"][2]
    # The forward and backward ran in bf16 (autocast): close to fp32's weights, not equal.
    assert any(not torch.equal(bf16[k], fp32[k]) for k in bf16)
    assert all(torch.allclose(bf16[k], fp32[k], atol=1e-4) for k in bf16)
