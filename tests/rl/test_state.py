from r1lab.rl.state import PromptStream, truncate_metrics

EXAMPLES = [{"id": i} for i in range(10)]


def ids(xs):
    return [x["id"] for x in xs]


def test_stream_is_seeded_and_every_epoch_is_a_permutation():
    a, b = PromptStream(EXAMPLES, seed=1), PromptStream(EXAMPLES, seed=1)
    first = ids(a.take(10))
    assert first == ids(b.take(10)) and sorted(first) == list(range(10))
    second = ids(a.take(10))
    assert sorted(second) == list(range(10)) and second != first
    assert ids(PromptStream(EXAMPLES, seed=2).take(10)) != first


def test_ranks_own_disjoint_prompts_that_together_are_the_single_process_stream():
    single = ids(PromptStream(EXAMPLES, seed=0).take(8))
    r0 = ids(PromptStream(EXAMPLES, seed=0, rank=0, world_size=2).take(4))
    r1 = ids(PromptStream(EXAMPLES, seed=0, rank=1, world_size=2).take(4))
    assert not set(r0) & set(r1)
    assert sorted(r0 + r1) == sorted(single)


def test_state_round_trip_continues_the_stream_across_an_epoch_boundary():
    a = PromptStream(EXAMPLES, seed=3)
    a.take(7)
    saved = a.state_dict()
    expected = ids(a.take(9))
    b = PromptStream(EXAMPLES, seed=3)
    b.load_state_dict(saved)
    assert ids(b.take(9)) == expected


def test_state_saved_in_a_later_epoch_restores_that_epochs_order():
    # Saved in epoch 2 (25 of 10-prompt epochs taken), not only past the first boundary.
    a = PromptStream(EXAMPLES, seed=3)
    a.take(25)
    saved = a.state_dict()
    assert saved == {"epoch": 2, "index": 5}
    expected = ids(a.take(12))
    b = PromptStream(EXAMPLES, seed=3)
    b.load_state_dict(saved)
    assert ids(b.take(12)) == expected
    # Every epoch's order differs, so restoring the wrong one would show.
    orders = [ids(PromptStream(EXAMPLES, seed=3).take(30))[i : i + 10] for i in (0, 10, 20)]
    assert len({tuple(o) for o in orders}) == 3


def test_truncate_metrics_keeps_only_earlier_steps(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(f'{{"step": {s}, "x": 1}}\n' for s in range(5)))
    truncate_metrics(path, 3)
    assert [line.split(",")[0] for line in path.read_text().splitlines()] == [
        '{"step": 0',
        '{"step": 1',
        '{"step": 2',
    ]


def test_a_saved_tokenizer_names_a_class_every_supported_transformers_loads(tmp_path):
    # transformers 5 writes a tokenizer built from scratch (as `r1lab pretrain` builds one) as
    # `TokenizersBackend`, which 4.56, the oldest supported, cannot load.
    import json

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1lab.checkpoint import save_hf
    from r1lab.microworld import DEFAULT_BASE
    from r1lab.microworld.tokenizer import train_tokenizer

    texts = ["<think> 12 + 30 = 42 </think> <answer> 42 </answer>", "User: 7 * 6? Assistant:"] * 20
    tok = train_tokenizer(texts, vocab_size=300)
    model = AutoModelForCausalLM.from_pretrained(DEFAULT_BASE)
    out = save_hf(tmp_path / "ckpt", model, tok)
    config = json.loads((out / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    again = AutoTokenizer.from_pretrained(out)
    assert again(texts[0])["input_ids"] == tok(texts[0])["input_ids"]
