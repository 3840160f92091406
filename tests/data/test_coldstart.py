"""`r1lab coldstart`: the config, the balanced build (which rows are kept, dropped and why, with
their provenance), the rewriter fallback, the dataset files and one run end to end."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from r1lab import metrics
from r1lab.config import ConfigError, load_config
from r1lab.data.coldstart import (
    Builder,
    ColdStartConfig,
    check_outputs,
    make_cells,
    stats_markdown,
    stats_paths,
    summarize_stats,
    write_rows,
)
from r1lab.data.readable import parse_readable, rule_rewrite
from r1lab.data.sources import Candidate, SamplesSource, ZeroSample

INVERSE = {"+": "-", "*": "/", "/": "*"}


def worked(ex: dict, answer: str | None = None) -> str:
    """A right two-claim reasoning for an example of either task, in its language."""
    zh = ex.get("language") == "zh"
    if "numbers" in ex:  # countdown: the reference equation, stated and checked
        sol, t = ex["answer"], ex["target"]
        body = (
            f"试 {sol}：{sol} = {t}。检查：{sol} = {t}。"
            if zh
            else f"Try {sol}: {sol} = {t}. Check: {sol} = {t}."
        )
        return f"<think> {body} </think> <answer> {answer or sol} </answer>"
    a, b, op = ex["a"], ex["b"], ex["op"]
    r = int(ex["answer"])
    check = f"{r} {INVERSE[op]} {b} = {a}"
    body = f"{a} {op} {b} = {r}。检查：{check}。" if zh else f"{a} {op} {b} = {r}. Check: {check}."
    return f"<think> {body} </think> <answer> {answer or r} </answer>"


class Scripted:
    """A source double: the next questions of a cell, `texts(example)` sampled for each."""

    def __init__(self, name, texts, serves=lambda cell: True, finished=None):
        self.name, self.model, self.texts, self._serves = name, f"model-{name}", texts, serves
        self.finished = finished or (lambda i: True)
        self.notes: Counter = Counter()
        self.calls = 0
        self.sizes: list[int] = []

    def serves(self, cell) -> bool:
        return self._serves(cell)

    def model_for(self, cell) -> str:
        return self.model

    def batch(self, cell, size, seed):
        self.calls += 1
        self.sizes.append(size)
        return [
            Candidate(self.name, self.model, ex, f"PROMPT {ex['question']}", i, t, self.finished(i))
            for ex in cell.take(size)
            for i, t in enumerate(self.texts(ex))
        ]


def builder(cfg: ColdStartConfig, rewriter=None) -> Builder:
    return Builder(cfg, rewriter=rewriter, log=lambda s: None)


def cfg_of(**kw) -> ColdStartConfig:
    return load_config(ColdStartConfig, None, kw)


# --- config -----------------------------------------------------------------------------------


def test_the_defaults_validate_and_every_key_is_documented():
    from r1lab.cli import _field_docs

    cfg = cfg_of()
    assert cfg.rows == 1000 and cfg.languages == ["en", "zh"] and cfg.ops == "+*/"
    assert cfg.balance_ops
    docs = _field_docs(ColdStartConfig)
    assert {f for f in vars(cfg) if f not in docs} == set()


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("out", "data.csv", "'out' must be a file ending in .jsonl or .parquet"),
        ("filters", ["truncated", "typo"], "'filters' must be a list of truncated"),
        ("sources", ["fewshot", "human"], "'sources' must be a list of fewshot"),
        ("tasks", ["file"], "'task_path' must be a file"),
        ("languages", ["en", "fr"], "'languages' must be distinct languages of en, zh"),
        ("direct_instruction", {"en": "Solve it"}, r"'direct_instruction.en' must be"),
        (
            "rewriter_prompt",
            "{question} {gold}",
            r"'rewriter_prompt': unknown placeholder \{gold\}",
        ),
        ("shots", 0, "'shots' must be >= 1"),
        ("candidates_per_row", 0, "'candidates_per_row' must be >= 1"),
        ("min_relative_yield", 1.5, r"'min_relative_yield' must be in \[0, 1\]"),
        ("min_relative_yield", -0.1, r"'min_relative_yield' must be in \[0, 1\]"),
        ("sources", ["zero_samples"], "'zero_samples' must be a `r1lab zero` run"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_key(key, value, message):
    with pytest.raises(ConfigError, match=message):
        cfg_of(**{key: value})


def test_cells_share_the_rows_equally():
    cells = make_cells(cfg_of(rows=10, balance_ops=False))
    assert [(c.key, c.quota) for c in cells] == [
        ("arithmetic/en", 3),
        ("arithmetic/zh", 2),
        ("countdown/en", 3),
        ("countdown/zh", 2),
    ]
    assert sum(c.quota for c in make_cells(cfg_of())) == 1000
    for rows in (11, 13):  # what does not divide goes to the first tasks and cells, none lost
        assert sum(c.quota for c in make_cells(cfg_of(rows=rows))) == rows
    # Every question of a cell is a training question in the cell's language, division included.
    zh = cells[1].take(40)
    assert all(ex["language"] == "zh" and ex["question"].startswith("计算") for ex in zh)
    assert {ex["op"] for ex in zh} == {"+", "*", "/"}
    assert len({ex["question"] for ex in zh + cells[1].take(40)}) == 80


def test_arithmetic_cells_are_split_by_operation_and_tasks_get_equal_shares():
    cells = make_cells(cfg_of(rows=100))
    assert [(c.key, c.quota) for c in cells] == [
        ("arithmetic[+]/en", 9),
        ("arithmetic[+]/zh", 9),
        ("arithmetic[*]/en", 8),
        ("arithmetic[*]/zh", 8),
        ("arithmetic[/]/en", 8),
        ("arithmetic[/]/zh", 8),
        ("countdown/en", 25),
        ("countdown/zh", 25),
    ]
    for cell in cells[:6]:  # each cell asks only its operation, in its language
        examples = cell.take(30)
        assert {ex["op"] for ex in examples} == {cell.op}
        assert {ex["language"] for ex in examples} == {cell.language}
    one_op = make_cells(cfg_of(rows=10, tasks=["arithmetic"], ops="/"))
    assert [c.key for c in one_op] == ["arithmetic/en", "arithmetic/zh"]


# --- the rules, the rows and their provenance -------------------------------------------------


def hostile(ex: dict) -> list[str]:
    good = worked(ex)
    think = good.split("</think>")[0]
    return [
        good,  # kept
        good,  # duplicate
        worked(ex, answer="1"),  # wrong_answer
        f"{think} </think> The answer is {ex['answer']}.",  # no_answer: outside the tags
        good.replace("</think>", "所以 </think>"),  # mixed_language after a clean start
        f"{think} {' '.join(['Check again: 1+1=2.'] * 6)} </think> <answer> {ex['answer']} </answer>",
        f"<think> This is easy. </think> <answer> {ex['answer']} </answer>",  # short_reasoning
        good.replace("Check", "Verify"),  # truncated (finished False below)
    ]


def test_every_candidate_is_kept_or_dropped_for_its_first_failing_rule():
    cfg = cfg_of(
        rows=4, tasks=["arithmetic"], languages=["en"], balance_ops=False, questions_per_batch=4
    )
    (cell,) = make_cells(cfg)
    source = Scripted("direct", hostile, finished=lambda i: i != 7)
    b = builder(cfg)
    b.fill(cell, [source])
    t = b.tallies[("arithmetic/en", "direct")]
    assert (t.kept, t.candidates, t.surplus) == (4, 32, 0)
    assert dict(t.dropped) == {
        "duplicate": 4,
        "wrong_answer": 4,
        "no_answer": 4,
        "mixed_language": 4,
        "repetition": 4,
        "short_reasoning": 4,
        "truncated": 4,
    }
    assert [r["sample_index"] for r in b.rows] == [0, 0, 0, 0]


def test_a_row_carries_its_prompt_completion_and_provenance():
    cfg = cfg_of(rows=1, tasks=["arithmetic"], languages=["zh"], balance_ops=False)
    (cell,) = make_cells(cfg)
    b = builder(cfg)
    b.fill(cell, [Scripted("fewshot", lambda ex: [worked(ex, answer="0"), worked(ex)])])
    (row,) = b.rows
    ex = cell.pool[0]
    raw = worked(ex)
    # The prompt is the question: `r1lab sft` renders it with its template, as eval and RL do.
    assert row["prompt"] == ex["question"]
    assert row["completion"] == rule_rewrite(raw, ex["answer"], "zh")
    assert parse_readable(row["completion"])[0].summary.startswith("所以 ")
    assert metrics.readability(row["completion"], "zh")["readable"]
    assert row["raw_completion"] == raw
    assert {k: row[k] for k in ("answer", "id", "task", "language", "cell")} == {
        "answer": ex["answer"],
        "id": ex["id"],
        "task": "arithmetic",
        "language": "zh",
        "cell": "arithmetic/zh",
    }
    assert (row["source"], row["model"], row["sample_index"]) == ("fewshot", "model-fewshot", 1)
    assert row["source_prompt"] == f"PROMPT {ex['question']}"
    assert row["rewards"] == {"math_accuracy": 1.0, "format": 1.0, "language_consistency": 1.0}
    assert row["rewriter"] == "rules"
    assert set(row) == {
        "prompt",
        "completion",
        "cell",
        "answer",
        "id",
        "task",
        "language",
        "source",
        "model",
        "source_prompt",
        "sample_index",
        "rewards",
        "raw_completion",
        "rewriter",
    }


def test_rows_per_question_are_capped_and_the_rest_is_surplus():
    cfg = cfg_of(
        rows=3, tasks=["arithmetic"], languages=["en"], balance_ops=False, questions_per_batch=3
    )
    (cell,) = make_cells(cfg)
    variants = lambda ex: [worked(ex), worked(ex).replace("Check", "Verify")]  # noqa: E731
    b = builder(cfg)
    b.fill(cell, [Scripted("direct", variants)])
    t = b.tallies[("arithmetic/en", "direct")]
    assert (t.kept, t.surplus, len({r["prompt"] for r in b.rows})) == (3, 3, 3)
    cfg = cfg_of(
        rows=6, tasks=["arithmetic"], languages=["en"], balance_ops=False, questions_per_batch=3
    )
    cfg.max_per_question = 2
    (cell,) = make_cells(cfg)
    b = builder(cfg)
    b.fill(cell, [Scripted("direct", variants)])
    assert (b.tallies[("arithmetic/en", "direct")].kept, len({r["prompt"] for r in b.rows})) == (
        6,
        3,
    )


def test_switched_off_rules_keep_what_they_would_drop():
    cfg = cfg_of(
        rows=8, tasks=["arithmetic"], languages=["en"], balance_ops=False, questions_per_batch=4
    )
    cfg.filters = [f for f in cfg.filters if f != "short_reasoning"]
    cfg.max_per_question = 2
    (cell,) = make_cells(cfg)
    guess = lambda ex: [f"<think> Easy. </think> <answer> {ex['answer']} </answer>"]  # noqa: E731
    b = builder(cfg)
    b.fill(cell, [Scripted("direct", guess)])
    assert len(b.rows) == 8 and all("Easy." in r["completion"] for r in b.rows)


# --- balance ----------------------------------------------------------------------------------


def test_sources_share_a_cell_equally():
    cfg = cfg_of(rows=48, questions_per_batch=4)
    cells = make_cells(cfg)
    b = builder(cfg)
    one, two = (
        Scripted("fewshot", lambda ex: [worked(ex)]),
        Scripted("direct", lambda ex: [worked(ex)]),
    )
    for cell in cells:
        b.fill(cell, [one, two])
    # Half the rows each task, arithmetic's split by operation and language, countdown's by
    # language; every row's question is of its cell.
    assert Counter(r["cell"] for r in b.rows) == {
        **{f"arithmetic[{op}]/{lang}": 4 for op in "+*/" for lang in ("en", "zh")},
        "countdown/en": 12,
        "countdown/zh": 12,
    }
    for r in b.rows:
        if r["task"] == "arithmetic":
            assert f" {r['cell'][11]} " in r["prompt"] and r["cell"].endswith(r["language"])
    assert Counter(r["source"] for r in b.rows) == {"fewshot": 24, "direct": 24}
    for cell in cells:  # half of each cell's quota each
        want = cell.quota // 2
        assert b.tallies[(cell.key, "fewshot")].kept == b.tallies[(cell.key, "direct")].kept == want


def test_a_source_that_gives_up_leaves_its_share_to_the_others():
    cfg = cfg_of(
        rows=10, tasks=["arithmetic"], languages=["en"], balance_ops=False, questions_per_batch=4
    )
    cfg.give_up_after = 8
    (cell,) = make_cells(cfg)
    bad = Scripted("zero", lambda ex: [worked(ex, answer="0")])
    good = Scripted("fewshot", lambda ex: [worked(ex)])
    b = builder(cfg)
    b.fill(cell, [bad, good])
    assert len(b.rows) == 10 and {r["source"] for r in b.rows} == {"fewshot"}
    t = b.tallies[("arithmetic/en", "zero")]
    assert (t.kept, t.candidates, bad.calls) == (0, 8, 2)
    assert t.done.startswith("gave up") and t.dropped == {"wrong_answer": 8}
    stats = summarize_stats(b, [cell], {}, {}, len)
    assert stats["cells"]["arithmetic/en"]["sources"]["zero"]["stopped"].startswith("gave up")
    assert stats["sources"]["fewshot"]["yield"] == 1.0
    # Full batches until the yield is known, then half again the rows still wanted (a good row
    # left in reserve is used first).
    assert good.sizes == [4, 2, 4] and good.calls == 3


def test_a_source_far_less_productive_than_another_leaves_it_the_cell():
    cfg = cfg_of(
        rows=40, tasks=["arithmetic"], languages=["en"], balance_ops=False, questions_per_batch=4
    )
    cfg.give_up_after = 8
    (cell,) = make_cells(cfg)
    ids = Counter()

    def one_in(k):  # right on every k-th question the source is asked
        def texts(ex):
            ids[k] += 1
            return [worked(ex) if ids[k] % k == 1 or k == 1 else worked(ex, answer="0")]

        return texts

    poor, good = Scripted("fewshot", one_in(8)), Scripted("zero", one_in(1))
    b = builder(cfg)
    b.fill(cell, [poor, good])
    t = b.tallies[("arithmetic/en", "fewshot")]
    # 1 of its first 8 (12.5%) against all of zero's: under a quarter, so it stops there and
    # zero fills the cell.
    assert (t.kept, t.candidates) == (1, 8)
    assert t.done == "outpaced: 12.5% of its candidates pass, zero's 100.0%"
    assert b.tallies[("arithmetic/en", "zero")].kept == 39 and len(b.rows) == 40
    # At a ratio it clears (12.5% >= 0.1 x 100%) it keeps its half; at 0 no source is
    # outpaced.
    for ratio in (0.1, 0.0):
        cfg.min_relative_yield = ratio
        ids.clear()
        (cell,) = make_cells(cfg)
        b = builder(cfg)
        b.fill(cell, [Scripted("fewshot", one_in(8)), Scripted("zero", one_in(1))])
        assert b.tallies[("arithmetic/en", "fewshot")].kept == 20, ratio
        assert b.tallies[("arithmetic/en", "fewshot")].done == ""
    # Exactly a quarter is not under it; and a source that stopped sampling (here: out of
    # questions) outpaces nobody, since it will not fill the cell.
    cfg.min_relative_yield = 0.25

    class Once(Scripted):
        def batch(self, cell, size, seed):
            return super().batch(cell, size, seed) if not self.calls else None

    for order, kept in (
        ([Scripted("fewshot", one_in(4)), Scripted("zero", one_in(1))], 20),
        ([Once("zero", one_in(1)), Scripted("fewshot", one_in(8))], 36),  # zero stops first
    ):
        ids.clear()
        (cell,) = make_cells(cfg)
        b = builder(cfg)
        b.fill(cell, order)
        t = b.tallies[("arithmetic/en", "fewshot")]
        assert (t.kept, t.done) == (kept, ""), kept


def test_a_spent_budget_stops_a_source_and_the_shortfall_is_reported():
    cfg = cfg_of(
        rows=50, tasks=["arithmetic"], languages=["en"], balance_ops=False, questions_per_batch=4
    )
    cfg.max_candidates, cfg.give_up_after = 16, 1000
    (cell,) = make_cells(cfg)
    rare = lambda ex: [worked(ex) if ex["id"].endswith("-0") else worked(ex, answer="0")]  # noqa: E731
    b = builder(cfg)
    b.fill(cell, [Scripted("direct", rare)])
    t = b.tallies[("arithmetic/en", "direct")]
    assert (t.kept, t.candidates) == (1, 16) and t.done.startswith("budget spent")
    md = stats_markdown(summarize_stats(b, [cell], {}, {}, len))
    assert "| arithmetic/en | 50 | 1 | 1/16 |" in md
    # The budget per row of quota caps it too: 8 rows x 2 candidates = 16 of the 1,000 allowed.
    cfg = cfg_of(
        rows=8, tasks=["arithmetic"], languages=["en"], balance_ops=False, questions_per_batch=4
    )
    cfg.max_candidates, cfg.candidates_per_row, cfg.give_up_after = 1000, 2, 1000
    (cell,) = make_cells(cfg)
    b = builder(cfg)
    b.fill(cell, [Scripted("direct", rare)])
    t = b.tallies[("arithmetic/en", "direct")]
    assert (t.kept, t.candidates, t.done) == (1, 16, "budget spent (16 candidates)")


def test_an_operation_no_source_answers_gives_its_quota_to_the_others_of_its_language():
    cfg = cfg_of(rows=48, questions_per_batch=4, give_up_after=8)
    cells = make_cells(cfg)

    def texts(ex):  # right on everything but Chinese division and Chinese countdown
        bad = ex["language"] == "zh" and ("numbers" in ex or ex["op"] == "/")
        return [worked(ex, answer="0") if bad else worked(ex)]

    b = builder(cfg)
    b.build(cells, [Scripted("fewshot", texts)])
    # Chinese division's 4 rows go to Chinese addition and multiplication; Chinese countdown's
    # shortfall stays (tasks and languages keep their shares), English cells are untouched.
    assert Counter(r["cell"] for r in b.rows) == {
        **{f"arithmetic[{op}]/en": 4 for op in "+*/"},
        "arithmetic[+]/zh": 6,
        "arithmetic[*]/zh": 6,
        "countdown/en": 12,
    }
    assert {c.key: (c.quota, c.moved) for c in cells if c.moved} == {
        "arithmetic[+]/zh": (6, 2),
        "arithmetic[*]/zh": (6, 2),
        "arithmetic[/]/zh": (0, -4),
    }
    assert (cells[-1].key, cells[-1].quota) == ("countdown/zh", 12)
    for r in b.rows:  # a moved row is still of its own cell's operation and language
        if r["task"] == "arithmetic":
            assert f" {r['cell'][11]} " in r["prompt"] and r["cell"].endswith(r["language"])
    md = stats_markdown(summarize_stats(b, cells, {}, {}, len))
    assert "| arithmetic[/]/zh | 0 (-4) | 0 | 0/8 |" in md
    assert "| arithmetic[+]/zh | 6 (+2) | 6 | 6/7 |" in md  # 3 questions asked for 2 rows
    assert "| arithmetic[+]/en | 4 | 4 | 4/4 |" in md
    assert "| countdown/zh | 12 | 0 | 0/8 |" in md
    # Without refill_ops the short cell stays short and no quota moves (r1lab r1's cold start,
    # as docs/r1.md measured it).
    cfg.refill_ops = False
    cells = make_cells(cfg)
    b = builder(cfg)
    b.build(cells, [Scripted("fewshot", texts)])
    assert not any(c.moved for c in cells) and b.kept["arithmetic[+]/zh"] == 4
    assert len(b.rows) == 32


def test_a_sibling_that_falls_short_passes_its_part_on():
    cfg = cfg_of(rows=12, tasks=["arithmetic"], languages=["en"], questions_per_batch=4)
    cfg.give_up_after, cfg.max_candidates = 8, 16
    cells = make_cells(cfg)
    right_sums = []

    def texts(ex):  # division never right; addition right on its first 5 questions only
        if ex["op"] == "+":
            right_sums.append(ex["question"])
        ok = ex["op"] == "*" or (ex["op"] == "+" and len(right_sums) <= 5)
        return [worked(ex) if ok else worked(ex, answer="0")]

    b = builder(cfg)
    b.build(cells, [Scripted("direct", texts)])
    assert {c.key: (b.kept[c.key], c.quota, c.moved) for c in cells} == {
        "arithmetic[+]/en": (5, 5, 1),
        "arithmetic[*]/en": (7, 7, 3),
        "arithmetic[/]/en": (0, 0, -4),
    }
    assert len(b.rows) == 12
    # The refill goes on with the source's budget and batch count (no batch seed reused):
    # 4 questions, then 3, 3, 3 as the yield falls, then what the budget (16) leaves at
    # samples_per_question=2 a question: 2 questions, then 1 (this double answers once each).
    t = b.tallies[("arithmetic[+]/en", "direct")]
    assert (t.candidates, t.batches, t.done) == (16, 6, "budget spent (16 candidates)")


def test_a_source_serves_only_its_cells_and_samples_are_read_once():
    cfg = cfg_of(rows=4, questions_per_batch=2, balance_ops=False)
    cells = make_cells(cfg)
    pool = cells[0].task.examples("train", 3)
    samples = [ZeroSample(ex["question"], worked(ex), "P", ex, "f, line 1") for ex in pool]
    source = SamplesSource(samples, "arithmetic", "runs/demo")
    b = builder(cfg)
    for cell in cells:
        b.fill(cell, [source])
    assert [(r["task"], r["language"], r["source"], r["model"]) for r in b.rows] == [
        ("arithmetic", "en", "zero_samples", "runs/demo")
    ]  # one row: the cell's share of 4 rows, read once; no Chinese samples, no countdown ones
    assert b.tallies[("arithmetic/en", "zero_samples")].surplus == 2
    assert ("countdown/en", "zero_samples") not in b.tallies
    # An operation's cell is served that operation's samples only.
    by_op = make_cells(cfg_of(rows=12, tasks=["arithmetic"], languages=["en"]))
    mixed = cells[0].task.examples("train", 30)
    source = SamplesSource(
        [ZeroSample(ex["question"], worked(ex), "P", ex, "f") for ex in mixed], "arithmetic", "r"
    )
    for cell in by_op:
        got = source.batch(cell, 30, 0)
        assert got and {c.example["op"] for c in got} == {cell.op}


# --- a rewriter model -------------------------------------------------------------------------


class FakeRewriter:
    name = "fake-model"

    def __init__(self, answer):
        self.answer = answer
        self.items = []

    def rewrite(self, items):
        self.items.extend(items)
        return [self.answer(i, item) for i, item in enumerate(items)]


def test_a_rewriter_model_is_used_only_where_its_text_passes_every_rule():
    def answer(i, item):
        reasoning = item.completion.split("<think>")[1].split("</think>")[0].strip()
        good = (
            f"<think> {reasoning} </think> Result: {item.answer}. <answer> {item.answer} </answer>"
        )
        return [
            good,
            None,  # the model gave nothing
            f"<think> {reasoning} </think> Result: {item.answer}.",  # a summary with no answer
            good.replace(f"<answer> {item.answer}", "<answer> 0"),  # a changed answer
            good.replace("Result:", "结果："),  # a summary in another language
            good.replace(reasoning, "Trust me."),  # the reasoning dropped
        ][i]

    cfg = cfg_of(
        rows=6, tasks=["arithmetic"], languages=["en"], balance_ops=False, questions_per_batch=6
    )
    (cell,) = make_cells(cfg)
    fake = FakeRewriter(answer)
    b = builder(cfg, rewriter=fake)
    b.fill(cell, [Scripted("direct", lambda ex: [worked(ex)])])
    assert len(b.rows) == 6  # a failed rewrite never costs a row: the rule rewrite stands
    assert [r["rewriter"] for r in b.rows] == ["fake-model"] + ["rules"] * 5
    assert b.rows[0]["completion"].split("</think> ")[1].startswith("Result: ")
    for r in b.rows[1:]:
        assert r["completion"] == rule_rewrite(r["raw_completion"], r["answer"], "en")
    assert b.rewriter_used == 1
    assert dict(b.rewriter_fallbacks) == {
        "no answer": 1,
        "not the readable format": 1,
        "wrong_answer": 1,
        "mixed_language": 1,
        "short_reasoning": 1,
    }
    assert [i.answer for i in fake.items] == [r["answer"] for r in b.rows]


# --- files ------------------------------------------------------------------------------------


ROWS = [
    {"prompt": "p", "completion": "c 中文", "rewards": {"math_accuracy": 1.0}, "sample_index": 0},
    {"prompt": "q", "completion": "d", "rewards": {"countdown": 1.0}, "sample_index": 3},
]


def test_rows_are_written_as_jsonl_or_parquet_by_extension(tmp_path):
    import pyarrow.parquet as pq

    write_rows(ROWS, tmp_path / "d.jsonl")
    lines = (tmp_path / "d.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == ROWS and "中文" in lines[0]
    write_rows(ROWS, tmp_path / "d.parquet")
    back = pq.read_table(tmp_path / "d.parquet").to_pylist()
    assert [(r["prompt"], r["completion"], r["sample_index"]) for r in back] == [
        ("p", "c 中文", 0),
        ("q", "d", 3),
    ]
    assert back[1]["rewards"]["countdown"] == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl", "d.parquet"]  # no temp left


def test_existing_outputs_are_refused_or_moved_aside(tmp_path):
    out = tmp_path / "cold.jsonl"
    cfg = cfg_of(out=str(out))
    assert check_outputs(cfg) == [out, *stats_paths(out)]
    assert stats_paths(out) == (tmp_path / "cold.stats.json", tmp_path / "cold.stats.md")
    write_rows(ROWS, out)
    with pytest.raises(ConfigError, match="cold.jsonl exists; .* --overwrite"):
        check_outputs(cfg)
    cfg.overwrite = True
    check_outputs(cfg)
    write_rows(ROWS[:1], out)
    assert len(out.read_text().splitlines()) == 1
    (aside,) = [p for p in tmp_path.iterdir() if ".old-" in p.name]
    assert len(aside.read_text().splitlines()) == 2


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "cold.jsonl"
    write_rows(ROWS, out)
    with pytest.raises(TypeError):
        write_rows([{"x": object()}], out)
    assert out.read_text().count("\n") == 2
    assert [p.name for p in tmp_path.iterdir()] == ["cold.jsonl"]


# --- end to end -------------------------------------------------------------------------------


def zero_run(tmp_path: Path, texts) -> Path:
    """A `r1lab zero` run directory on arithmetic whose samples are `texts(example)`."""
    from r1lab.rl.config import ZeroConfig
    from r1lab.run.rundir import save_run_config
    from r1lab.tasks import ArithmeticTask, TaskConfig

    run = tmp_path / "zero"
    (run / "samples").mkdir(parents=True)
    save_run_config(ZeroConfig(task=TaskConfig("arithmetic"), train_pool=32, out=str(run)), run)
    pool = ArithmeticTask().examples("train", 32)
    rows = [
        {"question": ex["question"], "prompt": "P", "completion": t}
        for ex in pool[:4]
        for t in texts(ex)
    ]
    (run / "samples" / "step-000010.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    )
    return run


def test_the_command_builds_a_dataset_and_its_stats_from_a_model_and_a_zero_run(
    tmp_path, tiny_lm, capsys
):
    from r1lab.cli import main

    run = zero_run(tmp_path, lambda ex: hostile(ex)[:7])
    out = tmp_path / "cold.parquet"
    argv = [
        "coldstart",
        f"model={tiny_lm}",
        "tasks=[arithmetic]",
        "languages=[en]",
        "balance_ops=false",
        "sources=[direct,zero,zero_samples]",
        f"zero_samples={run}",
        "rows=4",
        "samples_per_question=2",
        "questions_per_batch=4",
        "give_up_after=8",
        "max_new_tokens=8",
        f"out={out}",
        "device=cpu",
        "threads=1",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "source zero: skipped, no zero_model given" in printed.err
    import pyarrow.parquet as pq

    rows = pq.read_table(out).to_pylist()
    stats = json.loads((tmp_path / "cold.stats.json").read_text())
    md = (tmp_path / "cold.stats.md").read_text()
    # The random model keeps nothing and gives up; the zero run's four questions give a row each
    # (its share grows to the whole cell), and its hostile samples are dropped by reason.
    assert [r["source"] for r in rows] == ["zero_samples"] * 4
    assert all(r["model"] == str(run) for r in rows)
    assert all(parse_readable(r["completion"])[0] for r in rows)
    assert stats["rows"] == 4 and stats["rows_by_source"] == {"zero_samples": 4}
    assert stats["sources"]["zero_samples"]["dropped"] == {
        "duplicate": 4,
        "wrong_answer": 4,
        "no_answer": 4,
        "mixed_language": 4,
        "repetition": 4,
        "short_reasoning": 4,
    }
    assert stats["sources"]["direct"]["rows"] == 0
    assert stats["cells"]["arithmetic/en"]["sources"]["direct"]["stopped"].startswith("gave up")
    assert stats["skipped_sources"]["zero"].startswith("no zero_model given")
    assert stats["completion_tokens"]["min"] > 10 and stats["config"]["rows"] == 4
    assert "| arithmetic/en | 4 | 4 |" in md and "| repetition | 4 |" in md
    # Run again: the outputs are there, so it refuses before loading anything.
    assert main(argv) == 2
    assert "cold.parquet exists" in capsys.readouterr().err


def zero_checkpoint_run(tmp_path: Path, model: Path, name: str, task: str) -> Path:
    """A `r1lab zero` run directory on `task` whose last checkpoint is `model`'s files."""
    from r1lab.rl.config import ZeroConfig
    from r1lab.run.rundir import save_run_config
    from r1lab.tasks import TaskConfig

    run = tmp_path / name
    ckpt = run / "checkpoints" / "step-000010"
    ckpt.mkdir(parents=True)
    for f in Path(model).iterdir():
        (ckpt / f.name).symlink_to(f)
    (ckpt / "trainer_state.pt").write_bytes(b"")
    save_run_config(ZeroConfig(task=TaskConfig(task), out=str(run)), run)
    return run


