"""Preference rows -> pairs of token sequences -> micro-batches; and the mistakes a data file
can hold, each named by file, line and field."""

from __future__ import annotations

import pytest

from r1lab.config import ConfigError
from r1lab.microworld.general import judge
from r1lab.rm.data import HELD_OUT_PAIRS, Pair, load_pairs, micro_batches, plan, render_pair
from r1lab.tasks import encode_prompts

from ._helpers import ROWS, write


def test_a_sequence_is_the_rendered_prompt_then_the_response_and_nothing_after(tok, tmp_path):
    data = load_pairs(str(write(tmp_path / "p.jsonl", ROWS)), "raw", tok, 512)
    assert len(data.train) == 3 and data.eval == []
    for row, pair in zip(ROWS, data.train, strict=True):
        (prompt,) = encode_prompts([row["prompt"]], "raw", tok)
        for side in ("chosen", "rejected"):
            ids = tok(row[side], add_special_tokens=False)["input_ids"]
            assert getattr(pair, side) == tuple(prompt) + tuple(ids)  # no EOS appended
    assert data.train[0].where.endswith("p.jsonl, line 1")


def test_the_template_renders_the_prompt_as_sft_and_eval_do(tok):
    p, c, r = render_pair(ROWS[2], "x", "r1zero", tok)
    assert p.startswith("A conversation between User and Assistant") and "What is 2 + 2?" in p
    assert (c, r) == (" 4", " 5")
    chat = render_pair(ROWS[2], "x", "chat", tok)
    assert chat[0].startswith("<|im_start|>user\n") and chat[0].endswith("<|im_start|>assistant\n")


def test_conversational_rows_with_and_without_a_prompt_conversation(tok):
    user = [{"role": "user", "content": "Say hello."}]
    good = [{"role": "assistant", "content": "Hello!"}]
    bad = [{"role": "assistant", "content": "No."}]
    implicit = {"chosen": user + good, "rejected": user + bad}
    explicit = {"prompt": user, "chosen": good, "rejected": bad}
    a = render_pair(implicit, "x", "chat", tok)
    assert a == render_pair(explicit, "x", "chat", tok)
    assert a[0] == "<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n"
    assert a[1].startswith("Hello!") and a[2].startswith("No.")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "q", "chosen": " a"}, r"line 1: missing field 'rejected'"),
        ({"prompt": "q", "chosen": " a", "rejected": None}, r"line 1: null field 'rejected'"),
        ({"prompt": "q", "chosen": "  ", "rejected": " b"}, r"line 1: field 'chosen' is empty"),
        (
            {"prompt": 3, "chosen": " a", "rejected": " b"},
            r"line 1: field 'prompt' must be text, got int",
        ),
        ({"chosen": " a", "rejected": " b"}, r"line 1: missing field 'prompt'"),
        (
            {
                "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                "rejected": " b",
            },
            r"line 1: field 'rejected' must be a conversation like the other",
        ),
        (
            {
                "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                "rejected": [
                    {"role": "user", "content": "p"},
                    {"role": "assistant", "content": "b"},
                ],
            },
            r"line 1: 'chosen' and 'rejected' answer different prompts",
        ),
        (
            {
                "prompt": "q",
                "chosen": [{"role": "assistant", "content": "a"}],
                "rejected": [{"role": "assistant", "content": "b"}],
            },
            r"line 1: field 'prompt' must be a conversation when the responses are",
        ),
    ],
)
def test_bad_rows_name_file_line_and_field(tok, tmp_path, row, message):
    path = write(tmp_path / "bad.jsonl", [row])
    with pytest.raises(ConfigError, match=rf"bad\.jsonl, {message}"):
        load_pairs(str(path), "chat", tok, 512)


def test_custom_columns_and_their_names_in_errors(tok, tmp_path):
    from r1lab.rm.data import PairFields

    fields = PairFields("question", "good", "bad")
    path = write(tmp_path / "c.jsonl", [{"question": "q", "good": " a", "bad": " b"}])
    assert len(load_pairs(str(path), "raw", tok, 512, fields=fields).train) == 1
    path = write(tmp_path / "c.jsonl", [{"question": "q", "good": " ", "bad": " b"}])
    with pytest.raises(ConfigError, match=r"line 1: field 'good' is empty"):
        load_pairs(str(path), "raw", tok, 512, fields=fields)


