"""What the other reward-model tests left unpinned: loading (a run directory, a config without a
pad token, heads r1lab cannot read, the dtype asked for, transformers' logging left as found),
the reward hook's clean-up, the scorer's parts and batching, and the pair data's wiring."""

from __future__ import annotations

import json
import shutil
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    Qwen2Config,
    Qwen2ForSequenceClassification,
)
from transformers.utils import logging

from r1lab.config import ConfigError
from r1lab.rm.config import RMConfig
from r1lab.rm.data import (
    HELD_OUT_PAIRS,
    Pair,
    PairFields,
    encode,
    load_pairs,
    micro_batches,
    plan,
    read_rendered,
    render_pair,
    tokenize,
)
from r1lab.rm.model import load_reward_model, score_head, sequence_rewards
from r1lab.rm.scorer import RewardModelScorer, response_part
from r1lab.run import checkpoints, load_tokenizer

from ._helpers import ROWS, write


def model_copy(src: Path, dst: Path, model=None, **config) -> Path:
    """A copy of model directory `src` (tokenizer included), its weights replaced by `model`'s
    and/or its config.json's fields set to `config`."""
    shutil.copytree(src, dst)
    if model is not None:
        model.save_pretrained(dst)
    if config:
        path = dst / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    return dst


def vocab_of(model_dir: Path) -> int:
    return json.loads((model_dir / "config.json").read_text())["vocab_size"]


# --- loading a reward model -------------------------------------------------------------------


def test_a_run_directory_loads_as_its_last_checkpoint(tiny_rm):
    model, _, new = load_reward_model(tiny_rm, device="cpu")
    last, _, _ = load_reward_model(checkpoints(tiny_rm)[-1], device="cpu")
    assert new is False
    assert torch.equal(score_head(model).weight, score_head(last).weight)


def test_the_pad_token_is_written_into_a_config_that_has_none(tiny_model, tmp_path):
    src = model_copy(tiny_model, tmp_path / "nopad", pad_token_id=None)
    model, tokenizer, _ = load_reward_model(src, device="cpu")
    assert tokenizer.pad_token_id is not None
    assert model.config.pad_token_id == tokenizer.pad_token_id
    # Saved, it is a Hugging Face classifier that reads a right-padded batch at the last real
    # token (without a pad token in its config, a batch of more than one row is refused).
    model.save_pretrained(tmp_path / "saved")
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "saved")
    assert hf.config.pad_token_id == tokenizer.pad_token_id
    ids = torch.tensor([[5, 6, 7, 8], [5, 6, tokenizer.pad_token_id, tokenizer.pad_token_id]])
    with torch.no_grad():
        batched = hf(input_ids=ids).logits[:, 0]
        alone = hf(input_ids=ids[1:, :2]).logits[0, 0]
    assert batched[1].item() == pytest.approx(alone.item(), abs=1e-5)


def test_a_classifier_whose_head_is_not_score_is_refused_on_loading(tiny_model, tmp_path):
    config = BertConfig(
        vocab_size=vocab_of(tiny_model),
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        num_labels=1,
    )
    src = model_copy(tiny_model, tmp_path / "bert", BertForSequenceClassification(config))
    with pytest.raises(ConfigError, match=r"BertForSequenceClassification: r1lab rm needs"):
        load_reward_model(src, device="cpu")


def test_a_checkpoint_that_does_not_load_with_one_output_is_a_config_error(tiny_model, tmp_path):
    config = Qwen2Config(
        vocab_size=vocab_of(tiny_model),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        num_labels=2,
    )
    src = model_copy(tiny_model, tmp_path / "two", Qwen2ForSequenceClassification(config))
    with pytest.raises(ConfigError, match=r"two: does not load as a one-output reward model"):
        load_reward_model(src, device="cpu")