def test_the_defaults_are_the_measured_1000_row_build():
    # docs/coldstart.md, "The default": each of these was measured against its alternative.
    cfg = ColdStartConfig()
    assert (cfg.rows, cfg.samples_per_question, cfg.questions_per_batch) == (1000, 2, 128)
    assert (cfg.temperature, cfg.top_p, cfg.max_new_tokens) == (0.3, 0.95, 600)
    assert (cfg.give_up_after, cfg.min_relative_yield, cfg.candidates_per_row) == (256, 0.25, 16)
    assert (cfg.max_candidates, cfg.max_per_question) == (4096, 1)
    assert cfg.balance_ops and cfg.refill_ops and cfg.zero_model == []


def test_sampling_settings_reach_every_model_that_samples(tmp_path, tiny_lm, monkeypatch):
    from r1lab.cli import main
    from r1lab.data import coldstart

    seen = []

    class Spy(coldstart.ModelGenerator):
        def __init__(self, *args, **kw):
            seen.append({k: kw[k] for k in ("temperature", "top_p", "max_new_tokens", "stop")})
            super().__init__(*args, **kw)

    monkeypatch.setattr(coldstart, "ModelGenerator", Spy)
    run = zero_checkpoint_run(tmp_path, Path(tiny_lm), "zero-a", "arithmetic")
    argv = [
        "coldstart",
        f"model={tiny_lm}",
        f"zero_model={run}",
        "tasks=[arithmetic]",
        "languages=[en]",
        "balance_ops=false",
        "sources=[direct,zero]",
        "rows=2",
        "questions_per_batch=4",
        "samples_per_question=3",
        "give_up_after=6",
        "temperature=0.9",
        "top_p=0.8",
        "max_new_tokens=8",
        f"out={tmp_path / 'cold.jsonl'}",
        "device=cpu",
        "threads=1",
    ]
    assert main(argv) == 0
    want = {"temperature": 0.9, "top_p": 0.8, "max_new_tokens": 8, "stop": ["</answer>"]}
    assert seen == [want, want]  # the base (direct) and the zero model
    stats = json.loads((tmp_path / "cold.stats.json").read_text())
    for source in ("direct", "zero"):  # 4 questions x 3 samples, none kept: it gives up
        assert stats["cells"]["arithmetic/en"]["sources"][source]["candidates"] == 12