def test_identical_and_too_long_pairs_are_dropped_and_counted(tok, tmp_path):
    rows = [*ROWS, {"prompt": "q", "chosen": " same", "rejected": " same"}]
    rows.append({"prompt": "q", "chosen": " x" * 200, "rejected": " y"})
    data = load_pairs(str(write(tmp_path / "p.jsonl", rows)), "raw", tok, 64)
    assert (len(data.train), data.identical, data.dropped) == (3, 1, 1)
    with pytest.raises(ConfigError, match=r"every training pair is longer than max_length=2"):
        load_pairs(str(write(tmp_path / "p.jsonl", ROWS)), "raw", tok, 2)


def test_eval_size_holds_pairs_out_by_prompt(tok, tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": " a", "rejected": " b"} for i in range(40)]
    data = load_pairs(str(write(tmp_path / "p.jsonl", rows)), "raw", tok, 64, eval_size=0.25)
    assert len(data.eval) == 10 and len(data.train) == 30
    held = {p.chosen for p in data.eval}
    assert not held & {p.chosen for p in data.train}  # no prompt on both sides


def test_microworld_pairs_train_noisy_and_hold_out_clean_test_requests(tok):
    data = load_pairs("microworld:harmless", "raw", tok, 512, pairs=100, noise=0.2)
    assert len(data.train) == 100 and len(data.eval) == HELD_OUT_PAIRS
    assert {p.kind for p in data.eval} == {"harmful"}
    assert "test split" in data.eval_source
    with pytest.raises(ConfigError, match="unknown micro-world preference set; valid: "):
        load_pairs("microworld:kind", "raw", tok, 512)


def test_microworld_held_out_labels_follow_the_hidden_rule(monkeypatch):
    from r1lab.microworld import general
    from r1lab.rm.data import _microworld

    drawn = {}
    real = general.sample_request

    def record(rng, split="train", kind=None):
        request = real(rng, split, kind)
        drawn[request.text] = request
        return request

    monkeypatch.setattr(general, "sample_request", record)
    parts = _microworld("microworld:helpful", 200, 0.3)
    right = {}
    for split, rows in parts.items():
        right[split] = []
        for _, prompt, chosen, rejected, _ in rows:
            text = prompt.removeprefix("User: ").removesuffix("\nAssistant:")
            assert prompt == f"User: {text}\nAssistant:" and chosen.startswith(" ")
            request = drawn[text]
            helpful = judge(request, chosen[1:]).helpful, judge(request, rejected[1:]).helpful
            right[split].append(helpful == (True, False))
    assert len(right["test"]) == HELD_OUT_PAIRS and all(right["test"])  # the rule itself
    assert sum(right["train"]) == 200 - 60  # label_noise flips exactly its share


def test_micro_batches_keep_pairs_together_and_within_the_budget():
    pairs = [
        Pair(tuple(range(1, n + 1)), tuple(range(1, m + 1)), f"r{n}")
        for n, m in [(5, 3), (12, 20), (7, 7), (30, 2), (4, 9)]
    ]
    groups = plan(pairs, budget=80, cut_cost=0)
    assert sorted(i for g in groups for i in g) == list(range(5))
    for g, mb in zip(groups, micro_batches(pairs, 80, 0, pad_id=0), strict=True):
        assert mb.input_ids.numel() <= max(80, 2 * max(pairs[i].width for i in g))
        for j, i in enumerate(g):
            c, r = pairs[i].chosen, pairs[i].rejected
            assert mb.input_ids[2 * j, : len(c)].tolist() == list(c)
            assert mb.input_ids[2 * j + 1, : len(r)].tolist() == list(r)
            assert mb.last[2 * j] == len(c) - 1 and mb.last[2 * j + 1] == len(r) - 1
            assert (mb.input_ids[2 * j, len(c) :] == 0).all()
