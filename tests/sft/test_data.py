"""SFT data: reading rows, rendering prompts as eval does, masks, micro-batches, errors."""

from __future__ import annotations

import random

import pytest

from r1lab.config import ConfigError
from r1lab.sft.data import (
    IGNORE,
    Example,
    Fields,
    batch_rows,
    collate_grouped,
    collate_packed,
    load_data,
    micro_batches,
    plan_grouped,
    plan_packed,
    read_rendered,
    tokenize,
)
from r1lab.tasks import encode_prompts, render_prompt

from ._helpers import QA, write_jsonl


def examples_of(path, tok, template="r1zero", **kw):
    return load_data(str(path), template, tok, 10**6, **kw)


# --- reading and rendering ---------------------------------------------------------------------


def test_prompt_tokens_are_exactly_what_eval_and_rl_feed_the_model(qa_file, qwen_tokenizer):
    tok = qwen_tokenizer
    for template in ("r1zero", "prefill", "raw", "chat"):
        data = examples_of(qa_file, tok, template, eval_size=0.0)
        by_prompt = {}
        for q, a in QA:
            (ids,) = encode_prompts([render_prompt(q, template, tok)], template, tok)
            by_prompt[tuple(ids)] = a
        for ex in data.train:
            prompt = ex.ids[: ex.prompt_len]
            assert prompt in by_prompt, template
            completion = tok.decode(list(ex.ids[ex.prompt_len :]))
            if template == "chat":
                # The chat template's assistant turn, end-of-turn marker included, no extra EOS.
                assert completion == by_prompt[prompt] + "<|im_end|>\n"
            else:
                assert ex.ids[-1] == tok.eos_token_id
                assert completion == by_prompt[prompt] + tok.eos_token


def test_jsonl_parquet_and_a_local_dataset_directory_read_alike(tmp_path, qa_file, qwen_tokenizer):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"prompt": q, "completion": a} for q, a in QA]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "qa.parquet")
    hub = tmp_path / "hubdir"
    hub.mkdir()
    write_jsonl(hub / "train.jsonl", rows[:6])
    write_jsonl(hub / "test.jsonl", rows[6:])
    a = examples_of(qa_file, qwen_tokenizer, eval_size=0.0).train
    b = examples_of(tmp_path / "qa.parquet", qwen_tokenizer, eval_size=0.0).train
    assert [e.ids for e in a] == [e.ids for e in b]
    assert b[3].where == f"{tmp_path / 'qa.parquet'}, row 3"
    c = examples_of(f"hf:{hub}", qwen_tokenizer, eval_size=0.5)  # a test split wins
    assert [e.ids for e in c.train] == [e.ids for e in a[:6]]
    assert [e.ids for e in c.eval] == [e.ids for e in a[6:]]
    assert "test split" in c.eval_source


def test_messages_rows_and_custom_columns(tmp_path, qwen_tokenizer):
    tok = qwen_tokenizer
    conv = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bye"},
        {"role": "assistant", "content": "goodbye"},
    ]
    path = write_jsonl(tmp_path / "chat.jsonl", [{"conv": conv}, {"q": "2+2?", "a": " 4"}])
    fields = Fields(prompt="q", completion="a", messages="conv")
    (ex, qa) = examples_of(path, tok, "chat", fields=fields).train
    whole = tok.apply_chat_template(conv, tokenize=False)
    assert tok.decode(list(ex.ids)) == whole
    # The loss is on the last assistant turn only; earlier turns are context.
    assert tok.decode(list(ex.ids[ex.prompt_len :])) == "goodbye<|im_end|>\n"
    # A one-turn conversation with a plain template is a prompt and a completion.
    one = write_jsonl(tmp_path / "one.jsonl", [{"conv": conv[1:3]}, {"q": "hi", "a": "hello"}])
    a, b = examples_of(one, tok, "r1zero", fields=fields).train
    assert a.ids == b.ids and a.prompt_len == b.prompt_len


def test_the_microworld_source_is_generated_with_a_test_split(qwen_tokenizer):
    parts = read_rendered("microworld:general", "raw", qwen_tokenizer)
    assert len(parts["train"]) == 2000 and len(parts["test"]) == 200
    where, prompt, completion = parts["train"][0]
    assert where == "microworld:general (train), row 0" and prompt and completion


