"""Your own data as a task: a JSONL file, a Parquet file or a Hugging Face dataset, graded as math.

    r1lab eval task.name=file task.path=data/gsm8k.jsonl
    r1lab zero task.name=file task.path=hf:openai/gsm8k:main

Each row becomes an example `{"id", "question", "answer", ...}`: a field mapping names the
columns that hold the question, the reference answer and (optionally) the id; every other column
passes through unchanged. An adapter is a preset of that mapping plus the rule that reads the
reference out of the answer column:

- `jsonl` (generic): `question` and `answer` columns, the answer used as written;
- `gsm8k`: `question` and `answer`; the reference is the text after `#### `, commas removed
  (`#### 1,080` -> `1080`); the full worked answer is kept as `solution`;
- `math`: `problem` and `solution`; the reference is the last `\\boxed{...}` of the solution
  (braces balanced); `level` and `type` pass through.

`format="auto"` picks the adapter from the first row's columns (see `detect_format`).

Splits. Separate train and test files are used as given. One file is split by a seeded hash:
questions are ranked by SHA-1 of `"{seed}\\0{question}"` (whitespace collapsed) and the rows of
the first-ranked questions form the test split until it holds `test_size` rows (a fraction of the
rows when a float, a count when an int). Hashing the question, not the row position, keeps the
split the same when the file is reordered or grows, and puts repeated questions on one side, so
a duplicated question can never leak from train into test. Both splits are served in that ranked
order, so the first `n` examples are a seeded random sample and a larger `n` extends a smaller.

Errors are `ConfigError`s that name the file, the JSONL line (1-based, physical line) or the
Parquet / dataset row (0-based index), and the field: a user can fix the file from the message.

Grading is the rewards library's: `math_accuracy` for correctness, `format` for the tags, and
math-verify equivalence for majority voting (STYLE.md 4: one checker for training and eval).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r1lab.config import ConfigError
from r1lab.rewards import get_reward
from r1lab.rewards.math import extract_answer, last_boxed, math_equal, reference_answer
from r1lab.tasks.base import RewardSpec, reward_score

__all__ = [
    "ADAPTERS",
    "DEFAULT_TEST_SIZE",
    "Adapter",
    "FileTask",
    "detect_format",
    "load_file_task",
    "read_rows",
    "row_field",
    "split_examples",
]

DEFAULT_TEST_SIZE = 0.1
"""A single file's test split: the same 10% the generated tasks hold out."""

HUB_PREFIX = "hf:"


# --- Reading the reference answer out of the answer column -------------------------------------


