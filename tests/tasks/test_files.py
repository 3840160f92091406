"""User data as tasks: formats, adapters, field mapping, splits, errors, hub gating, grading."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r1lab.config import ConfigError
from r1lab.tasks import TaskConfig
from r1lab.tasks.files import (
    DEFAULT_TEST_SIZE,
    FileTask,
    detect_format,
    load_file_task,
    split_examples,
)

FIXTURES = Path(__file__).parent / "fixtures"
GSM8K = FIXTURES / "gsm8k_sample.jsonl"
MATH = FIXTURES / "math_sample.jsonl"
REPO = Path(__file__).resolve().parents[2]


def all_examples(task: FileTask) -> list[dict]:
    return task.train + task.test


def by_question(examples: list[dict]) -> dict[str, dict]:
    return {ex["question"]: ex for ex in examples}


# --- Adapters ----------------------------------------------------------------------------------


def test_gsm8k_file_is_detected_and_its_references_normalised():
    task = load_file_task(str(GSM8K))
    assert task.format == "gsm8k"
    exs = all_examples(task)
    assert len(exs) == 12
    answers = {ex["answer"] for ex in exs}
    # `#### 1,080` and `#### 24,960` lose their commas; negatives and decimals stay as written.
    assert {"72", "1080", "24960", "-7", "2.25"} <= answers
    assert not any("," in a or "####" in a for a in answers)
    farmer = next(ex for ex in exs if ex["question"].startswith("A farmer"))
    assert farmer["answer"] == "1080"
    assert farmer["solution"].endswith("#### 1,080")  # the full worked answer is kept
    assert "<<36*30=1080>>" in farmer["solution"]
    assert farmer["id"] == "gsm8k_sample:2"  # no id column: file stem and physical line
    assert set(farmer) == {"id", "question", "answer", "solution"}


def test_math_file_references_are_the_last_balanced_box():
    task = load_file_task(str(MATH))
    assert task.format == "math"
    exs = by_question(all_examples(task))
    assert len(exs) == 10
    got = sorted(ex["answer"] for ex in exs.values())
    for ref in (r"\frac{1}{2}", r"\sqrt{2}", "(1,2]", "(1, 4)", r"9\pi", r"\frac{5}{6}"):
        assert ref in got, (ref, got)
    # Two boxes in one solution: the last one is the answer.
    power = next(ex for q, ex in exs.items() if "^{-2}" in q)
    assert power["answer"] == "4"
    half = next(ex for ex in exs.values() if ex["answer"] == r"\frac{1}{2}")
    assert half["level"] == "Level 1" and half["type"] == "Prealgebra"
    assert half["solution"].endswith(r"$\boxed{\frac{1}{2}}$.")
    assert "problem" not in half  # mapped to `question`


def test_detect_format():
    assert detect_format({"question": "q", "answer": "x\n#### 3"}) == "gsm8k"
    assert detect_format({"question": "q", "answer": "3"}) == "jsonl"
    assert detect_format({"problem": "p", "solution": r"\boxed{3}", "level": "Level 1"}) == "math"
    # MATH-500 layout: a separate answer column is the reference; the solution passes through.
    assert detect_format({"problem": "p", "solution": "s", "answer": "3"}) == "jsonl"
    assert detect_format({"prompt": "p", "target": "#### 4"}, answer_field="target") == "gsm8k"


def test_math500_layout_needs_no_mapping():
    rows = [{"problem": "What is 1+1?", "solution": r"\boxed{2}", "answer": "2", "unique_id": "a"}]
    task = FileTask.from_rows(rows, test_size=0)
    (ex,) = task.examples("train")
    assert task.format == "jsonl"
    assert ex["question"] == "What is 1+1?" and ex["answer"] == "2"
    assert ex["solution"] == r"\boxed{2}" and ex["unique_id"] == "a"


# --- Field mapping -----------------------------------------------------------------------------


def test_field_mapping_renames_columns_and_passes_the_rest_through():
    rows = [
        {"prompt": "What is 2+3?", "target": 5, "uid": 101, "difficulty": "easy"},
        {"prompt": "What is 2*3?", "target": 6.0, "uid": 102, "difficulty": "easy"},
    ]
    task = FileTask.from_rows(
        rows, question_field="prompt", answer_field="target", id_field="uid", test_size=0
    )
    exs = {ex["id"]: ex for ex in task.examples("train")}
    assert exs["101"] == {
        "id": "101",
        "question": "What is 2+3?",
        "answer": "5",
        "difficulty": "easy",
    }
    assert exs["102"]["answer"] == "6"  # a float column's 6.0 is the integer 6


def test_an_id_column_is_used_when_present_and_must_be_unique():
    rows = [
        {"id": "a", "question": "q1", "answer": "1"},
        {"id": "b", "question": "q2", "answer": "2"},
    ]
    task = FileTask.from_rows(rows, test_size=0)
    assert sorted(ex["id"] for ex in task.examples("train")) == ["a", "b"]
    rows[1]["id"] = "a"
    with pytest.raises(
        ConfigError, match=r"<rows>, row 1: field 'id': id 'a' repeats <rows>, row 0"
    ):
        FileTask.from_rows(rows, test_size=0)


def test_adapter_fields_can_be_overridden():
    rows = [{"prompt": "Q?", "worked": "so\n#### 1,234"}]
    task = FileTask.from_rows(
        rows, format="gsm8k", question_field="prompt", answer_field="worked", test_size=0
    )
    (ex,) = task.examples("train")
    assert ex["answer"] == "1234" and ex["solution"] == "so\n#### 1,234"


def test_rewards_spec():
    task = FileTask.from_rows([{"question": "q", "answer": "1"}], format_weight=0.2)
    assert task.name == "file"
    assert task.rewards.weights == {"format": 0.2, "math_accuracy": 1.0}
    assert task.rewards.accuracy == "math_accuracy" and task.rewards.format == "format"


# --- Splits ------------------------------------------------------------------------------------


def _rows(n: int) -> list[dict]:
    return [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(n)]


def test_single_file_split_is_seeded_deterministic_and_disjoint():
    rows = _rows(200)
    a = FileTask.from_rows(rows, seed=3)
    b = FileTask.from_rows(rows, seed=3)
    assert a.examples("train") == b.examples("train") and a.examples("test") == b.examples("test")
    train_q = {ex["question"] for ex in a.examples("train")}
    test_q = {ex["question"] for ex in a.examples("test")}
    assert not train_q & test_q
    assert len(train_q | test_q) == 200
    assert len(test_q) == round(DEFAULT_TEST_SIZE * 200)
    other = {ex["question"] for ex in FileTask.from_rows(rows, seed=4).examples("test")}
    assert other != test_q  # another seed, another split


@settings(max_examples=60, deadline=None)
@given(
    questions=st.lists(st.sampled_from([f"q{i}" for i in range(30)]), min_size=1, max_size=40),
    test_size=st.floats(0, 1) | st.integers(0, 40),
    seed=st.integers(0, 2**31),
)
def test_split_is_a_partition_by_question(questions, test_size, seed):
    exs = [{"id": str(i), "question": q, "answer": "1"} for i, q in enumerate(questions)]
    if isinstance(test_size, int) and test_size > len(exs):
        test_size = len(exs)
    train, test = split_examples(exs, test_size, seed)
    assert sorted(e["id"] for e in train + test) == sorted(e["id"] for e in exs)
    assert not {e["question"] for e in train} & {e["question"] for e in test}
    asked = test_size if isinstance(test_size, int) else round(test_size * len(exs))
    assert len(test) >= min(asked, len(exs))
    _, test_rev = split_examples(exs[::-1], test_size, seed)
    assert {e["id"] for e in test_rev} == {e["id"] for e in test}  # row order does not matter


def test_split_ignores_row_order_and_keeps_repeated_questions_together():
    rows = _rows(50) + [{"question": "What is  3 + 3?", "answer": "6"}]  # repeat, spaced oddly
    fwd = FileTask.from_rows(rows, test_size=10, seed=1)
    rev = FileTask.from_rows(rows[::-1], test_size=10, seed=1)
    assert [e["question"] for e in fwd.test] == [e["question"] for e in rev.test]
    assert {e["question"] for e in fwd.train} == {e["question"] for e in rev.train}
    sides = [
        "test" if any(" ".join(e["question"].split()) == "What is 3 + 3?" for e in part) else ""
        for part in (fwd.train, fwd.test)
    ]
    assert sides.count("test") == 1  # both copies on one side


@pytest.mark.parametrize(("test_size", "n_test"), [(0, 0), (0.25, 3), (5, 5), (1.0, 12), (0.01, 1)])
def test_test_size_as_fraction_or_count(test_size, n_test):
    task = load_file_task(str(GSM8K), test_size=test_size)
    assert len(task.test) == n_test and len(task.train) == 12 - n_test


def test_first_n_examples_are_a_prefix_of_more():
    task = FileTask.from_rows(_rows(100), seed=7)
    assert task.examples("train", 5) == task.examples("train", 20)[:5]
    assert len(task.examples("test", 1000)) == len(task.test)  # asking for more gives all


def test_split_examples_rejects_a_count_larger_than_the_data():
    exs = FileTask.from_rows(_rows(4), test_size=0).train
    with pytest.raises(ConfigError, match="test_size=9, but x has 4 rows"):
        split_examples(exs, 9, seed=0, where="x")
    with pytest.raises(ConfigError, match=r"a fraction must lie in \[0, 1\]"):
        split_examples(exs, 1.5, seed=0)


def test_separate_test_file_is_used_as_given(tmp_path):
    test_path = tmp_path / "test.jsonl"
    test_path.write_text(json.dumps({"question": "What is 1 + 1?", "answer": "#### 2"}) + "\n")
    task = load_file_task(str(GSM8K), test_file=str(test_path))
    assert len(task.examples("train")) == 12
    (ex,) = task.examples("test")
    assert ex["answer"] == "2" and ex["id"] == "test:1"


def test_empty_split_and_unknown_split_errors():
    task = FileTask.from_rows(_rows(3), test_size=0)
    with pytest.raises(ConfigError, match="the test split is empty"):
        task.examples("test")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        task.examples("dev")


# --- Errors a user can act on ------------------------------------------------------------------


def test_missing_field_names_file_physical_line_and_fields_present():
    path = str(FIXTURES / "bad_missing_answer.jsonl")
    with pytest.raises(ConfigError) as e:
        load_file_task(path)
    # Line 3 of the file is blank; the bad row is physical line 5.
    assert str(e.value) == (
        f"{path}, line 5: missing field 'answer' (fields present: question, solution)"
    )


def test_invalid_json_names_the_line():
    path = str(FIXTURES / "bad_invalid_json.jsonl")
    with pytest.raises(
        ConfigError,
        match=rf"^{re.escape(path)}, line 4: invalid JSON \(Expecting ',' delimiter at end of line\)$",
    ):
        load_file_task(path)


def test_gsm8k_answer_without_hashes_names_the_line():
    path = str(FIXTURES / "bad_no_hashes.jsonl")
    with pytest.raises(
        ConfigError, match=rf"^{re.escape(path)}, line 3: field 'answer' has no '####"
    ):
        load_file_task(path)


def test_empty_file_says_so():
    path = str(FIXTURES / "bad_empty.jsonl")
    with pytest.raises(ConfigError, match=rf"^{re.escape(path)}: empty file"):
        load_file_task(path)


def test_missing_paths_are_reported_before_anything_loads(monkeypatch):
    import r1lab.tasks.files as files

    def no_read(*a, **k):
        raise AssertionError("read a file before checking every path")

    monkeypatch.setattr(files, "_read_file", no_read)
    with pytest.raises(ConfigError, match=r"^nope/test\.jsonl: no such file"):
        load_file_task(str(GSM8K), test_file="nope/test.jsonl")
    with pytest.raises(ConfigError, match=r"^missing\.jsonl: no such file \(for a Hugging Face"):
        load_file_task("missing.jsonl")


def test_math_solution_without_box_names_the_line(tmp_path):
    path = tmp_path / "m.jsonl"
    good = {"problem": "p", "solution": r"$\boxed{1}$"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({"problem": "p2", "solution": "2"}) + "\n")
    with pytest.raises(ConfigError, match=r"m\.jsonl, line 2: field 'solution' has no complete"):
        load_file_task(str(path))


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            ['[{"question": "q", "answer": "1"}]'],
            r"line 1: expected a JSON object, got list; .*array",
        ),
        (["[", '  {"question": "q", "answer": "1"}', "]"], r"line 1: invalid JSON .*JSON array"),
        (
            ['{"question": "q", "answer": "1"}', "[1, 2]"],
            "line 2: expected a JSON object, got list",
        ),
        (['{"question": "q", "answer": null}'], r"line 1: null field 'answer' \(fields present"),
        (['{"question": 3, "answer": "1"}'], "line 1: field 'question' must be text, got a int"),
        (['{"question": "q", "answer": [1]}'], "line 1: field 'answer' must be a string or a num"),
        (['{"question": "q", "answer": "  "}'], "line 1: field 'answer' is empty"),
    ],
)
def test_bad_rows(tmp_path, lines, message):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=message):
        load_file_task(str(path), format="jsonl")


def test_encoding_errors_name_their_line_and_a_bom_is_fine(tmp_path):
    path = tmp_path / "d.jsonl"
    ok = '{"question": "q\u2028still line 1", "answer": "1"}\n'
    path.write_bytes(b"\xef\xbb\xbf" + (ok * 3).encode() + b'{"question": "\xff", "answer": "2"}\n')
    with pytest.raises(ConfigError, match=r"d\.jsonl, line 4: not UTF-8 text"):
        load_file_task(str(path))
    path.write_bytes(b"\xef\xbb\xbf" + (ok * 3).encode())
    assert len(load_file_task(str(path), test_size=0).train) == 3


def test_unknown_format_suggests_the_nearest():
    with pytest.raises(ConfigError, match="unknown data format 'gsm8'. Did you mean 'gsm8k'?"):
        load_file_task(str(GSM8K), format="gsm8")


# --- Parquet -----------------------------------------------------------------------------------


def _write_parquet(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)


def test_parquet_gives_the_same_examples_as_jsonl(tmp_path):
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines()]
    path = tmp_path / "gsm8k_sample.parquet"
    _write_parquet(rows, path)
    pq_task = load_file_task(str(path), seed=5)
    js_task = load_file_task(str(GSM8K), seed=5)
    assert pq_task.format == "gsm8k"

    def strip_ids(exs):
        return [{k: v for k, v in ex.items() if k != "id"} for ex in exs]

    assert strip_ids(pq_task.train) == strip_ids(js_task.train)
    assert strip_ids(pq_task.test) == strip_ids(js_task.test)
    first = next(ex for ex in all_examples(pq_task) if ex["question"].startswith("Maya"))
    assert first["id"] == "gsm8k_sample:0"  # Parquet ids use the 0-based row index


def test_parquet_is_detected_by_content_and_bad_rows_name_the_row(tmp_path):
    rows = _rows(5)
    rows[3]["answer"] = None
    path = tmp_path / "data.bin"  # no .parquet suffix: the PAR1 magic decides
    _write_parquet(rows, path)
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}, row 3: null field 'answer'"):
        load_file_task(str(path))


def test_unreadable_parquet_says_so(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(ConfigError, match="not a readable Parquet file"):
        load_file_task(str(path))


# --- The hub is reached only when asked --------------------------------------------------------


@pytest.fixture
def fake_hub(monkeypatch):
    import datasets

    calls = []

    def load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        train = [{"question": f"Q{i}?", "answer": f"x\n#### {i}"} for i in range(6)]
        test = [{"question": "T?", "answer": "#### 1,000"}]
        parts = {"train": train, "test": test}
        return parts[split] if split else parts

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_local_files_never_touch_the_hub(fake_hub):
    load_file_task(str(GSM8K))
    with pytest.raises(ConfigError, match="no such file"):
        load_file_task("openai/gsm8k")  # a hub-looking name is still a path unless asked
    assert fake_hub == []


def test_hub_name_loads_its_splits(fake_hub):
    task = load_file_task("hf:openai/gsm8k:main")
    assert fake_hub == [("openai/gsm8k", "main", None)]
    assert task.format == "gsm8k" and len(task.train) == 6
    (ex,) = task.examples("test")
    assert ex["answer"] == "1000" and ex["id"] == "openai/gsm8k:test:0"


def test_hub_split_and_flag(fake_hub):
    task = load_file_task("openai/gsm8k@train", hub=True, test_size=2)
    assert fake_hub == [("openai/gsm8k", None, "train")]
    assert len(task.train) == 4 and len(task.test) == 2


def test_hub_errors_name_the_split_and_row(monkeypatch):
    import datasets

    monkeypatch.setattr(
        datasets, "load_dataset", lambda *a, **k: {"train": [{"question": "q", "solution": "s"}]}
    )
    with pytest.raises(ConfigError, match=r"^hf:x/y \(split train\), row 0: field 'solution' has"):
        load_file_task("hf:x/y")


# --- Grading (the rewards library's checker) ---------------------------------------------------


def test_is_correct_accepts_equivalent_forms():
    math_task = load_file_task(str(MATH), test_size=0)
    half = next(ex for ex in math_task.train if ex["answer"] == r"\frac{1}{2}")
    assert math_task.is_correct("<think>2/4</think> <answer>0.5</answer>", half)
    assert math_task.is_correct(r"<think>x</think> <answer>\frac{1}{2}</answer>", half)
    assert not math_task.is_correct("<think>x</think> <answer>0.25</answer>", half)
    gsm = load_file_task(str(GSM8K), test_size=0)
    farmer = next(ex for ex in gsm.train if ex["answer"] == "1080")
    assert gsm.is_correct("<think>36*30</think> <answer>1,080</answer>", farmer)
    assert gsm.is_correct("<think>36*30</think> <answer>1080</answer>", farmer)
    assert not gsm.is_correct("<think>36*30</think> <answer>1008</answer>", farmer)
    assert gsm.extract_answer("<think>a</think> <answer>1080</answer>") == "1080"


def test_equivalent_groups_answers_for_majority_voting():
    task = load_file_task(str(MATH), test_size=0)
    ex = task.train[0]
    assert task.equivalent("0.5", r"\frac{1}{2}", ex)
    assert task.equivalent(r"\frac{1}{2}", "1/2", ex)
    assert not task.equivalent("0.5", "2", ex)


# --- Shipped sample and the documented command -------------------------------------------------


def test_shipped_tiny_gsm8k_sample_loads():
    path = resources.files("r1lab") / "assets" / "samples" / "gsm8k_tiny.jsonl"
    task = load_file_task(str(path), test_size=1.0)
    exs = task.examples("test")
    assert task.format == "gsm8k" and len(exs) == 8
    assert by_question(exs)["What is 23 + 45?"]["answer"] == "68"


@dataclass
class _DocCfg:
    """A command config holding only the task section, as every r1lab command's does."""

    task: TaskConfig = field(default_factory=TaskConfig)


