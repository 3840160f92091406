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


def test_the_library_and_the_command_evaluate_alike_by_default():
    # `evaluate(...)` called from Python samples as `r1lab eval` does: R1's T = 0.6, top-p 0.95.
    import inspect

    defaults = {k: p.default for k, p in inspect.signature(evaluate).parameters.items()}
    cfg = EvalConfig()
    for key in ("n", "temperature", "top_p", "max_new_tokens", "greedy", "template", "seed"):
        assert defaults[key] == getattr(cfg, key), key
    assert list(defaults["ks"]) == cfg.ks and list(defaults["stop"]) == cfg.stop
    assert (cfg.temperature, cfg.top_p) == (0.6, 0.95)


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


# --- the metrics of issue 11, on scripted completions (no model) -------------------------------


class ScriptedTokenizer:
    """Encodes a rendered prompt as [index of the question it holds]."""

    def __init__(self, questions):
        self.questions = questions

    def __call__(self, texts, add_special_tokens=True):
        ids = [[next(i for i, q in enumerate(self.questions) if q in t)] for t in texts]
        return {"input_ids": ids}


def scripted_sampler(script):
    """A Sampler whose model is `script`: question index -> [(text, finish_reason)] x n."""
    from r1lab.rollout import Completion

    class Scripted:
        def __init__(self, model, tokenizer):
            pass

        def generate(self, prompts, params, seed=None):
            return [
                [
                    Completion(pi, p, [0] * len(text.split()), text, [], finish)
                    for text, finish in script[p[0]][: params.n]
                ]
                for pi, p in enumerate(prompts)
            ]

    return Scripted


class FakeTask:
    """Graded by math_accuracy and format; counts `Try` in a completion as its candidates."""

    name = "fake"

    def __init__(self, extra=True):
        from r1lab.tasks.base import RewardSpec

        self.rewards = RewardSpec({"math_accuracy": 1.0, "format": 0.0}, accuracy="math_accuracy")
        if extra:
            self.extra_metrics = lambda completions, examples: {
                "answers_per_example": len(completions) / len(examples),
                "eval/zh_share": sum(e.get("language") == "zh" for e in examples) / len(examples),
            }

    def extract_answer(self, text):
        from r1lab.rewards.math import extract_answer

        return extract_answer(text)

    def equivalent(self, a, b, example):
        return a == b

    def trace_stats(self, completion):
        return {"candidates": float(completion.count("Try"))}


# q0 (en): a self-correction (right, readable), then a wrong answer with a Han word that
# loops and is cut by the token limit.
EN_FIX = "<think> 6*7=41. Wait, 6*7=42. Try 42. </think> <answer> 42 </answer>"
EN_LOOP = (
    "<think> 对 Try it: write 3 carry 6. write 3 carry 6. write 3 carry 6. "
    "write 3 carry 6. </think> <answer> 41 </answer>"
)
# q1 (zh): a right Chinese answer with one Latin word, and a wrong answer without tags.
ZH_OK = "<think> 检查一下：42*7=294。所以是 42 ok </think> <answer> 42 </answer>"
ZH_BAD = "294/7=41，答案 41"
SCRIPT = {0: [(EN_FIX, "stop"), (EN_LOOP, "length")], 1: [(ZH_OK, "stop"), (ZH_BAD, "eos")]}
QUESTIONS = [
    {"question": "Compute 6 * 7", "answer": "42", "language": "en"},
    {"question": "计算 294 / 7", "answer": "42", "language": "zh"},
]


def scripted_eval(monkeypatch, examples=QUESTIONS, script=SCRIPT, task=None, n=2):
    import r1lab.rollout

    monkeypatch.setattr(r1lab.rollout, "Sampler", scripted_sampler(script))
    tok = ScriptedTokenizer([ex["question"] for ex in examples])
    return evaluate(
        None, tok, task or FakeTask(), examples, n=n, ks=[1, n], greedy=False, progress=False
    )


def test_self_correction_language_and_readability_metrics(monkeypatch):
    from r1lab.rewards.language import language_consistency

    result = scripted_eval(monkeypatch)
    m = result.metrics
    assert m["eval/pass@1"] == 0.5 and m["eval/format"] == 0.75
    assert m["eval/self_correction_rate"] == 0.25  # EN_FIX only
    assert m["eval/truncated"] == 0.25  # EN_LOOP hit the token limit
    assert m["eval/reflection_rate"] == 0.5  # EN_FIX's "Wait", ZH_OK's 检查一下
    assert (m["eval/questions"], m["eval/samples_per_question"]) == (2, 2)
    # each completion is measured against its own question's language
    each = [
        language_consistency(t, {}, language=lang)[0]
        for t, lang in ((EN_FIX, "en"), (EN_LOOP, "en"), (ZH_OK, "zh"), (ZH_BAD, "zh"))
    ]
    assert m["eval/language_consistency"] == pytest.approx(sum(each) / 4)
    assert each == [1.0, pytest.approx(10 / 11), 7 / 8, 1.0]
    assert m["eval/mixed_language_rate"] == 0.5  # EN_LOOP's 对
    assert m["eval/mixed_language_rate_zh"] == 0.5  # ZH_OK's "ok"
    # EN_LOOP loops (and was cut), ZH_OK is 7/8 < 95% Chinese, ZH_BAD has no summary
    assert m["eval/readability"] == 0.25
    recorded = [s for q in result.samples for s in q["samples"]]
    assert [s["self_corrects"] for s in recorded] == [True, False, False, False]
    assert [s["readable"] for s in recorded] == [True, False, False, False]
    # EN_FIX and ZH_OK reflect ("Wait", 检查一下) and are right; the other two are wrong
    assert m["eval/accuracy_reflective"] == 1.0 and m["eval/accuracy_plain"] == 0.0


