"""PromptCache: each prompt once per pass, rows in any order; same logits and gradients as the
plain forward pass."""

import pytest
import torch

from r1lab.rollout import Sampler, SamplingParams, collate
from r1lab.rollout.batch import PromptCache, completion_logits


@pytest.fixture(scope="module")
def batch_and_model(tokenizer, make_model):
    model = make_model(len(tokenizer), init_std=0.2, seed=3)
    prompts = ["a", "hello world, a longer prompt", "xyz 12"]  # different lengths: left padding
    params = SamplingParams(temperature=1.0, max_new_tokens=12, n=4)
    groups = Sampler(model, tokenizer).generate(prompts, params, seed=0)
    batch = collate([c for g in groups for c in g], tokenizer.pad_token_id)
    return batch, model


# Rows across groups and out of order, as the trainer's length-sorted micro-batches are.
ROWS = [slice(None), slice(4, 12), slice(2, 8), torch.tensor([11, 0, 5, 6]), torch.tensor([7])]


@pytest.mark.parametrize("rows", ROWS)
def test_cached_prompt_logits_equal_the_plain_forward(batch_and_model, rows):
    batch, model = batch_and_model
    with torch.no_grad():
        plain = completion_logits(model, batch, rows)
        cached = completion_logits(model, batch, rows, PromptCache(model, batch))
        full = model(
            input_ids=batch.input_ids[rows],
            attention_mask=batch.attention_mask[rows],
            position_ids=batch.position_ids[rows],
        ).logits[:, batch.prompt_len - 1 : -1]  # [b, Lc, V], nothing trimmed
    # Both are as wide as the rows' longest completion; every real token is predicted.
    k = int(batch.completion_mask[rows].sum(1).max())
    assert plain.shape[1] == cached.shape[1] == k
    mask = batch.completion_mask[rows, :k].bool()
    assert (plain - full[:, :k]).abs()[mask].max() < 1e-4
    assert (cached - full[:, :k]).abs()[mask].max() < 1e-4


def _grads(model, batch, weights, micro_batches, prompts_backward=True):
    """Gradient of sum(weights * log p(token)) accumulated over micro-batches, as the trainer
    does (None in micro_batches: the plain pass over the whole batch)."""
    model.zero_grad()
    prompts = PromptCache(model, batch) if micro_batches is not None else None
    for rows in micro_batches if micro_batches is not None else [slice(None)]:
        logits = completion_logits(model, batch, rows, prompts)  # [b, k, V]
        k = logits.shape[1]
        picked = logits.log_softmax(-1).gather(-1, batch.completion_ids[rows, :k, None])[..., 0]
        (picked * weights[rows, :k]).sum().backward()
    if prompts is not None and prompts_backward:
        prompts.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_cached_prompt_gradients_equal_the_plain_forward(batch_and_model):
    batch, model = batch_and_model
    weights = torch.randn(batch.completion_ids.shape) * batch.completion_mask
    plain = _grads(model, batch, weights, None)
    order = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    cached = _grads(model, batch, weights, list(order.split(5)))  # 5, 5, 2 rows, mixed groups
    for name in plain:
        # atol 1e-4: the two passes sum in different orders (a detached or shifted cache, or a
        # missing prompts.backward(), is off by far more: see the next test)
        torch.testing.assert_close(cached[name], plain[name], rtol=1e-4, atol=1e-4)


def test_without_prompts_backward_the_prompt_gradient_is_missing(batch_and_model):
    # The check above can fail: leaving out the prompts' backward changes the gradient.
    batch, model = batch_and_model
    weights = torch.randn(batch.completion_ids.shape) * batch.completion_mask
    plain = _grads(model, batch, weights, None)
    partial = _grads(model, batch, weights, [torch.arange(12)], prompts_backward=False)
    name = "model.embed_tokens.weight"
    assert (partial[name] - plain[name]).abs().max() > 1e-3


def test_collate_finds_distinct_prompts_by_tokens(tokenizer, make_model):
    # Two sampling calls both number their prompts from 0 (dynamic sampling collates several):
    # rows share a cached prompt only when the tokens are the same.
    model = make_model(len(tokenizer), init_std=0.2, seed=3)
    sampler = Sampler(model, tokenizer)
    params = SamplingParams(max_new_tokens=4, n=2)
    first = sampler.generate(["a", "bc"], params, seed=0)
    second = sampler.generate(["dd", "a"], params, seed=1)
    comps = [c for g in first + second for c in g]
    batch = collate(comps, tokenizer.pad_token_id)
    assert batch.prompt_index.tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    assert batch.prefix_index.tolist() == [0, 0, 1, 1, 2, 2, 0, 0]
    assert batch.prefix_rows.tolist() == [0, 2, 4]
    with torch.no_grad():
        plain = completion_logits(model, batch)
        cached = completion_logits(model, batch, slice(None), PromptCache(model, batch))
    k = plain.shape[1]
    assert (plain - cached).abs()[batch.completion_mask[:, :k].bool()].max() < 1e-4