def _plain_text(value: Any, where: str, name: str) -> str:
    """A string or number column as text; anything else is an error naming the field."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        kind = type(value).__name__
        raise ConfigError(f"{where}: field '{name}' must be a string or a number, got {kind}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a Parquet float column writes 72 as 72.0
    text = str(value).strip()
    if not text:
        raise ConfigError(f"{where}: field '{name}' is empty")
    return text


def _gsm8k_reference(value: Any, where: str, name: str) -> str:
    text = _plain_text(value, where, name)
    if "####" not in text:
        raise ConfigError(
            f"{where}: field '{name}' has no '#### <answer>' line, which every GSM8K answer "
            "ends with (for plain answers use format=jsonl)"
        )
    ref = reference_answer(text)  # the rewards library's GSM8K rule: after ####, no commas
    if not ref:
        raise ConfigError(f"{where}: field '{name}' has nothing after '####'")
    return ref


def _math_reference(value: Any, where: str, name: str) -> str:
    text = _plain_text(value, where, name)
    ref = last_boxed(text)  # the same box rule the grader applies to completions
    if ref is None or not ref.strip():
        raise ConfigError(
            f"{where}: field '{name}' has no complete \\boxed{{...}} answer, which every MATH "
            "solution ends with (for plain answers use format=jsonl)"
        )
    return ref.strip()


@dataclass(frozen=True)
class Adapter:
    """A preset field mapping and the rule that reads the reference from the answer column."""

    question_field: str
    answer_field: str
    reference: Callable[[Any, str, str], str]
    """`(value, where, field_name) -> reference`; raises ConfigError naming `where`."""
    keep_answer_as: str | None = None
    """Keep the raw answer column in the example under this name (GSM8K's worked solution)."""


ADAPTERS: dict[str, Adapter] = {
    "jsonl": Adapter("question", "answer", _plain_text),
    "gsm8k": Adapter("question", "answer", _gsm8k_reference, keep_answer_as="solution"),
    "math": Adapter("problem", "solution", _math_reference, keep_answer_as="solution"),
}
FORMATS = ("auto", *ADAPTERS)


def detect_format(row: Mapping[str, Any], answer_field: str | None = None) -> str:
    """The adapter for data whose first row is `row` (what `format="auto"` does).

    `gsm8k` when the answer column's text contains `####`; `math` when there is no answer
    column but a `solution` one (MATH's problem/solution); otherwise the generic `jsonl`.
    MATH-500-style rows (problem, solution and a separate answer) are `jsonl`: the answer
    column is the reference and the solution passes through.
    """
    answer_col = answer_field or "answer"
    if answer_col in row:
        value = row[answer_col]
        return "gsm8k" if isinstance(value, str) and "####" in value else "jsonl"
    if "solution" in row:
        return "math"
    return "jsonl"


# --- Reading rows: each with where it came from, for error messages ---------------------------

# (where, default id, row): where = "data/x.jsonl, line 17" or "data/x.parquet, row 16".
Located = tuple[str, str, Mapping[str, Any]]


_ARRAY_HINT = (
    "; this looks like a JSON array, but the file must hold one JSON object per line "
    "(convert with: jq -c '.[]' in.json > out.jsonl)"
)


def _read_jsonl(path: Path, label: str) -> list[Located]:
    rows: list[Located] = []
    # Bytes split at b"\n" only: each physical line decodes on its own, so a decoding error is
    # reported on its exact line, and a U+2028 inside a JSON string (valid JSON) does not shift
    # the line numbers.
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{label}, line {lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ConfigError(
                    f"{where}: not UTF-8 text ({e.reason} at byte {e.start + 1}); "
                    "save the file as UTF-8"
                ) from None
            if lineno == 1:
                line = line.removeprefix("\ufeff")  # a byte-order mark some editors write
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                hint = _ARRAY_HINT if not rows and line.lstrip().startswith("[") else ""
                at = "end of line" if e.pos >= len(line.rstrip()) else f"column {e.pos + 1}"
                raise ConfigError(f"{where}: invalid JSON ({e.msg} at {at}){hint}") from None
            if not isinstance(row, dict):
                hint = _ARRAY_HINT if not rows and isinstance(row, list) else ""
                raise ConfigError(
                    f"{where}: expected a JSON object, got {type(row).__name__}{hint}"
                )
            rows.append((where, f"{path.stem}:{lineno}", row))
    if not rows:
        raise ConfigError(f"{label}: empty file (no JSON rows)")
    return rows


def _read_parquet(path: Path, label: str) -> list[Located]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise ConfigError(f"{label}: not a readable Parquet file ({e})") from None
    rows = [(f"{label}, row {i}", f"{path.stem}:{i}", r) for i, r in enumerate(table.to_pylist())]
    if not rows:
        raise ConfigError(f"{label}: empty file (no rows)")
    return rows


def _read_file(path: Path, label: str) -> list[Located]:
    with path.open("rb") as f:
        magic = f.read(4)
    # Parquet files start with PAR1 whatever their extension; everything else is read as JSONL.
    if magic == b"PAR1" or path.suffix in (".parquet", ".pq"):
        return _read_parquet(path, label)
    return _read_jsonl(path, label)


def _parse_hub(source: str) -> tuple[str, str | None, str | None]:
    """`hf:NAME[:CONFIG][@SPLIT]` (prefix optional) -> (name, config, split)."""
    spec = source.removeprefix(HUB_PREFIX)
    spec, _, split = spec.partition("@")
    name, _, config = spec.partition(":")
    if not name:
        raise ConfigError(f"'{source}': no dataset name; write hf:NAME[:CONFIG][@SPLIT]")
    return name, config or None, split or None


def _read_hub(source: str) -> dict[str, list[Located]]:
    """The splits of a hub dataset by name: {"train": ..., "test": ...} as far as it has them."""
    import datasets

    name, config, split = _parse_hub(source)
    try:
        loaded = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # the hub's errors are many and all mean "could not load this"
        raise ConfigError(f"{source}: could not load the Hugging Face dataset: {e}") from e

    def located(rows: Iterable[Mapping[str, Any]], part: str) -> list[Located]:
        out = [
            (f"{source} (split {part}), row {i}", f"{name}:{part}:{i}", r)
            for i, r in enumerate(rows)
        ]
        if not out:
            raise ConfigError(f"{source} (split {part}): no rows")
        return out

    if split is not None:
        return {"train": located(loaded, split)}
    splits = list(loaded)
    if "train" not in splits:
        raise ConfigError(
            f"{source}: no 'train' split (has: {', '.join(splits)}); pick one with "
            f"hf:{name}{':' + config if config else ''}@SPLIT"
        )
    out = {"train": located(loaded["train"], "train")}
    if "test" in splits:
        out["test"] = located(loaded["test"], "test")
    return out


# --- Rows to examples --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mapping:
    adapter: Adapter
    question_field: str
    answer_field: str
    id_field: str | None


def _resolve_mapping(
    format: str,
    first: Mapping[str, Any],
    question_field: str | None,
    answer_field: str | None,
    id_field: str | None,
) -> tuple[str, _Mapping]:
    if format == "auto":
        format = detect_format(first, answer_field)
    adapter = ADAPTERS[format]
    q = question_field
    if q is None:
        q = adapter.question_field
        # MATH-500 (problem/answer) or a question/solution file needs no field mapping.
        if q not in first:
            q = next((c for c in ("question", "problem") if c in first), q)
    a = answer_field or adapter.answer_field
    if id_field is None and "id" in first:
        id_field = "id"
    return format, _Mapping(adapter, q, a, id_field)


def row_field(row: Mapping[str, Any], name: str, where: str) -> Any:
    """`row[name]`, or an error naming where the row is, the field and the fields it has."""
    value = row.get(name)
    if value is None:
        present = ", ".join(str(k) for k in row) or "none"
        what = "missing field" if name not in row else "null field"
        raise ConfigError(f"{where}: {what} '{name}' (fields present: {present})")
    return value


def _to_example(where: str, default_id: str, row: Mapping[str, Any], m: _Mapping) -> dict:
    question = row_field(row, m.question_field, where)
    if not isinstance(question, str) or not question.strip():
        kind = "empty" if isinstance(question, str) else f"a {type(question).__name__}"
        raise ConfigError(f"{where}: field '{m.question_field}' must be text, got {kind}")
    raw_answer = row_field(row, m.answer_field, where)
    answer = m.adapter.reference(raw_answer, where, m.answer_field)
    ex_id = default_id if m.id_field is None else str(row_field(row, m.id_field, where))
    example = {"id": ex_id, "question": question.strip(), "answer": answer}
    # Other columns pass through; the mapped ones are now question/answer/id, and a column that
    # happens to share one of those names yields to the mapped value.
    mapped = {m.question_field, m.answer_field, m.id_field}
    example.update((k, v) for k, v in row.items() if k not in mapped and k not in example)
    if m.adapter.keep_answer_as:
        example[m.adapter.keep_answer_as] = raw_answer
    return example


def _to_examples(located: Sequence[Located], m: _Mapping) -> list[dict[str, Any]]:
    examples, seen = [], {}
    for where, default_id, row in located:
        ex = _to_example(where, default_id, row, m)
        if ex["id"] in seen:
            raise ConfigError(
                f"{where}: field '{m.id_field}': id '{ex['id']}' repeats {seen[ex['id']]}; "
                "ids must be unique"
            )
        seen[ex["id"]] = where
        examples.append(ex)
    return examples


# --- Splits ------------------------------------------------------------------------------------


def _rank_key(question: str, seed: int) -> tuple[bytes, str]:
    norm = " ".join(question.split())
    return hashlib.sha1(f"{seed}\0{norm}".encode()).digest()[:8], norm


def _ranked(
    examples: list[dict[str, Any]], seed: int, key: str = "question"
) -> list[dict[str, Any]]:
    # sorted() is stable, so repeats of one question keep their file order, side by side.
    return sorted(examples, key=lambda ex: _rank_key(ex[key], seed))


def _test_count(test_size: float | int, n: int, where: str) -> int:
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float)):
        raise ConfigError(f"test_size must be a fraction or a count, got {test_size!r}")
    if isinstance(test_size, int):
        if not 0 <= test_size <= n:
            raise ConfigError(f"test_size={test_size}, but {where} has {n} rows")
        return test_size
    if not 0.0 <= test_size <= 1.0:
        raise ConfigError(f"test_size={test_size}: a fraction must lie in [0, 1]")
    k = round(test_size * n)
    return min(n, max(k, 1)) if test_size > 0 else 0