def test_greedy_metrics_are_over_questions_and_maj_at_1_is_not_reported(monkeypatch):
    import r1lab.rollout

    # The greedy pass takes each question's first scripted completion: q0 right and formatted,
    # q1 (ZH_BAD first) wrong and untagged.
    script = {0: SCRIPT[0], 1: [(ZH_BAD, "eos"), (ZH_OK, "stop")]}
    monkeypatch.setattr(r1lab.rollout, "Sampler", scripted_sampler(script))
    tok = ScriptedTokenizer([ex["question"] for ex in QUESTIONS])
    m = evaluate(None, tok, FakeTask(), QUESTIONS, n=2, ks=[1, 2], progress=False).metrics
    assert m["eval/greedy_accuracy"] == 0.5 and m["eval/greedy_format"] == 0.5
    assert m["eval/pass@1"] == 0.5 and m["eval/pass@2"] == 1.0 and "eval/maj@2" in m
    assert "eval/maj@1" not in m  # a vote of one is pass@1


def test_accuracy_by_reflection_is_left_out_when_no_completion_reflects(monkeypatch):
    script = {0: [(EN_LOOP, "stop"), ("<think> 6*7=42 </think> <answer> 42 </answer>", "stop")]}
    m = scripted_eval(monkeypatch, QUESTIONS[:1], script).metrics
    assert m["eval/accuracy_plain"] == 0.5 and "eval/accuracy_reflective" not in m


def test_a_task_without_an_accuracy_reward_is_graded_by_its_own_judge(monkeypatch):
    from r1lab.tasks.general import GeneralTask

    task = GeneralTask()
    harmful = next(e for e in task.examples("test", 12) if e["kind"] == "harmful")
    greeting = next(e for e in task.examples("test", 12) if e["kind"] == "greeting")
    script = {
        0: [
            (
                "<think> no </think> <answer> I'm sorry, but I can't help with that. </answer>",
                "stop",
            ),
            ("<think> ok </think> <answer> Sure. First you sneak in at night. </answer>", "stop"),
        ],
        1: [("<think> hi </think> <answer> I can't help with that. </answer>", "stop")] * 2,
    }
    m = scripted_eval(monkeypatch, [harmful, greeting], script, task=task).metrics
    assert m["eval/pass@1"] == 0.25  # only the polite refusal is helpful and harmless
    assert m["eval/harmless_rate"] == 0.5 and m["eval/over_refusal_rate"] == 1.0


def test_per_language_breakdown_when_questions_are_in_two_languages(monkeypatch):
    m = scripted_eval(monkeypatch).metrics
    assert m["eval/en/pass@1"] == 0.5 and m["eval/zh/pass@1"] == 0.5
    assert m["eval/en/format"] == 1.0 and m["eval/zh/format"] == 0.5
    assert m["eval/en/length_mean"] == pytest.approx(
        (len(EN_FIX.split()) + len(EN_LOOP.split())) / 2
    )
    assert m["eval/zh/length_mean"] == pytest.approx((len(ZH_OK.split()) + len(ZH_BAD.split())) / 2)
    assert m["eval/en/reflection_rate"] == 0.5 and m["eval/zh/reflection_rate"] == 0.5
    # one language: no breakdown, and only that language's mixed rate
    zh_only = [{**QUESTIONS[1], "question": "计算 294 / 7"}]
    m = scripted_eval(monkeypatch, zh_only, {0: SCRIPT[1]}).metrics
    assert not any(k.startswith(("eval/zh/", "eval/en/")) for k in m)
    assert "eval/mixed_language_rate" not in m and m["eval/mixed_language_rate_zh"] == 0.5
    # a missing language is English
    en_only = [{"question": "Compute 6 * 7", "answer": "42"}]
    m = scripted_eval(monkeypatch, en_only, {0: SCRIPT[0]}).metrics
    assert m["eval/mixed_language_rate"] == 0.5 and "eval/mixed_language_rate_zh" not in m
    assert m["eval/language_consistency"] == pytest.approx((1 + 10 / 11) / 2)


def test_a_language_r1lab_cannot_measure_is_left_out_of_the_language_metrics(monkeypatch):
    code = [{"question": "Compute 6 * 7", "answer": "42", "language": "python"}]
    m = scripted_eval(monkeypatch, code, {0: SCRIPT[0]}).metrics
    assert m["eval/pass@1"] == 0.5
    for key in ("language_consistency", "mixed_language_rate", "readability"):
        assert f"eval/{key}" not in m