BAD_ROWS = [
    ('{"prompt": "q"}', "line 2: missing field 'completion' (fields present: prompt)"),
    ('{"prompt": "q", "completion": 3}', "line 2: field 'completion' must be text, got int"),
    ('{"prompt": "q", "completion": "  "}', "line 2: field 'completion' is empty"),
    ('{"prompt": "q", "completion": "a"', "line 2: invalid JSON"),
    ('{"messages": "hi"}', "line 2: field 'messages' must be a non-empty list"),
    ('{"messages": [{"role": "user"}]}', "line 2: field 'messages', message 0: 'content' is"),
    (
        '{"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]}',
        "line 2: field 'messages': the last message must be the assistant's",
    ),
    ('{"messages": [{"role": "assistant", "content": "a"}]}', "line 2: field 'messages': no "),
    (
        '{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, '
        '{"role": "assistant", "content": "a"}]}',
        "template=r1zero takes one user turn and the assistant's reply, this row has "
        "[system, user, assistant]; use template=chat",
    ),
]


@pytest.mark.parametrize("line,message", BAD_ROWS, ids=[m for _, m in BAD_ROWS])
def test_a_bad_row_names_its_file_line_and_field(tmp_path, qwen_tokenizer, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "fine", "completion": " ok"}\n' + line + "\n")
    with pytest.raises(ConfigError) as e:
        examples_of(path, qwen_tokenizer)
    assert str(e.value).startswith(f"{path}, line 2") and message in str(e.value), str(e.value)


def test_a_missing_file_is_named(qwen_tokenizer, tmp_path):
    with pytest.raises(ConfigError, match="nope.jsonl: no such file"):
        examples_of(tmp_path / "nope.jsonl", qwen_tokenizer)


# --- held-out split and length limit -----------------------------------------------------------


def test_held_out_rows_are_a_seeded_hash_split_that_keeps_a_repeated_prompt_on_one_side(
    tmp_path, qwen_tokenizer
):
    rows = [{"prompt": f"question {i % 40}", "completion": f" answer {i}"} for i in range(80)]
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    a = examples_of(path, qwen_tokenizer, eval_size=0.25, seed=3)
    b = examples_of(path, qwen_tokenizer, eval_size=0.25, seed=3)
    c = examples_of(path, qwen_tokenizer, eval_size=0.25, seed=4)
    assert [e.ids for e in a.eval] == [e.ids for e in b.eval]
    assert 20 <= len(a.eval) <= 22 and len(a.train) + len(a.eval) == 80
    prompts = {e.ids[: e.prompt_len] for e in a.train}
    assert not prompts & {e.ids[: e.prompt_len] for e in a.eval}
    assert {e.ids for e in a.eval} != {e.ids for e in c.eval}
    none = examples_of(path, qwen_tokenizer, eval_size=0.0)
    assert none.eval == [] and len(none.train) == 80


def test_rows_longer_than_max_length_are_dropped_and_counted(qa_file, qwen_tokenizer):
    full = load_data(str(qa_file), "r1zero", qwen_tokenizer, 10**6).train
    limit = sorted(len(e.ids) for e in full)[3]
    data = load_data(str(qa_file), "r1zero", qwen_tokenizer, limit)
    assert all(len(e.ids) <= limit for e in data.train)
    assert data.dropped == sum(len(e.ids) > limit for e in full) > 0
    with pytest.raises(ConfigError, match="every training row is longer than max_length=5"):
        load_data(str(qa_file), "r1zero", qwen_tokenizer, 5)


# --- which tokens are trained ------------------------------------------------------------------


def test_targets_are_the_completion_tokens_shifted_by_one():
    ex = Example(ids=(10, 11, 12, 13, 14), prompt_len=2, where="x")
    mb = collate_grouped([ex])
    # Position 1 (last prompt token) predicts 12, the first completion token; the last
    # position predicts nothing; prompt tokens are never targets.
    assert mb.targets.tolist() == [[IGNORE, 12, 13, 14, IGNORE]]
    assert ex.num_targets == 3 == mb.num_targets
    # With no prompt, the first token has nothing to be predicted from.
    bare = Example(ids=(7, 8, 9), prompt_len=0, where="x")
    assert collate_grouped([bare]).targets.tolist() == [[8, 9, IGNORE]]
    assert bare.num_targets == 2


