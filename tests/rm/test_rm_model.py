"""The reward of a sequence: read at each row's last real token, the same number a Hugging Face
classifier gives, and kept by a saved reward model."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from r1lab.config import ConfigError
from r1lab.rm.data import Pair, collate
from r1lab.rm.model import load_reward_model, score_head, sequence_rewards


@pytest.fixture(scope="module")
def reward_model(tiny_model):
    torch.manual_seed(0)
    model, tokenizer, new = load_reward_model(tiny_model, device="cpu")
    return model, tokenizer, new


def test_a_causal_lm_gets_a_new_head_and_the_pad_token_in_its_config(reward_model):
    model, tokenizer, new = reward_model
    assert new is True
    assert score_head(model).out_features == 1
    assert model.config.pad_token_id == tokenizer.pad_token_id is not None


def test_rewards_are_read_at_each_rows_last_token_whatever_the_padding(reward_model):
    model, tokenizer, _ = reward_model
    pad = tokenizer.pad_token_id
    short = tuple(tokenizer("User: hi\nAssistant: hello", add_special_tokens=False)["input_ids"])
    long = tuple(tokenizer("User: name two fruits\nAssistant: apple, pear")["input_ids"])
    assert pad not in short + long
    mb = collate([Pair(long, short, "t")], pad)  # short padded to long's width
    assert mb.last.tolist() == [len(long) - 1, len(short) - 1]
    with torch.no_grad():
        batched = sequence_rewards(model, mb.input_ids, mb.position_ids, mb.last)
        # Each sequence alone, through the Hugging Face classifier's own pooling.
        alone = [model(input_ids=torch.tensor([s])).logits[0, 0].item() for s in (long, short)]
        # The padded row read at its last position instead would be another number.
        wrong = sequence_rewards(
            model,
            mb.input_ids,
            mb.position_ids,
            torch.full_like(mb.last, mb.input_ids.shape[1] - 1),
        )
    assert batched.tolist() == pytest.approx(alone, abs=1e-5)
    assert abs(wrong[1].item() - alone[1]) > 1e-4
    # And on a right-padded batch, Hugging Face finds the same token by the pad id.
    with torch.no_grad():
        hf = model(input_ids=mb.input_ids).logits[:, 0]
    assert hf.tolist() == pytest.approx(alone, abs=1e-5)


def test_a_saved_reward_model_loads_with_its_head(reward_model, tmp_path):
    model, tokenizer, _ = reward_model
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    again, _, new = load_reward_model(tmp_path, device="cpu")
    assert new is False
    assert torch.equal(score_head(again).weight, score_head(model).weight)
    hf = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert hf.config.num_labels == 1 and hf.config.pad_token_id == tokenizer.pad_token_id


def test_a_model_without_a_one_output_score_head_is_refused():
    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.classifier = torch.nn.Linear(4, 1)

    with pytest.raises(ConfigError, match="Classifier: r1lab rm needs .* `score`"):
        score_head(Classifier())
    two = Classifier()
    two.score = torch.nn.Linear(4, 2)
    with pytest.raises(ConfigError, match="one-output"):
        score_head(two)
