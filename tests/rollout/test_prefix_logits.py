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
        # atol 1e-4: the two passes sum in different orders, and about one run in two had an
        # element ~2e-5 apart at 1e-5 (a detached or shifted cache is off by far more)
        torch.testing.assert_close(shared[name], plain[name], rtol=1e-4, atol=1e-4)


def test_rows_that_split_a_group_fall_back_to_the_plain_pass(batch_and_model):
    batch, model = batch_and_model
    rows = slice(2, 8)  # half of group 0, half of group 1
    plain = completion_logits(model, batch, rows)
    assert torch.equal(completion_logits(model, batch, rows, group_size=4), plain)


def test_columns_past_the_rows_longest_completion_are_skipped(tokenizer, make_model):
    # Groups 0-1 stop within 3 tokens, group 2 runs to 12: the batch is 12 wide, but a
    # micro-batch of groups 0-1 needs 3 columns. Its logits and gradients must equal the full
    # width's, and the model must not see the padding columns.
    model = make_model(len(tokenizer), init_std=0.2, seed=3)
    sampler = Sampler(model, tokenizer)
    short = sampler.generate(
        ["a", "xyz 12"], SamplingParams(max_new_tokens=3, n=4, ignore_eos=True)
    )
    long = sampler.generate(
        ["hello"], SamplingParams(max_new_tokens=12, n=4, ignore_eos=True), seed=1
    )
    comps = [c for g in short for c in g] + [c for g in long for c in g]
    for c in comps[8:]:
        c.prompt_index = 2
    batch = collate(comps, tokenizer.pad_token_id)
    rows, lp = slice(0, 8), batch.prompt_len
    assert batch.completion_ids.shape[1] == 12

    mask = batch.completion_mask[rows].bool()
    weights = torch.randn(mask.shape) * mask
    widths = []  # columns the model is given, per forward call

    def run(logits_fn):
        model.zero_grad()
        widths.clear()
        logits = logits_fn()
        picked = logits.log_softmax(-1).gather(-1, batch.completion_ids[rows, :, None])[..., 0]
        (picked * weights).sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        return logits.detach(), grads, list(widths)

    def full_width():
        out = model(
            input_ids=batch.input_ids[rows],
            attention_mask=batch.attention_mask[rows],
            position_ids=batch.position_ids[rows],
        )
        return out.logits[:, lp - 1 : -1]  # [8, 12, V]

    hook = model.register_forward_pre_hook(
        lambda _, args, kw: widths.append(kw["input_ids"].shape[1]), with_kwargs=True
    )
    try:
        reference, ref_grads, _ = run(full_width)
        for g in (1, 4):
            logits, grads, seen = run(lambda g=g: completion_logits(model, batch, rows, g))
            assert logits.shape == reference.shape
            assert (logits - reference).abs()[mask].max() < 1e-4
            for name in ref_grads:
                # atol: float sums over different shapes differ by ~1e-5 on the largest grads
                torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-4, atol=1e-4)
            # plain pass: prompt + 3 columns; shared prefix: prompt, then the 3 columns
            assert seen == ([lp + 3] if g == 1 else [lp, 3])
    finally:
        hook.remove()
