"""`r1lab rm` end to end on a tiny model: it learns a preference, its micro-batching and
resume change nothing, its checkpoints are Hugging Face reward models, its mistakes are one line."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from r1lab.cli import main
from r1lab.config import ConfigError
from r1lab.rm import trainer
from r1lab.rm.config import RMConfig
from r1lab.rm.data import load_pairs
from r1lab.rm.model import sequence_rewards
from r1lab.run import checkpoints, load_tokenizer
from r1lab.tracking import read_metrics

NONDETERMINISTIC = ("time/", "perf/")
WORDS = ["cat", "dog", "tree", "lamp", "river", "stone", "bird", "cloud", "road", "hill"]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    """A preference a tiny model can learn: the chosen reply says 'yes', the rejected 'no',
    each among random words, so the rewards must read the words, not the length."""
    rng = random.Random(0)
    rows = []
    for i in range(120):
        words = rng.sample(WORDS, 4)
        k = rng.randint(0, 4)
        good = " ".join([*words[:k], "yes", *words[k:]])
        bad = " ".join([*words[: 4 - k], "no", *words[4 - k :]])
        rows.append({"prompt": f"Question {i}:", "chosen": " " + good, "rejected": " " + bad})
    path = tmp_path_factory.mktemp("prefs") / "prefs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def config(model: Path, data: Path, out: Path, **kw) -> RMConfig:
    fields = dict(
        model=str(model),
        data=str(data),
        eval_size=0.2,
        batch_size=16,
        steps=12,
        lr=3e-3,
        warmup_steps=2,
        eval_every=6,
        checkpoint_every=4,
        keep_checkpoints=0,
        threads=1,
        progress=False,
        out=str(out),
    )
    fields.update(kw)
    return RMConfig(**fields)


def comparable(rows):
    return [{k: v for k, v in r.items() if not k.startswith(NONDETERMINISTIC)} for r in rows]


@pytest.fixture(scope="module")
def trained(tiny_model, pairs_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rm") / "run"
    assert trainer.run(config(tiny_model, pairs_file, out)) == 0
    return out


def test_it_learns_the_preference_and_reports_held_out_accuracy(trained):
    rows = read_metrics(trained)
    evals = [r for r in rows if "eval/accuracy" in r]
    assert [r["step"] for r in evals] == [0, 6, 12]
    assert evals[-1]["eval/accuracy"] >= 0.95 and evals[-1]["eval/margin"] > 0
    assert evals[-1]["eval/pairs"] == 24
    train = [r for r in rows if "loss/rm" in r]
    assert len(train) == 12 and train[-1]["loss/rm"] < train[0]["loss/rm"]
    assert all(r["batch/pairs"] == 16 for r in train)
    assert (trained / "plot.png").stat().st_size > 0 and (trained / "margins.png").is_file()
    margins = json.loads((trained / "margins.json").read_text())
    assert margins["step"] == 12 and len(margins["pairs"]) == 24
    right = sum(p["margin"] > 0 for p in margins["pairs"]) / 24
    assert right == pytest.approx(evals[-1]["eval/accuracy"])


def test_a_checkpoint_is_a_hugging_face_reward_model_giving_the_trainers_rewards(
    trained, tiny_model, pairs_file
):
    last = checkpoints(trained)[-1]
    meta = json.loads((last / "r1lab.json").read_text())
    assert meta["command"] == "r1lab rm" and meta["template"] == "raw" and meta["step"] == 12
    model = AutoModelForSequenceClassification.from_pretrained(last).eval()
    tok = load_tokenizer(last)
    data = load_pairs(str(pairs_file), "raw", tok, 512, eval_size=0.2)
    margins = json.loads((trained / "margins.json").read_text())["pairs"]
    with torch.no_grad():
        for pair, saved in zip(data.eval[:5], margins, strict=False):
            hf = [
                model(input_ids=torch.tensor([s])).logits[0, 0].item()
                for s in (pair.chosen, pair.rejected)
            ]
            assert hf == pytest.approx([saved["chosen"], saved["rejected"]], abs=1e-4)


def test_a_step_trains_the_same_whatever_the_micro_batching(tiny_model, pairs_file, tmp_path):
    runs = {}
    for name, cut in {
        "one": dict(micro_batch_cut_cost=10**9),
        "pairs": dict(micro_batch_tokens=2),
    }.items():
        out = tmp_path / name
        trainer.run(config(tiny_model, pairs_file, out, steps=2, eval_every=2, **cut))
        runs[name] = [r for r in read_metrics(out) if "loss/rm" in r]
    assert [r["batch/micro_batches"] for r in runs["one"]] == [1, 1]
    assert [r["batch/micro_batches"] for r in runs["pairs"]] == [16, 16]
    for a, b in zip(runs["one"], runs["pairs"], strict=True):
        for key in ("loss/rm", "rm/accuracy", "rm/margin", "policy/grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), key
    # After the two steps (Adam's elementwise update magnifies float noise in near-zero
    # gradients, so the weights are compared through what they compute, not element by element).
    held = {
        k: [r["eval/loss"] for r in read_metrics(tmp_path / k) if "eval/loss" in r] for k in runs
    }
    assert held["pairs"] == pytest.approx(held["one"], rel=1e-5) and len(held["one"]) == 2


def test_step_zeros_loss_is_the_mean_pair_loss_of_the_untrained_model(
    tiny_model, pairs_file, tmp_path
):
    out = tmp_path / "run"
    trainer.run(config(tiny_model, pairs_file, out, steps=1, eval_every=1))
    first = read_metrics(out)[0]
    torch.manual_seed(0)  # the head the run drew
    t = trainer.build(config(tiny_model, pairs_file, tmp_path / "unused"))
    from r1lab.sft.data import batch_rows

    batch = [t.data.train[i] for i in batch_rows(len(t.data.train), 16, 0, 0)]
    losses, right = [], []
    with torch.no_grad():
        for p in batch:
            c, r = (
                sequence_rewards(
                    t.model,
                    torch.tensor([s]),
                    torch.arange(len(s))[None],
                    torch.tensor([len(s) - 1]),
                )
                for s in (p.chosen, p.rejected)
            )
            losses.append(-torch.nn.functional.logsigmoid(c - r).item())
            right.append(float(c.item() > r.item()))
    assert first["loss/rm"] == pytest.approx(sum(losses) / 16, rel=1e-5)
    assert first["rm/accuracy"] == pytest.approx(sum(right) / 16)


def test_interrupted_and_resumed_run_is_identical_to_an_uninterrupted_one(
    tiny_model, pairs_file, tmp_path, monkeypatch, trained
):
    crashed = tmp_path / "crashed"
    real = trainer.train_step

    def crash_at_5(t, step):
        if step == 5:
            raise RuntimeError("simulated crash")
        return real(t, step)

    monkeypatch.setattr(trainer, "train_step", crash_at_5)
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer.run(config(tiny_model, pairs_file, crashed))
    monkeypatch.setattr(trainer, "train_step", real)
    assert [p.name for p in checkpoints(crashed)] == ["step-000004"]
    trainer.run(RMConfig(resume=str(crashed)))
    a, b = comparable(read_metrics(trained)), comparable(read_metrics(crashed))
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert ra == rb, ra["step"]
    wa = AutoModelForSequenceClassification.from_pretrained(checkpoints(trained)[-1]).state_dict()
    wb = AutoModelForSequenceClassification.from_pretrained(checkpoints(crashed)[-1]).state_dict()
    assert [k for k in wa if not torch.equal(wa[k], wb[k])] == []


def test_resume_refuses_changed_pairs_and_settings(tiny_model, pairs_file, tmp_path):
    out = tmp_path / "run"
    data = tmp_path / "p.jsonl"
    data.write_text(pairs_file.read_text())
    trainer.run(config(tiny_model, data, out, steps=2, eval_every=0, checkpoint_every=1))
    with pytest.raises(ConfigError, match="cannot change lr"):
        trainer.run(RMConfig(resume=str(out), lr=0.5))
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    rows[3]["chosen"] += " yes"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ConfigError, match="the training pairs differ"):
        trainer.run(RMConfig(resume=str(out)))


def test_the_command_and_its_mistakes(tiny_model, pairs_file, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["threads=1", "progress=false"]
    args = [f"data={pairs_file}", f"model={tiny_model}", f"out={out}", "steps=1", "eval_every=0"]
    assert main(["rm", *args, *base]) == 0
    assert [p.name for p in checkpoints(out)] == ["step-000001"]
    capsys.readouterr()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"prompt": "q", "chosen": " a", "rejected": " b"}\n{"prompt": "q", "chosen": " a"}\n'
    )
    fresh = tmp_path / "fresh"
    for argv, expected in [
        ([f"data={bad}"], "bad.jsonl, line 2: missing field 'rejected'"),
        (["data=microworld:kind"], "unknown micro-world preference set"),
        ([f"data={pairs_file}", "label_noise=0.7"], "'label_noise' must be a share in [0, 0.5]"),
        ([f"data={pairs_file}", "center_coef=-1"], "'center_coef' must be >= 0"),
        ([f"data={pairs_file}", "model=/nope"], "/nope"),
    ]:
        model = [] if any(a.startswith("model=") for a in argv) else [f"model={tiny_model}"]
        assert main(["rm", *argv, *model, f"out={fresh}", *base]) == 2, argv
        err = capsys.readouterr().err
        assert expected in err and len(err.strip().splitlines()) == 1, (argv, err)
        assert not fresh.exists()
    assert main(["rm", "--help"]) == 0
    assert "center_coef" in capsys.readouterr().out


def test_bf16_training_steps_fp32_weights_under_autocast(tiny_model, pairs_file, tmp_path):
    from safetensors.torch import load_file

    weights = {}
    for dtype in ("bfloat16", "float32"):
        out = tmp_path / dtype
        assert trainer.run(config(tiny_model, pairs_file, out, steps=2, dtype=dtype)) == 0
        weights[dtype] = load_file(str(checkpoints(out)[-1] / "model.safetensors"))
    bf16, fp32 = weights["bfloat16"], weights["float32"]
    assert {v.dtype for v in bf16.values()} == {torch.float32}  # master weights
    assert any(not torch.equal(bf16[k], fp32[k]) for k in bf16)  # computed in bf16