def test_a_scorers_model_loads_in_the_dtype_asked_and_a_trainers_in_fp32(tiny_model):
    model, _, _ = load_reward_model(tiny_model, device="cpu", dtype="bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    model, _, _ = load_reward_model(tiny_model, device="cpu", dtype="bfloat16", train=True)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_loading_a_new_head_is_quiet_and_leaves_transformers_logging_as_it_was(tiny_model, capfd):
    before = logging.get_verbosity()
    logging.set_verbosity_warning()
    try:
        capfd.readouterr()
        _, _, new = load_reward_model(tiny_model, device="cpu")
        assert new is True
        assert logging.get_verbosity() == logging.WARNING
        err = capfd.readouterr().err
        # The new head is said once, by the trainer; transformers' own warning is not shown.
        assert "score.weight" not in err and "newly initialized" not in err, err
    finally:
        logging.set_verbosity(before)


def test_reading_the_rewards_leaves_no_hook_on_the_head(tiny_model):
    model, _, _ = load_reward_model(tiny_model, device="cpu")
    head = score_head(model)
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    positions = torch.arange(3).repeat(2, 1)
    with torch.no_grad():
        first = sequence_rewards(model, ids, positions, torch.tensor([2, 1]))
        second = sequence_rewards(model, ids, positions, torch.tensor([2, 1]))
    assert torch.equal(first, second)
    assert len(head._forward_hooks) == 0


# --- the scorer -------------------------------------------------------------------------------


def test_an_unknown_part_is_refused_by_response_part():
    with pytest.raises(ValueError, match=r"unknown part 'summary'; valid: full, final"):
        response_part("<think> a </think> b", "summary")


@pytest.fixture(scope="module")
def scorer(tiny_rm):
    return RewardModelScorer(tiny_rm, device="cpu")


QUESTIONS = ["Say hi.", "Name two fruits.", "What is 2 + 2?", "Say hello.", "Tell a story."]
ANSWERS = [
    "hi",
    "apple, pear",
    "four",
    "hello there, how can I help you today? " * 6,
    "once upon a time there was a cat " * 3,
]


def test_batches_hold_at_most_batch_tokens_longest_first_each_sequence_once(scorer, monkeypatch):
    whole = scorer.score(QUESTIONS, ANSWERS)  # one batch
    widths = sorted((len(s) for s in scorer.sequences(QUESTIONS, ANSWERS)), reverse=True)
    assert widths[0] > 2 * widths[-1]  # the longest alone, the short ones together
    budget = widths[0] + 1
    monkeypatch.setattr(scorer, "batch_tokens", budget)
    shapes = []
    handle = scorer.model.register_forward_pre_hook(
        lambda m, a, kw: shapes.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    try:
        batched = scorer.score(QUESTIONS, ANSWERS)
    finally:
        handle.remove()
    assert batched == pytest.approx(whole, abs=1e-5)  # in input order, every one scored
    assert sum(rows for rows, _ in shapes) == len(QUESTIONS)  # each sequence once
    assert all(rows * width <= budget for rows, width in shapes), shapes
    assert shapes[0] == (1, widths[0]) and len(shapes) < len(QUESTIONS)
    assert [w for _, w in shapes] == sorted((w for _, w in shapes), reverse=True)
    # One row a batch: the same numbers again.
    monkeypatch.setattr(scorer, "batch_tokens", 1)
    assert scorer.score(QUESTIONS, ANSWERS) == pytest.approx(whole, abs=1e-5)


def test_a_prompt_that_fills_the_context_is_scored_without_its_response(scorer):
    question = "word " * (scorer.context + 50)
    apple, pear = scorer.sequences([question] * 2, ["apple", "pear"])
    assert apple == pear  # no response token: the prompt alone is scored
    # With room left, the response is there.
    apple, pear = scorer.sequences(["Name two fruits."] * 2, ["apple", "pear"])
    assert apple != pear


def test_questions_and_completions_must_pair_up(scorer):
    with pytest.raises(ValueError, match=r"^2 questions but 1 completions$"):
        scorer.score(["a", "b"], ["x"])
    with pytest.raises(ValueError):
        scorer.sequences(["a", "b"], ["x"])


# --- pair data --------------------------------------------------------------------------------


SAME = {"prompt": "q", "chosen": " same", "rejected": " same"}
LONG = {"prompt": "q", "chosen": " x" * 200, "rejected": " y"}


def test_held_out_pairs_are_dropped_and_counted_as_the_training_pairs_are(tok, tmp_path):
    train = write(tmp_path / "train.jsonl", [*ROWS, SAME, LONG])
    held = write(tmp_path / "held.jsonl", [ROWS[0], SAME, LONG, SAME, ROWS[2]])
    data = load_pairs(str(train), "raw", tok, 64, eval_data=str(held))
    assert [p.where.rsplit("/", 1)[-1] for p in data.eval] == [
        "held.jsonl, line 1",
        "held.jsonl, line 5",
    ]
    assert all(p.chosen != p.rejected for p in data.eval)
    assert len(data.train) == 3
    assert (data.identical, data.dropped) == (3, 2)  # 1 + 2 identical, 1 + 1 too long


def test_no_pair_left_to_train_on_is_a_config_error(tok, tmp_path):
    path = write(tmp_path / "same.jsonl", [SAME, SAME])
    with pytest.raises(ConfigError, match=r"no training pairs \(.*dropping 2 whose responses"):
        load_pairs(str(path), "raw", tok, 512)


def test_a_text_chosen_beside_a_conversation_rejected_is_named(tok):
    row = {
        "prompt": "q",
        "chosen": " a",
        "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}],
    }
    with pytest.raises(ConfigError, match=r"x: field 'chosen' must be a conversation like"):
        render_pair(row, "x", "chat", tok)


def test_a_response_that_encodes_to_no_tokens_is_refused(tok):
    rows = [("p.jsonl, line 1", "Say hi.", " hello", "", "")]
    with pytest.raises(ConfigError, match=r"p.jsonl, line 1: the rejected response encodes"):
        tokenize(rows, "raw", tok)
    rows = [("p.jsonl, line 2", "Say hi.", "", " hello", "")]
    with pytest.raises(ConfigError, match=r"p.jsonl, line 2: the chosen response encodes"):
        tokenize(rows, "raw", tok)


def test_microworld_defaults_are_the_configs_pairs_with_clean_labels(tok):
    default = read_rendered("microworld:helpful", "raw", tok)
    explicit = read_rendered("microworld:helpful", "raw", tok, pairs=RMConfig().pairs, noise=0.0)
    assert default == explicit and len(default["train"]) == 2000
    assert len(default["test"]) == HELD_OUT_PAIRS == 400  # RMConfig.pairs says so
    loaded = load_pairs("microworld:helpful", "raw", tok, 512)
    assert [p.chosen for p in loaded.train[:50]] == [
        p.chosen for p in tokenize(explicit["train"][:50], "raw", tok)
    ]
    assert len(loaded.train) == 2000


def test_a_cut_is_made_where_it_saves_more_positions_than_cut_cost():
    # Together: 4 rows x 10 = 40 positions; apart: 2 x 10 + 2 x 4 = 28, so a cut saves 12.
    pairs = [Pair(tuple(range(10)), tuple(range(9)), "a"), Pair((1, 2, 3, 4), (1, 2, 3), "b")]
    assert sorted(map(sorted, plan(pairs, budget=1000, cut_cost=10))) == [[0], [1]]
    assert plan(pairs, budget=1000, cut_cost=14) == [[0, 1]]


def test_pairs_and_their_fields_are_frozen():
    pair = Pair((1, 2), (1, 3), "x")
    with pytest.raises(FrozenInstanceError):
        pair.chosen = (1,)
    with pytest.raises(FrozenInstanceError):
        PairFields().chosen = "good"
    assert len({pair, Pair((1, 2), (1, 3), "x")}) == 1


def test_too_long_pairs_name_the_shortest(tok, tmp_path):
    path = write(tmp_path / "p.jsonl", ROWS)
    widths = [p.width for p in load_pairs(str(path), "raw", tok, 512).train]
    line = widths.index(min(widths)) + 1
    with pytest.raises(
        ConfigError, match=rf"the shortest, .*p\.jsonl, line {line}, has {min(widths)}"
    ):
        load_pairs(str(path), "raw", tok, 2)


def test_micro_batches_hold_at_most_budget_positions_of_both_sides():
    pairs = [Pair(tuple(range(1, 11)), tuple(range(2, 12)), f"r{i}") for i in range(6)]
    # 40 positions: two pairs (4 rows of 10) a micro-batch, however cheap a cut is not.
    groups = plan(pairs, budget=40, cut_cost=10**6)
    assert sorted(len(g) for g in groups) == [2, 2, 2]
    assert all(mb.input_ids.shape == (4, 10) for mb in micro_batches(pairs, 40, 10**6))


def test_a_pair_exactly_max_length_wide_is_kept(tok, tmp_path):
    path = write(tmp_path / "p.jsonl", ROWS)
    data = load_pairs(str(path), "raw", tok, 512, eval_data=str(path))
    widest = max(p.width for p in data.train)
    exact = load_pairs(str(path), "raw", tok, widest, eval_data=str(path))
    assert (len(exact.train), len(exact.eval), exact.dropped) == (3, 3, 0)
    below = load_pairs(str(path), "raw", tok, widest - 1, eval_data=str(path))
    assert (len(below.train), len(below.eval), below.dropped) == (2, 2, 2)


def test_responses_get_no_special_tokens_from_a_tokenizer_that_adds_them(
    tiny_model, tmp_path, add_bos
):
    """A tokenizer that starts every text with a BOS (as Llama's does): the prompt is encoded as
    eval encodes it, the response without one in the middle of the sequence."""
    src = model_copy(tiny_model, tmp_path / "bos")
    add_bos(src)
    bos_tok = load_tokenizer(src)
    assert bos_tok("hi")["input_ids"][0] == 0  # it does add one
    ((prompt, response),) = encode(["Say hi."], [" hello"], "raw", bos_tok)
    assert response == bos_tok(" hello", add_special_tokens=False)["input_ids"]
    assert 0 not in response
