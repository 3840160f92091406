"""A trained reward model as a scorer: the same number the trainer measured for the same pair,
what of a completion it reads, and a completion too long for the context."""

from __future__ import annotations

import json

import pytest

from r1lab.config import ConfigError
from r1lab.microworld.general import preference_pairs
from r1lab.rm import trainer
from r1lab.rm.config import RMConfig
from r1lab.rm.scorer import RewardModelScorer, response_part
from r1lab.run import checkpoints


@pytest.fixture(scope="module")
def microworld_rm(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("rm") / "helpful"
    cfg = RMConfig(
        model=str(tiny_model),
        data="microworld:helpful",
        pairs=32,
        batch_size=16,
        lr=1e-3,
        eval_every=2,
        threads=1,
        progress=False,
        out=str(out),
    )
    trainer.run(cfg)
    return out


def test_it_scores_a_question_and_a_response_as_the_trainer_did(microworld_rm):
    meta = json.loads((checkpoints(microworld_rm)[-1] / "r1lab.json").read_text())
    assert meta["prompt_format"] == "User: {prompt}\nAssistant:"
    assert meta["response_format"] == " {response}"
    scorer = RewardModelScorer(microworld_rm, device="cpu")  # a run directory: its last
    held = preference_pairs(400, seed=0, split="test", aspect="helpful")[:12]
    saved = json.loads((microworld_rm / "margins.json").read_text())["pairs"][:12]
    chosen = scorer.score([p["prompt"] for p in held], [p["chosen"] for p in held])
    rejected = scorer.score([p["prompt"] for p in held], [p["rejected"] for p in held])
    assert chosen == pytest.approx([s["chosen"] for s in saved], abs=1e-4)
    assert rejected == pytest.approx([s["rejected"] for s in saved], abs=1e-4)
    # Batched as one or one at a time, the same numbers.
    small = RewardModelScorer(microworld_rm, device="cpu", batch_tokens=1)
    assert small.score([held[0]["prompt"]], [held[0]["chosen"]]) == pytest.approx(chosen[:1])


def test_the_final_part_is_what_follows_the_reasoning(microworld_rm):
    text = (
        "<think> the user wants fruit, I am very helpful </think> apple, pear <answer> x </answer>"
    )
    assert response_part(text, "final") == "apple, pear x"
    assert response_part(" no tags at all ", "final") == "no tags at all"
    assert response_part(text, "full") == text
    final = RewardModelScorer(microworld_rm, part="final", device="cpu")
    full = RewardModelScorer(microworld_rm, part="full", device="cpu")
    q = "Name two fruits."
    assert final.score([q], [text]) == pytest.approx(final.score([q], ["apple, pear x"]))
    assert full.score([q], [text]) != pytest.approx(full.score([q], ["apple, pear x"]))
    # Nothing after the reasoning is still scored (at the prompt's end), not an error.
    assert len(final.score([q], ["<think> ... </think>"])) == 1


def test_a_long_completion_keeps_its_end(microworld_rm):
    scorer = RewardModelScorer(microworld_rm, device="cpu")
    long = "word " * 2000 + "apple, pear."
    (seq,) = scorer.sequences(["Name two fruits."], [long])
    assert len(seq) == scorer.context
    tail = scorer.tokenizer(" apple, pear.", add_special_tokens=False)["input_ids"]
    assert seq[-len(tail) :] == tail


def test_only_reward_models_score(tiny_model):
    with pytest.raises(ConfigError, match="not an r1lab rm checkpoint"):
        RewardModelScorer(tiny_model, device="cpu")
    with pytest.raises(ConfigError, match="part must be one of full, final"):
        RewardModelScorer(tiny_model, part="summary", device="cpu")
