"""Prefix sharing in the trainer's forward pass: same logits and gradients as the plain pass."""

import pytest
import torch

from r1lab.rollout import Sampler, SamplingParams, collate
from r1lab.rollout.batch import completion_logits


@pytest.fixture(scope="module")
def batch_and_model(tokenizer, make_model):
    model = make_model(len(tokenizer), init_std=0.2, seed=3)
    prompts = ["a", "hello world, a longer prompt", "xyz 12"]  # different lengths: left padding
    params = SamplingParams(temperature=1.0, max_new_tokens=12, n=4)
    groups = Sampler(model, tokenizer).generate(prompts, params, seed=0)
    batch = collate([c for g in groups for c in g], tokenizer.pad_token_id)
    return batch, model


@pytest.mark.parametrize("rows", [slice(None), slice(4, 12), slice(0, 4)])
def test_shared_prefix_logits_equal_the_plain_forward(batch_and_model, rows):
    batch, model = batch_and_model
    plain = completion_logits(model, batch, rows)
    shared = completion_logits(model, batch, rows, group_size=4)
    mask = batch.completion_mask[rows].bool()
    assert (plain - shared).abs()[mask].max() < 1e-4


def test_shared_prefix_gradients_equal_the_plain_forward(batch_and_model):
    batch, model = batch_and_model
    weights = torch.randn(batch.completion_ids.shape) * batch.completion_mask

    def grads(group_size):
        model.zero_grad()
        logits = completion_logits(model, batch, slice(None), group_size)
        picked = logits.log_softmax(-1).gather(-1, batch.completion_ids[..., None])[..., 0]
        (picked * weights).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain, shared = grads(1), grads(4)
    for name in plain:
        torch.testing.assert_close(shared[name], plain[name], rtol=1e-4, atol=1e-5)


def test_rows_that_split_a_group_fall_back_to_the_plain_pass(batch_and_model):
    batch, model = batch_and_model
    rows = slice(2, 8)  # half of group 0, half of group 1
    plain = completion_logits(model, batch, rows)
    assert torch.equal(completion_logits(model, batch, rows, group_size=4), plain)
