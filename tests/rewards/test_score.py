"""`r1lab score`: the shipped sample scores to known values; bad input names file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1lab.cli import main
from r1lab.config import ConfigError, load_config
from r1lab.rewards.score import ScoreConfig, run

pytestmark = pytest.mark.timeout(120)

SAMPLE = Path(__file__).parents[2] / "src" / "r1lab" / "assets" / "samples" / "completions.jsonl"


def test_sample_file_scores_to_known_values(tmp_path, capsys):
    out = tmp_path / "scores.jsonl"
    cfg = ScoreConfig(input=str(SAMPLE), workers=2, output=str(out))
    assert run(cfg) == 0
    table = capsys.readouterr().out
    for name in ("format", "math_accuracy", "countdown", "code", "total"):
        assert name in table
    records = [json.loads(line) for line in out.read_text().splitlines()]
    lines = [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]
    assert len(records) == len(lines) >= 30
    by_line = {r["line"]: r for r in records}
    assert by_line[1]["parts"] == {"format": 1.0, "math_accuracy": 1.0}  # GSM8K, right
    assert by_line[3]["parts"] == {"format": 1.0, "math_accuracy": 0.0}  # wrong number
    assert by_line[4]["parts"] == {"format": 0.0, "math_accuracy": 1.0}  # \boxed, no tags
    assert by_line[14]["parts"]["math_accuracy"] == 1.0  # \dfrac12 vs MATH \boxed{\frac{1}{2}}
    assert by_line[23]["parts"]["math_accuracy"] == 0.0  # power tower, scored fast
    assert by_line[26]["parts"] == {"format": 1.0, "countdown": 1.0}
    assert by_line[26]["total"] == 1.5
    assert by_line[28]["parts"]["countdown"] == 0.0  # 25 used twice
    assert by_line[31]["parts"]["code"] == 1.0
    assert by_line[33]["parts"]["code"] == pytest.approx(1 / 3)
    assert by_line[34]["parts"]["code"] == 0.0  # infinite loop
    # Means in the table are the means of the per-line parts.
    math_scores = [r["parts"]["math_accuracy"] for r in records if "math_accuracy" in r["parts"]]
    assert f"{sum(math_scores) / len(math_scores):.3f}" in table


def write(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"completion": "x", "answer": "1"}', "{not json"], r"in.jsonl, line 2: not valid JSON"),
        (
            ['{"completion": "x", "answer": "1"}', "", '{"answer": "1"}'],
            r"line 3: missing field 'completion'",
        ),
        (['{"completion": 5}'], r"line 1: field 'completion' must be a string"),
        (['["completion"]'], r"line 1: expected a JSON object"),
        (
            ['{"completion": "x", "rewards": {"fromat": 1}}'],
            r"line 1: field 'rewards': unknown reward 'fromat'. Did you mean 'format'",
        ),
        (
            ['{"completion": "x", "rewards": {"format": "high"}}'],
            r"line 1: field 'rewards' must map",
        ),
        (
            [
                '{"completion": "x", "answer": "1"}',
                '{"completion": "<answer>1</answer>", "rewards": {"countdown": 1}}',
                '{"completion": "<answer>2</answer>", "rewards": {"countdown": 1}}',
            ],
            r"line 2: reward 'countdown' failed: KeyError.*all 2 items",
        ),
        ([""], r"no completions"),
    ],
)
def test_bad_input_names_file_line_and_field(tmp_path, lines, message):
    with pytest.raises(ConfigError, match=message):
        run(ScoreConfig(input=write(tmp_path, *lines), workers=0))


def test_a_reward_failing_on_one_line_scores_it_zero_and_counts_it(tmp_path, capsys):
    path = write(
        tmp_path,
        '{"completion": "<answer>1</answer>", "answer": "1"}',
        '{"completion": "<answer>1</answer>", "rewards": {"countdown": 1}}',
        '{"completion": "<answer>2</answer>", "answer": "1"}',
    )
    out = tmp_path / "scores.jsonl"
    assert run(ScoreConfig(input=path, workers=0, output=str(out))) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["total"] for r in records] == [1.0, 0.0, 0.0]
    assert "KeyError" in records[1]["info"]["errors"]["countdown"]
    table = capsys.readouterr().out
    assert "errors" in table
    assert [row for row in table.splitlines() if "countdown" in row][0].split()[-2] == "1"


def test_missing_file_and_bad_params(tmp_path):
    with pytest.raises(ConfigError, match="nope.jsonl: no such file"):
        run(ScoreConfig(input=str(tmp_path / "nope.jsonl")))
    path = write(tmp_path, '{"completion": "x", "answer": "1"}')
    with pytest.raises(ConfigError, match="has no param 'answer_ky'"):
        run(ScoreConfig(input=path, params={"math_accuracy": {"answer_ky": "a"}}))


def test_cli_overrides_and_exit_codes(tmp_path, capsys):
    path = write(
        tmp_path,
        '{"completion": "<think>a</think> <answer>2 + 3</answer>", "numbers": [2, 3], "target": 5}',
    )
    cfg = load_config(ScoreConfig, None, [f"input={path}", "rewards={format: 0.5, countdown: 1}"])
    assert cfg.rewards == {"format": 0.5, "countdown": 1.0}
    assert (
        main(["score", path, "rewards={format: 0.5, countdown: 1}", "workers=0", "per_item=true"])
        == 0
    )
    assert "1.500" in capsys.readouterr().out
    assert main(["score", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_reward_failing_on_every_line_is_one_line_naming_the_file(tmp_path, capsys):
    # Countdown without its reference data on every line: a broken dataset, not a bad completion.
    line = '{"completion": "<think>a</think> <answer>2 + 3</answer>", "target": 5}'
    path = write(tmp_path, line + "\n" + line)
    assert main(["score", path, "rewards={countdown: 1}", "workers=0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "in.jsonl, line 1: reward 'countdown' failed" in err[0]