def test_columns_past_the_rows_longest_completion_are_skipped(tokenizer, make_model):
    # Groups 0-1 stop within 3 tokens, group 2 runs to 12: the batch is 12 wide, but a
    # micro-batch of groups 0-1 needs 3 columns. Its logits (3 wide) and gradients must equal
    # the full width's, and the model must not see the padding columns.
    model = make_model(len(tokenizer), init_std=0.2, seed=3)
    sampler = Sampler(model, tokenizer)
    short = sampler.generate(
        ["a", "xyz 12"], SamplingParams(max_new_tokens=3, n=4, ignore_eos=True)
    )
    long = sampler.generate(
        ["hello"], SamplingParams(max_new_tokens=12, n=4, ignore_eos=True), seed=1
    )
    batch = collate([c for g in short + long for c in g], tokenizer.pad_token_id)
    rows, lp = slice(0, 8), batch.prompt_len
    assert batch.completion_ids.shape[1] == 12

    mask = batch.completion_mask[rows].bool()
    weights = torch.randn(mask.shape) * mask
    widths = []  # columns the model is given, per forward call

    def run(logits_fn):
        model.zero_grad()
        logits, after = logits_fn()
        k = logits.shape[1]
        picked = logits.log_softmax(-1).gather(-1, batch.completion_ids[rows, :k, None])[..., 0]
        (picked * weights[:, :k]).sum().backward()
        after()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        return logits.detach(), grads

    def full_width():
        out = model(
            input_ids=batch.input_ids[rows],
            attention_mask=batch.attention_mask[rows],
            position_ids=batch.position_ids[rows],
        )
        return out.logits[:, lp - 1 : -1], lambda: None  # [8, 12, V]

    def cached():
        prompts = PromptCache(model, batch)
        return completion_logits(model, batch, rows, prompts), prompts.backward

    hook = model.register_forward_pre_hook(
        lambda _, args, kw: widths.append(kw["input_ids"].shape[1]), with_kwargs=True
    )
    try:
        reference, ref_grads = run(full_width)
        for fn in (lambda: (completion_logits(model, batch, rows), lambda: None), cached):
            widths.clear()
            logits, grads = run(fn)
            assert logits.shape == (8, 3, reference.shape[-1])
            assert (logits - reference[:, :3]).abs()[mask[:, :3]].max() < 1e-4
            for name in ref_grads:
                # atol: float sums over different shapes differ by ~1e-5 on the largest grads
                torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-4, atol=1e-4)
            widths_seen = list(widths)
            # plain: the rows' prompts and 2 completion inputs (the 3rd token's output would
            # predict past the completion); cached: every prompt once, then the 2 columns
            first = int(batch.attention_mask[rows, :lp].sum(0).nonzero().min())
            assert widths_seen == ([lp - first + 2] if fn is not cached else [lp, 2])
    finally:
        hook.remove()


def test_a_common_template_is_computed_once_with_the_same_logits_and_gradients(
    tokenizer, make_model
):
    # Three prompts that share a 43-character template (the R1-Zero template's role): it goes
    # through the model once as one row, each prompt's rest after it, then the completions.
    model = make_model(len(tokenizer), init_std=0.2, seed=3)
    template = "A conversation between User and Assistant. "
    prompts = [template + q for q in ("User: 12+3=", "User: 7*8=", "User: 100-1=")]
    groups = Sampler(model, tokenizer).generate(
        prompts, SamplingParams(max_new_tokens=6, n=2), seed=0
    )
    batch = collate([c for g in groups for c in g], tokenizer.pad_token_id)
    widths = []
    hook = model.register_forward_pre_hook(
        lambda _, args, kw: widths.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    try:
        with torch.no_grad():
            plain = completion_logits(model, batch)
            widths.clear()
            cached = completion_logits(model, batch, slice(None), PromptCache(model, batch))
    finally:
        hook.remove()
    common = 1 + len(template) + len("User: ")  # BOS, the template, "User: "
    rest = max(len(p) for p in prompts) + 1 - common
    k = cached.shape[1]
    assert widths == [(1, common), (3, rest), (6, k - 1)]
    mask = batch.completion_mask[:, :k].bool()
    assert (plain - cached).abs()[mask].max() < 1e-4

    weights = torch.randn(batch.completion_ids.shape) * batch.completion_mask
    reference = _grads(model, batch, weights, None)
    shared = _grads(model, batch, weights, [torch.tensor([5, 0, 2]), torch.tensor([1, 3, 4])])
    for name in reference:
        torch.testing.assert_close(shared[name], reference[name], rtol=1e-4, atol=1e-4)


def test_the_shared_prefix_leaves_every_prompt_a_token_of_its_own():
    from r1lab.rollout.batch import _common_prefix

    def common(*prompts: list[int]) -> int:
        width = max(map(len, prompts))
        ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])  # left-padded
        return _common_prefix(ids, torch.tensor([len(p) for p in prompts]))

    assert common([7, 8, 9, 1], [7, 8, 9, 2]) == 3
    assert common([7, 8, 9], [7, 8, 9, 4]) == 2  # one prompt starts the other: keep its last
    assert common([5, 1, 2], [6, 1, 2]) == 0  # they differ at the first token
    assert common([3, 3], [3, 3]) == 1