def split_examples(
    examples: list[dict[str, Any]],
    test_size: float | int,
    seed: int,
    where: str = "the data",
    key: str = "question",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, test) of one file by the seeded question hash described in the module docstring.

    The test split takes whole questions in ranked order until it holds at least the asked
    number of rows (more only when the last question taken repeats in the file). `key` names
    the text that is hashed (`r1lab sft` hashes its rendered prompts).
    """
    ranked = _ranked(examples, seed, key)
    keys = [_rank_key(ex[key], seed) for ex in ranked]
    cut = _test_count(test_size, len(ranked), where)
    while 0 < cut < len(ranked) and keys[cut] == keys[cut - 1]:
        cut += 1
    return ranked[cut:], ranked[:cut]


# --- The task ----------------------------------------------------------------------------------


def _default_rewards(format_weight: float = 0.5, accuracy_weight: float = 1.0) -> RewardSpec:
    return RewardSpec(
        weights={"format": format_weight, "math_accuracy": accuracy_weight},
        accuracy="math_accuracy",
        format="format",
    )


@dataclass
class FileTask:
    """A task over fixed examples (already split), graded as math by the rewards library.

    Build it with `load_file_task` (files, hub) or `FileTask.from_rows` (in-memory rows).
    """

    train: list[dict[str, Any]]
    test: list[dict[str, Any]]
    name: str = "file"
    source: str = "<rows>"
    """Where the examples came from, for logs."""
    format: str = "jsonl"
    """The adapter that read them (what `auto` detected)."""
    rewards: RewardSpec = field(default_factory=_default_rewards)

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[Mapping[str, Any]],
        *,
        test_rows: Sequence[Mapping[str, Any]] | None = None,
        format: str = "auto",
        question_field: str | None = None,
        answer_field: str | None = None,
        id_field: str | None = None,
        test_size: float | int = DEFAULT_TEST_SIZE,
        seed: int = 0,
        source: str = "<rows>",
        format_weight: float = 0.5,
        accuracy_weight: float = 1.0,
    ) -> FileTask:
        """A task from in-memory rows (errors say `<source>, row N`, N 0-based)."""
        _check_format(format)
        train = [(f"{source}, row {i}", f"{source}:{i}", r) for i, r in enumerate(rows)]
        test = None
        if test_rows is not None:
            test = [
                (f"{source} (test), row {i}", f"{source}:test:{i}", r)
                for i, r in enumerate(test_rows)
            ]
        return _build(
            train,
            test,
            format=format,
            question_field=question_field,
            answer_field=answer_field,
            id_field=id_field,
            test_size=test_size,
            seed=seed,
            source=source,
            rewards=_default_rewards(format_weight, accuracy_weight),
        )

    def examples(self, split: str, n: int | None = None) -> list[dict[str, Any]]:
        """The first `n` examples of `split` in seeded ranked order (all of them if `n` is None
        or larger than the split)."""
        if split not in ("train", "test"):
            raise ValueError(f"unknown split '{split}'; valid: train, test")
        rows = self.train if split == "train" else self.test
        if not rows:
            raise ConfigError(
                f"{self.source}: the {split} split is empty; give a test file or a test_size "
                "between 0 and 1 (exclusive) to split one file"
            )
        return [dict(ex) for ex in rows[:n]]

    def extract_answer(self, completion: str) -> str | None:
        return extract_answer(completion)

    def is_correct(self, completion: str, example: Mapping[str, Any]) -> bool:
        reward = get_reward(self.rewards.accuracy)
        score = reward(completion, example, **self.rewards.params.get(self.rewards.accuracy, {}))
        return reward_score(score) >= 1 - 1e-9

    def equivalent(self, a: str, b: str, example: Mapping[str, Any]) -> bool:
        return math_equal(a, b)


def _check_format(format: str) -> None:
    if format not in FORMATS:
        near = difflib.get_close_matches(format, FORMATS, n=1)
        hint = f" Did you mean '{near[0]}'?" if near else ""
        raise ConfigError(f"unknown data format '{format}'.{hint} Valid: {', '.join(FORMATS)}")


def _build(
    train: list[Located],
    test: list[Located] | None,
    *,
    format: str,
    question_field: str | None,
    answer_field: str | None,
    id_field: str | None,
    test_size: float | int,
    seed: int,
    source: str,
    rewards: RewardSpec,
) -> FileTask:
    if not train:
        raise ConfigError(f"{source}: no rows")
    # The train data's first row decides the adapter; a test file must share its layout.
    format, mapping = _resolve_mapping(format, train[0][2], question_field, answer_field, id_field)
    train_ex = _to_examples(train, mapping)
    if test is None:
        train_ex, test_ex = split_examples(train_ex, test_size, seed, source)
    else:
        test_ex = _ranked(_to_examples(test, mapping), seed)
        train_ex = _ranked(train_ex, seed)
    return FileTask(train_ex, test_ex, source=source, format=format, rewards=rewards)


def _is_hub(source: str, hub: bool) -> bool:
    return hub or source.startswith(HUB_PREFIX)


def _check_path(source: str) -> Path:
    path = Path(source).expanduser()
    if not path.exists():
        raise ConfigError(
            f"{source}: no such file (for a Hugging Face hub dataset write hf:NAME[:CONFIG])"
        )
    if path.is_dir():
        raise ConfigError(f"{source}: is a directory; give a .jsonl or .parquet file")
    return path


def read_rows(source: str, hub: bool = False) -> dict[str, list[Located]]:
    """The rows of a JSONL/Parquet file or a hub dataset (`hf:NAME[:CONFIG][@SPLIT]`, also a
    local dataset directory), by split ("train", and "test" when a dataset has one), each with
    where it came from (`"data.jsonl, line 17"`) for error messages. A missing file fails here,
    before anything loads."""
    if _is_hub(source, hub):
        return _read_hub(source)
    return {"train": _read_file(_check_path(source), source)}


def load_file_task(
    source: str,
    *,
    format: str = "auto",
    question_field: str | None = None,
    answer_field: str | None = None,
    id_field: str | None = None,
    test_file: str | None = None,
    test_size: float | int = DEFAULT_TEST_SIZE,
    seed: int = 0,
    hub: bool = False,
    format_weight: float = 0.5,
    accuracy_weight: float = 1.0,
) -> FileTask:
    """A task over a user's data; see the module docstring for formats, adapters and splits.

    `source` and `test_file` are paths to JSONL or Parquet files, or hub datasets written
    `hf:NAME[:CONFIG][@SPLIT]` (with `hub=True` the prefix may be left out). The hub is reached
    only for such names. A hub dataset with a `test` split uses it as the test split unless
    `test_file` is given; otherwise the train data is split by `test_size` and `seed`.
    `question_field` / `answer_field` / `id_field` override the adapter's columns; without an
    id field, an `id` column is used if present, else `<file stem>:<line or row>`.
    """
    _check_format(format)
    # Every local path is checked before anything loads, the hub included.
    sources = [source] + ([test_file] if test_file else [])
    paths = {s: _check_path(s) for s in sources if not _is_hub(s, hub)}

    def read(s: str) -> dict[str, list[Located]]:
        if _is_hub(s, hub):
            return _read_hub(s)
        return {"train": _read_file(paths[s], s)}

    parts = read(source)
    test = parts.get("test")
    if test_file:
        test_parts = read(test_file)
        # A hub test_file without @SPLIT means its test split when it has one.
        test = test_parts.get("test", test_parts["train"])
    return _build(
        parts["train"],
        test,
        format=format,
        question_field=question_field,
        answer_field=answer_field,
        id_field=id_field,
        test_size=test_size,
        seed=seed,
        source=source,
        rewards=_default_rewards(format_weight, accuracy_weight),
    )