def _doc_commands() -> list[str]:
    text = (REPO / "docs" / "tasks.md").read_text()
    section = text.split("## Your own data", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.strip().startswith("r1lab ")]


def test_documented_commands_build_the_task(tmp_path, monkeypatch, fake_hub):
    from r1lab.config import load_config
    from r1lab.tasks import make_task

    # The commands run from a checkout where the user's data/ holds GSM8K-format files.
    for name in ("src", "tests"):
        (tmp_path / name).symlink_to(REPO / name)
    (tmp_path / "data").mkdir()
    for name in ("train.jsonl", "test.jsonl"):
        (tmp_path / "data" / name).write_text(GSM8K.read_text())
    monkeypatch.chdir(tmp_path)
    commands = [c for c in _doc_commands() if "task.name=file" in c]
    assert len(commands) >= 4
    for command in commands:
        overrides = [a for a in shlex.split(command)[2:] if a.startswith("task.")]
        task = make_task(load_config(_DocCfg, None, overrides).task)
        assert isinstance(task, FileTask) and task.test, command
        # A test file alone (r1lab eval) is all test; with task.path there is a train split.
        assert bool(task.train) == ("task.path=" in command), command


def test_a_test_file_alone_is_a_task_whose_test_split_is_the_whole_file():
    from r1lab.tasks import TaskConfig, make_task

    task = make_task(TaskConfig(name="file", test_path=str(GSM8K)))
    rows = [line for line in GSM8K.read_text().splitlines() if line.strip()]
    assert len(task.test) == len(rows) and task.train == []