def test_grouped_rows_are_right_padded_with_no_targets_in_the_padding():
    a = Example(ids=(1, 2, 3, 4, 5), prompt_len=3, where="a")
    b = Example(ids=(6, 7, 8), prompt_len=1, where="b")
    mb = collate_grouped([a, b], pad_id=99)
    assert mb.input_ids.tolist() == [[1, 2, 3, 4, 5], [6, 7, 8, 99, 99]]
    assert mb.targets.tolist() == [[IGNORE, IGNORE, 4, 5, IGNORE], [7, 8, IGNORE] + [IGNORE] * 2]
    # Positions run on into the padding: no restart, so the model sees no packed sequences.
    assert mb.position_ids.tolist() == [[0, 1, 2, 3, 4]] * 2
    assert mb.num_tokens == 8


def test_packed_sequences_restart_positions_and_no_target_crosses_a_boundary():
    a = Example(ids=(1, 2, 3, 4), prompt_len=2, where="a")
    b = Example(ids=(5, 6, 7), prompt_len=1, where="b")
    mb = collate_packed([a, b])
    assert mb.input_ids.tolist() == [[1, 2, 3, 4, 5, 6, 7]]
    assert mb.position_ids.tolist() == [[0, 1, 2, 3, 0, 1, 2]]
    # a's last token (4) must not predict b's first (5).
    assert mb.targets.tolist() == [[IGNORE, 3, 4, IGNORE, 6, 7, IGNORE]]
    assert mb.num_targets == a.num_targets + b.num_targets


def test_micro_batches_cover_every_sequence_once_within_the_budget():
    rng = random.Random(0)
    lengths = [rng.randint(5, 60) for _ in range(50)]
    for budget in (60, 128, 500):
        for plan in (plan_packed(lengths, budget), plan_grouped(lengths, budget, 8)):
            assert sorted(i for p in plan for i in p) == list(range(50))
        assert all(sum(lengths[i] for i in p) <= budget for p in plan_packed(lengths, budget))
        for g in plan_grouped(lengths, budget, 8):
            assert len(g) * max(lengths[i] for i in g) <= budget
    # First-fit decreasing leaves little room: few packs more than the tokens need.
    packs = plan_packed(lengths, 500)
    assert len(packs) <= -(-sum(lengths) // 500) + 1
    # A sequence longer than the budget is a micro-batch of its own, not an error.
    assert plan_packed([10, 300, 20], 100) == [[1], [2, 0]]
    assert plan_grouped([10, 300, 20], 100, 50) == [[1], [2, 0]]


def test_grouping_cuts_where_padding_costs_more_than_a_call():
    lengths = [100] * 4 + [10] * 12
    # One micro-batch would pad 12 rows by 90 positions; a cut costing 64 saves 1,080.
    assert [len(g) for g in plan_grouped(lengths, 10**6, 64)] == [4, 12]
    assert [len(g) for g in plan_grouped(lengths, 10**6, 10**6)] == [16]
    exs = [Example(tuple(range(n)), 1, str(i)) for i, n in enumerate(lengths)]
    padded = sum(mb.input_ids.numel() for mb in micro_batches(exs, "grouped", 10**6, 64))
    assert padded == sum(lengths)


def test_each_epoch_is_a_fresh_permutation_and_batches_follow_from_the_step():
    n, size = 23, 5
    epoch0 = [i for s in range(5) for i in batch_rows(n, size, seed=1, step=s)]
    epoch1 = [i for s in range(5, 10) for i in batch_rows(n, size, seed=1, step=s)]
    assert sorted(epoch0) == sorted(epoch1) == list(range(n))
    assert epoch0 != epoch1
    assert len(batch_rows(n, size, 1, 4)) == 3  # the last batch of an epoch is what is left
    assert batch_rows(n, size, 1, 7) == batch_rows(n, size, 1, 7)
    assert batch_rows(n, size, 2, 0) != batch_rows(n, size, 1, 0)


def test_tokenize_refuses_a_completion_of_no_tokens(qwen_tokenizer):
    with pytest.raises(ConfigError, match="x.jsonl, line 4: the completion encodes to no"):
        tokenize([("x.jsonl, line 4", "q", "")], "raw", qwen_tokenizer)


def test_chat_rows_of_a_model_whose_template_writes_bos_get_one_bos(tiny_llama, tmp_path):
    from r1lab.run import load_tokenizer

    tok = load_tokenizer(tiny_llama, "chat")
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "q", "completion": "a"}])
    (chat,) = examples_of(path, tok, "chat").train
    (plain,) = examples_of(path, tok, "r1zero").train
    bos = tok.bos_token_id
    assert chat.ids[0] == bos and chat.ids[1] != bos
    assert plain.ids[0] == bos and plain.ids[1] != bos  # the tokenizer's own, once
    # the completion follows the prompt with no BOS of its own (BOS is also EOS here: the r1zero
    # row ends with one, the chat row's template closed the turn)
    assert bos not in plain.ids[plain.prompt_len : -1] and plain.ids[-1] == tok.eos_token_id
    assert bos not in chat.ids[chat.prompt_len :]