def test_the_micro_world_base_gets_the_shipped_r1_zero_as_its_zero_source(tmp_path, capsys):
    from r1lab.cli import main
    from r1lab.microworld import DEFAULT_ZERO
    from r1lab.run import checkpoint_meta

    assert checkpoint_meta(DEFAULT_ZERO)["task"] == "countdown"
    out = tmp_path / "cold.jsonl"
    argv = [
        "coldstart",
        "tasks=[countdown]",
        "languages=[en]",
        "sources=[zero]",
        "rows=2",
        "samples_per_question=2",
        "questions_per_batch=16",
        "max_new_tokens=200",
        f"out={out}",
        "device=cpu",
    ]
    assert main(argv) == 0
    assert "skipped" not in capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["source"], r["model"], r["cell"]) for r in rows] == [
        ("zero", str(DEFAULT_ZERO), "countdown/en")
    ] * 2
    stats = json.loads((tmp_path / "cold.stats.json").read_text())
    assert stats["cells"]["countdown/en"]["sources"]["zero"]["model"] == str(DEFAULT_ZERO)
    assert not stats["skipped_sources"]


def test_the_command_asks_each_cell_the_zero_model_of_its_task(
    tmp_path, tiny_lm, capsys, monkeypatch
):
    from r1lab.cli import main
    from r1lab.run import model as run_model

    loaded = []
    load = run_model.load_model
    monkeypatch.setattr(
        run_model, "load_model", lambda path, *a: loaded.append(path) or load(path, *a)
    )
    arith = zero_checkpoint_run(tmp_path, tiny_lm, "demo", "arithmetic")
    count = zero_checkpoint_run(tmp_path, tiny_lm, "zero-countdown", "countdown")
    again = zero_checkpoint_run(tmp_path, tiny_lm, "zero-countdown-2", "countdown")
    out = tmp_path / "cold.jsonl"
    argv = [
        "coldstart",
        f"model={tiny_lm}",
        "tasks=[arithmetic,countdown]",
        "languages=[en]",
        "balance_ops=false",
        "sources=[zero]",
        f"zero_model=[{count},{arith},{again}]",  # not in the cells' order: the task decides
        "rows=2",
        "samples_per_question=1",
        "questions_per_batch=2",
        "give_up_after=2",
        "max_new_tokens=4",
        f"out={out}",
        "device=cpu",
        "threads=1",
        "progress=false",
    ]
    assert main(argv) == 0
    stats = json.loads((tmp_path / "cold.stats.json").read_text())
    models = {key: c["sources"]["zero"]["model"] for key, c in stats["cells"].items()}
    assert models == {"arithmetic/en": str(arith), "countdown/en": str(count)}
    assert stats["sources"]["zero"]["candidates"] == 4
    assert stats["config"]["zero_model"] == [str(count), str(arith), str(again)]
    # The second countdown model is asked by no cell: not loaded, and said so.
    why = "trained on countdown, and every cell asks another model"
    assert stats["skipped_sources"] == {f"zero_model {again}": why}
    assert f"zero_model {again}: not loaded, {why}" in capsys.readouterr().err
    step = Path("checkpoints") / "step-000010"
    assert loaded == [str(tiny_lm), count / step, arith / step]  # the base, then the two asked