def test_task_trace_stats_and_extra_metrics_are_averaged_into_eval(monkeypatch):
    m = scripted_eval(monkeypatch).metrics
    assert m["eval/candidates"] == pytest.approx((1 + 1 + 0 + 0) / 4)
    assert m["eval/answers_per_example"] == 1.0  # one example per completion
    assert m["eval/zh_share"] == 0.5
    plain = FakeTask(extra=False)
    m = scripted_eval(monkeypatch, task=plain).metrics
    assert "eval/answers_per_example" not in m


def test_the_general_task_reports_its_rates_through_extra_metrics(monkeypatch):
    from r1lab.tasks.general import GeneralTask, general_metrics

    task, calls = GeneralTask(), []

    def spy(completions, examples):
        calls.append(len(completions))
        return general_metrics(completions, examples)

    monkeypatch.setattr("r1lab.tasks.general.general_metrics", spy)
    ex = task.examples("test", 1)
    script = {0: [("<think> hi </think> <answer> Hello! How can I help? </answer>", "stop")] * 2}
    m = scripted_eval(monkeypatch, ex, script, task=task).metrics
    assert calls == [2] and "eval/helpful_rate" in m and "eval/over_refusal_rate" in m


def test_markdown_table_shows_the_new_rates_as_percent():
    table = markdown_table(
        {"eval/language_consistency": 0.5, "eval/readability": 0.25, "eval/zh/pass@1": 1.0}
    )
    assert "| language_consistency | 50.0% |" in table and "| readability | 25.0% |" in table
    assert "| zh/pass@1 | 100.0% |" in table


def test_a_model_of_the_readable_format_is_graded_by_the_format_reward_the_task_names(monkeypatch):
    # `r1lab eval template=r1 task.format_reward=format_readable`: eval/format is the readable
    # format's, so a cold-start model's summaries count and R1-Zero's bare format does not;
    # without the key, eval/format is R1-Zero's, as before.
    from r1lab.config import load_config
    from r1lab.evaluate import EvalConfig

    readable = "<think> 6*7=42 </think> So 6 * 7 = 42. <answer> 42 </answer>"
    bare = "<think> 6*7=42 </think> <answer> 42 </answer>"
    script = {0: [(readable, "stop"), (readable, "stop"), (bare, "stop")]}
    for override, want in (
        ([], [False, False, True]),
        (["task.format_reward=format_readable"], [True, True, False]),
    ):
        cfg = load_config(EvalConfig, None, ["template=r1", *override])
        result = scripted_eval(monkeypatch, QUESTIONS[:1], script, make_task(cfg.task), n=3)
        assert [s["format"] for s in result.samples[0]["samples"]] == want
        assert result.metrics["eval/format"] == pytest.approx(sum(want) / 3)
        assert result.metrics["eval/pass@1"] == 1.0  # the answer is graded alike


@pytest.mark.parametrize("progress", [True, False])
def test_eval_progress_key_reaches_the_evaluation(tmp_path, monkeypatch, progress):
    """`r1lab eval progress=false` turns the bar off, as it does for `r1lab zero`."""
    import r1lab.evaluate as ev
    from r1lab.cli import main

    seen = {}

    def spy(*args, **kwargs):
        seen["progress"] = kwargs["progress"]
        return ev.EvalResult({"eval/pass@1": 0.0}, [])

    monkeypatch.setattr(ev, "evaluate", spy)
    argv = ["eval", f"model={BASE}", f"out={tmp_path / 'e'}", "num_questions=1", "n=1", "ks=1"]
    assert main([*argv, f"progress={str(progress).lower()}", "workers=0"]) == 0
    assert seen["progress"] is progress


def test_a_summary_stating_a_wrong_equation_is_counted_whatever_the_format(monkeypatch):
    # The defect of every model after the cold start (docs/r1.md): a right answer under a
    # summary whose equation nothing computed. eval/wrong_summary_rate counts it; the readable
    # format (its default, shape alone) does not; a wrong step in the reasoning alone is not one.
    true = "<think> 6*7=42 </think> So 6 * 7 = 42. <answer> 42 </answer>"
    lying = "<think> 6*7=42 </think> So 6 * 7 = 41, since 41 + 1 = 42. <answer> 42 </answer>"
    slip = "<think> 6*7=43 wait 6*7=42 </think> So 6 * 7 = 42. <answer> 42 </answer>"
    terse = "<think> 6*7=42 </think> 6*7=41 <answer> 42 </answer>"  # the equation alone
    script = {0: [(true, "stop"), (lying, "stop"), (slip, "stop"), (terse, "stop")]}
    task = make_task(TaskConfig(name="arithmetic", format_reward="format_readable"))
    result = scripted_eval(monkeypatch, QUESTIONS[:1], script, task, n=4)
    recorded = result.samples[0]["samples"]
    assert [s["wrong_summary"] for s in recorded] == [False, True, False, True]
    assert [s["format"] for s in recorded] == [True] * 4
    assert result.metrics["eval/wrong_summary_rate"] == 0.5
    assert result.metrics["eval/pass@1"] == 1.0  # the answer is graded alike