def test_parquet_messages_column(tmp_path, qwen_tokenizer):
    import pyarrow as pa
    import pyarrow.parquet as pq

    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    pq.write_table(pa.Table.from_pylist([{"messages": conv}]), tmp_path / "c.parquet")
    (ex,) = examples_of(tmp_path / "c.parquet", qwen_tokenizer, "chat").train
    whole = qwen_tokenizer.apply_chat_template(conv, tokenize=False)
    assert qwen_tokenizer.decode(list(ex.ids)) == whole


def test_a_mix_source_joins_at_its_ratio_from_its_own_splits(tmp_path, qwen_tokenizer):
    from r1lab.sft.data import load_data

    rows = [{"prompt": f"Question {i}?", "completion": f" answer {i}"} for i in range(30)]
    data = str(write_jsonl(tmp_path / "reasoning.jsonl", rows))

    def load(seed=0, **mix):
        return load_data(data, "raw", qwen_tokenizer, 512, eval_size=0.2, seed=seed, **mix)

    mixed = load(mix="microworld:general", mix_ratio=0.5)
    alone = load()
    n_train, n_eval = len(alone.train), len(alone.eval)
    assert mixed.mixed == round(0.5 * n_train) and len(mixed.train) == n_train + mixed.mixed
    assert len(mixed.eval) == n_eval + round(0.5 * n_eval)
    assert mixed.train[:n_train] == alone.train
    general = read_rendered("microworld:general", "raw", qwen_tokenizer)
    train_texts = {c for _, _, c in general["train"]}
    for e in mixed.train[n_train:]:
        assert e.where.startswith("microworld:general (train)")
        text = qwen_tokenizer.decode(e.ids[e.prompt_len :]).removesuffix("<|endoftext|>")
        assert text in train_texts
    # The held-out mix rows come from the mix's own test split.
    assert all(e.where.startswith("microworld:general (test)") for e in mixed.eval[n_eval:])
    # Seeded: the same rows again; another seed, others.
    assert load(mix="microworld:general", mix_ratio=0.5).train == mixed.train
    other = load(seed=1, mix="microworld:general", mix_ratio=0.5)
    drawn = [e.ids for e in other.train if e.where.startswith("microworld")]
    assert drawn != [e.ids for e in mixed.train[n_train:]]


def test_draw_repeats_a_small_source_whole_before_sampling():
    from r1lab.sft.data import draw

    rows = [(f"r{i}",) for i in range(3)]
    out = draw(rows, 8, "k")
    assert sorted(out).count(("r0",)) in (2, 3) and len(out) == 8
    assert all(out.count(r) >= 2 for r in rows) and len(set(out)) == 3
    assert draw(rows, 2, "k") == draw(rows, 2, "k") and len(set(draw(rows, 2, "k"))) == 2
    assert draw(rows, 0, "k") == [] and draw([], 5, "k") == []
