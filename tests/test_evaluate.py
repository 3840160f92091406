"""`r1lab eval` end to end: the shipped base model on the micro-world, and a GSM8K-format file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from r1lab.evaluate import EvalConfig, evaluate, load_model, markdown_table, run
from r1lab.microworld import DEFAULT_BASE
from r1lab.tasks import TaskConfig, make_task

FIXTURES = Path(__file__).parent / "tasks" / "fixtures"
BASE = os.environ.get("R1LAB_TEST_BASE", str(DEFAULT_BASE))


@pytest.fixture(scope="module")
def base():
    return load_model(BASE, "cpu")


def test_eval_writes_json_and_table_with_every_metric(tmp_path, capsys):
    out = tmp_path / "eval"
    cfg = EvalConfig(
        model=BASE, num_questions=6, n=4, ks=[1, 2, 4], max_new_tokens=100, out=str(out), workers=0
    )
    assert run(cfg) == 0
    data = json.loads((out / "eval.json").read_text())
    m = data["metrics"]
    for key in (
        "pass@1",
        "pass@2",
        "pass@4",
        "maj@2",
        "maj@4",
        "format",
        "reflection_rate",
        "length_mean",
        "length_p90",
        "greedy_accuracy",
        "truncated",
    ):
        assert f"eval/{key}" in m, key
    for key, value in m.items():
        if "pass@" in key or "maj@" in key or "format" in key or "rate" in key:
            assert 0.0 <= value <= 1.0, key
    # pass@k never decreases with k.
    assert m["eval/pass@1"] <= m["eval/pass@2"] <= m["eval/pass@4"]
    assert len(data["samples"]) == 6 and len(data["samples"][0]["samples"]) == 4
    assert "| pass@1 |" in (out / "eval.md").read_text()
    assert "pass@4" in capsys.readouterr().out


def test_pass1_is_the_mean_correctness_of_the_samples(base):
    model, tok = base
    task = make_task(TaskConfig(name="arithmetic"))
    examples = task.examples("test", 8)
    result = evaluate(
        model, tok, task, examples, n=4, ks=[1, 4], max_new_tokens=100, greedy=False, progress=False
    )
    graded = [s["correct"] for q in result.samples for s in q["samples"]]
    assert result.metrics["eval/pass@1"] == pytest.approx(sum(graded) / len(graded))
    any_right = [any(s["correct"] for s in q["samples"]) for q in result.samples]
    assert result.metrics["eval/pass@4"] == pytest.approx(sum(any_right) / len(any_right))
    # Each recorded answer is what the task's extractor reads from the recorded text.
    for q in result.samples:
        for s in q["samples"]:
            assert s["answer"] == task.extract_answer(s["text"])


def test_eval_is_deterministic_with_a_seed(base):
    model, tok = base
    task = make_task(TaskConfig(name="countdown"))
    examples = task.examples("test", 4)
    kw = dict(n=2, ks=[1, 2], max_new_tokens=100, progress=False, seed=3)
    a = evaluate(model, tok, task, examples, **kw)
    b = evaluate(model, tok, task, examples, **kw)
    assert a.metrics == b.metrics


def test_eval_on_a_gsm8k_format_file(tmp_path):
    path = str(FIXTURES / "gsm8k_sample.jsonl")
    task = TaskConfig(name="file", path=path, test_path=path, format="gsm8k")
    out = tmp_path / "gsm"
    cfg = EvalConfig(
        model=BASE,
        task=task,
        num_questions=3,
        n=2,
        ks=[1, 2],
        max_new_tokens=32,
        out=str(out),
        workers=0,
    )
    assert run(cfg) == 0
    data = json.loads((out / "eval.json").read_text())
    assert data["metrics"]["eval/questions"] == 3
    # The reference is GSM8K's number after ####, not the worked solution.
    refs = [q["reference"] for q in data["samples"]]
    assert all(r.replace(".", "").isdigit() for r in refs), refs


def test_ks_larger_than_n_are_refused():
    from r1lab.config import ConfigError

    with pytest.raises(ConfigError, match="ks"):
        run(EvalConfig(model=BASE, n=2, ks=[1, 4]))


def test_markdown_table_shows_rates_as_percent_and_counts_as_integers():
    table = markdown_table({"eval/pass@1": 0.25, "eval/questions": 64.0, "eval/length_mean": 57.25})
    assert "| pass@1 | 25.0% |" in table and "| questions | 64 |" in table
    assert "| length_mean | 57.2 |" in table or "| length_mean | 57.3 |" in table


def test_sampling_uses_the_configured_temperature_and_top_p_greedy_uses_zero(base, monkeypatch):
    import r1lab.rollout

    calls = []

    class RecordingSampler(r1lab.rollout.Sampler):
        def generate(self, prompts, params, seed=None):
            calls.append(params)
            return super().generate(prompts, params, seed=seed)

    monkeypatch.setattr(r1lab.rollout, "Sampler", RecordingSampler)
    model, tok = base
    task = make_task(TaskConfig(name="arithmetic"))
    kw = dict(n=2, ks=[1, 2], max_new_tokens=8, progress=False, top_p=0.9, greedy=True)
    evaluate(model, tok, task, task.examples("test", 2), temperature=0.85, **kw)
    sampled, greedy = calls
    assert (sampled.temperature, sampled.top_p, sampled.n) == (0.85, 0.9, 2)
    assert greedy.temperature == 0.0


# --- a user's own file: say what is evaluated, evaluate a given test file whole -------------


def _eval_file(tmp_path, capsys, split="test", num_questions=0, **task):
    path = str(FIXTURES / "gsm8k_sample.jsonl")
    task = TaskConfig(name="file", format="gsm8k", **{k: path for k in task})
    out = tmp_path / "eval"
    cfg = EvalConfig(
        model=BASE,
        task=task,
        split=split,
        num_questions=num_questions,
        n=1,
        ks=[1],
        max_new_tokens=8,
        greedy=False,
        workers=0,
        out=str(out),
    )
    assert run(cfg) == 0
    said = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("evaluating"))
    return json.loads((out / "eval.json").read_text()), said


def test_a_test_file_alone_is_evaluated_whole(tmp_path, capsys):
    data, said = _eval_file(tmp_path, capsys, test_path=True)
    rows = (FIXTURES / "gsm8k_sample.jsonl").read_text().splitlines()
    assert data["metrics"]["eval/questions"] == len(rows) == 12
    assert "all of the test file" in said and said.startswith("evaluating 12 questions")
    assert data["questions_from"] in said
    data, said = _eval_file(tmp_path, capsys, test_path=True, num_questions=5)
    assert data["metrics"]["eval/questions"] == 5
    assert "the first 5" in said and "num_questions=0 evaluates all" in said


def test_more_questions_than_the_split_holds_is_said(tmp_path, capsys):
    data, said = _eval_file(tmp_path, capsys, path=True, num_questions=100)
    held_out = int(data["metrics"]["eval/questions"])
    assert held_out < 12  # the seeded-hash test split of one file
    assert f"num_questions=100 asked for more, so all {held_out} are evaluated" in said
    assert "split=all" in said  # and how to evaluate the whole file
    data, said = _eval_file(tmp_path, capsys, split="all", path=True)
    assert data["metrics"]["eval/questions"] == 12 and "every row of" in said


def test_eval_json_stores_the_exact_prompt(tmp_path, capsys):
    from r1lab.tasks import render_prompt

    data, _ = _eval_file(tmp_path, capsys, test_path=True, num_questions=2)
    for q in data["samples"]:
        assert q["prompt"] == render_prompt(q["question"], "r1zero")