def test_the_command_rewrites_with_an_endpoint_and_fails_early_when_it_is_dead(tmp_path, tiny_lm):
    import socket

    from chat_server import chat, serving

    from r1lab.data.coldstart import run as coldstart
    from r1lab.data.rewriter import RewriterError

    def respond(n: int, body: dict):
        # The prompt below sends the answer and the completion; the reply keeps the reasoning
        # and writes its own summary.
        answer, _, completion = body["messages"][0]["content"].partition("|")
        reasoning = completion.split("<think>")[-1].split("</think>")[0].strip()
        return chat(f"<think> {reasoning} </think> Result: {answer}. <answer> {answer} </answer>")

    run = zero_run(tmp_path, lambda ex: [worked(ex)])
    cfg = cfg_of(
        model=str(tiny_lm),
        tasks=["arithmetic"],
        languages=["en"],
        sources=["zero_samples"],
        zero_samples=str(run),
        rows=2,
        rewriter_prompt="{answer}|{completion}",
        rewriter_model="m",
        rewriter_retries=0,
        out=str(tmp_path / "a.jsonl"),
        device="cpu",
        progress=False,
    )
    with serving(respond) as server:
        cfg.rewriter = server.url
        assert coldstart(cfg) == 0
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and len(server.requests) == 3  # the check, then one per row
    for r in rows:
        assert r["rewriter"] == f"{server.url}/v1/chat/completions (m)"
        assert f"</think> Result: {r['answer']}. <answer>" in r["completion"]
    stats = json.loads((tmp_path / "a.stats.json").read_text())
    assert stats["rewriter"]["used"] == 2 and stats["rewriter"]["fallbacks"] == {}

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        cfg.rewriter = f"http://127.0.0.1:{sock.getsockname()[1]}"
    cfg.out = str(tmp_path / "b.jsonl")
    with pytest.raises(RewriterError, match="did not answer"):
        coldstart(cfg)
    assert not (tmp_path / "b.jsonl").exists()
