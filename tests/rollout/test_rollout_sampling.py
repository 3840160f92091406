"""The sampling math: log-prob convention, top-k / top-p filtering, one sampling step."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from r1lab.rollout import SamplingParams, filter_logits, sample_next, token_logprobs
from r1lab.rollout import sampling as sampling_module


def _gen(seed: int = 0) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


@pytest.mark.parametrize("temperature", [1.0, 0.6, 1.7])
def test_token_logprobs_equals_log_softmax_gather(temperature):
    logits = torch.randn(3, 5, 11, generator=_gen())  # [B, L, V]
    ids = torch.randint(0, 11, (3, 5), generator=_gen(1))  # [B, L]
    ref = torch.log_softmax(logits / temperature, -1).gather(-1, ids[..., None])[..., 0]
    got = token_logprobs(logits, ids, temperature)
    assert got.shape == (3, 5)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("temperature", [0.0, -0.5])
def test_token_logprobs_refuses_a_temperature_with_no_distribution(temperature):
    # Greedy decoding (T = 0) samples by argmax; its tokens have no log-prob at T = 0 to score.
    with pytest.raises(ValueError, match="temperature must be > 0"):
        token_logprobs(torch.zeros(2, 3), torch.tensor([0, 1]), temperature)


def test_token_logprobs_chunked_matches_and_differentiates(monkeypatch):
    # 2 rows per chunk forces several chunks, including a ragged last one.
    # More rows (11) than the vocabulary (7), so chunks must run over the rows, not the vocab.
    monkeypatch.setattr(sampling_module, "_LOGPROB_CHUNK_ELEMENTS", 2 * 7)
    logits = torch.randn(11, 7, generator=_gen(), requires_grad=True)
    ids = torch.tensor([0, 6, 3, 3, 1, 2, 5, 4, 0, 6, 1])
    got = token_logprobs(logits, ids, 0.8)
    ref_logits = logits.detach().clone().requires_grad_(True)
    ref = torch.log_softmax(ref_logits / 0.8, -1)[torch.arange(11), ids]
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)
    got.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(logits.grad, ref_logits.grad, rtol=0, atol=1e-6)


def test_token_logprobs_bf16_logits_are_scored_in_fp32():
    logits = (torch.randn(4, 50, generator=_gen()) * 5).bfloat16()
    ids = torch.tensor([1, 2, 3, 4])
    got = token_logprobs(logits, ids)
    assert got.dtype == torch.float32
    ref = torch.log_softmax(logits.float(), -1)[torch.arange(4), ids]
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)


def _kept(logits: torch.Tensor) -> set[int]:
    return set(torch.isfinite(logits[0]).nonzero().flatten().tolist())


# Token probabilities 0.5, 0.3, 0.15, 0.05 placed at shuffled vocabulary positions so a filter
# that forgets to un-sort fails.
PROBS = {3: 0.5, 0: 0.3, 4: 0.15, 1: 0.05}


def _hand_made_logits() -> torch.Tensor:
    logits = torch.full((1, 5), float("-inf"))
    for tok, p in PROBS.items():
        logits[0, tok] = math.log(p)
    logits[0, 2] = math.log(1e-9)  # a nearly impossible token
    return logits


@pytest.mark.parametrize(
    ("top_p", "expected"),
    [
        (0.4, {3}),  # the top token alone already reaches 0.4
        (0.5, {3}),  # exactly reached by the top token
        (0.7, {3, 0}),  # 0.5 < 0.7 <= 0.8
        (0.9, {3, 0, 4}),  # 0.8 < 0.9 <= 0.95
        (0.99, {3, 0, 4, 1}),
        (1.0, {0, 1, 2, 3, 4}),  # disabled: nothing dropped
    ],
)
def test_top_p_keeps_smallest_set_reaching_p(top_p, expected):
    assert _kept(filter_logits(_hand_made_logits(), top_p=top_p)) == expected


def test_top_k_keeps_k_best_and_ties():
    logits = torch.tensor([[1.0, 3.0, 2.0, 3.0, 0.0]])
    assert _kept(filter_logits(logits, top_k=1)) == {1, 3}  # tie at the k-th value kept
    assert _kept(filter_logits(logits, top_k=3)) == {1, 2, 3}
    assert _kept(filter_logits(logits, top_k=0)) == {0, 1, 2, 3, 4}


def test_top_p_applies_to_renormalised_top_k():
    # top-3 renormalises {0.5, 0.3, 0.15} to {0.526, 0.316, 0.158}; top-p 0.8 then needs
    # 0.526 + 0.316 = 0.842 -> {3, 0}. Without renormalising, 0.8 would be reached exactly too,
    # so use 0.83, which renormalised needs two tokens but raw would need three.
    got = filter_logits(_hand_made_logits(), top_k=3, top_p=0.83)
    assert _kept(got) == {3, 0}


def test_sampling_frequencies_follow_filtered_distribution():
    draws = 40_000
    logits = _hand_made_logits().expand(draws, -1)
    params = SamplingParams(temperature=1.0, top_p=0.9)
    tokens, logprobs = sample_next(logits, params, _gen(7))
    counts = torch.bincount(tokens, minlength=5).float() / draws
    assert counts[1] == 0 and counts[2] == 0  # outside the nucleus: never sampled
    for tok, p in ((3, 0.5), (0, 0.3), (4, 0.15)):
        assert abs(counts[tok].item() - p / 0.95) < 0.01  # renormalised inside the nucleus
    # Log-probs are of the untruncated distribution, not of the renormalised nucleus.
    assert torch.allclose(logprobs[tokens == 3], torch.tensor(math.log(0.5)), atol=1e-5)


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_sampling_draws_from_the_tempered_distribution(temperature):
    # p(token) = softmax(logits / T): at T = 0.5 the odds 1 : 3 become 1 : 9, at T = 2 1 : sqrt 3.
    draws = 40_000
    logits = torch.tensor([[0.0, math.log(3.0)]]).expand(draws, -1)
    tokens, logprobs = sample_next(logits, SamplingParams(temperature=temperature), _gen(11))
    want = 3.0 ** (1 / temperature) / (1 + 3.0 ** (1 / temperature))
    assert abs(tokens.float().mean().item() - want) < 0.01
    torch.testing.assert_close(logprobs[tokens == 1][:1], torch.tensor([math.log(want)]))


def test_temperature_zero_is_argmax_with_t1_logprobs():
    logits = torch.randn(6, 9, generator=_gen())
    tokens, logprobs = sample_next(logits, SamplingParams(temperature=0.0), None)
    assert torch.equal(tokens, logits.argmax(-1))
    torch.testing.assert_close(logprobs, torch.log_softmax(logits, -1).max(-1).values)


def test_top_k_one_is_argmax_at_any_temperature():
    logits = torch.randn(64, 30, generator=_gen())
    tokens, _ = sample_next(logits, SamplingParams(temperature=1.3, top_k=1), _gen(3))
    assert torch.equal(tokens, logits.argmax(-1))


def test_sampling_params_validation():
    assert SamplingParams(stop="</answer>").stop == ("</answer>",)  # not split into chars
    assert SamplingParams(stop=["a", "b"]).stop == ("a", "b")
    assert SamplingParams(max_new_tokens=1, temperature=0.0).max_new_tokens == 1  # the edges hold
    for bad in (
        {"temperature": -1},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"top_k": -1},
        {"max_new_tokens": 0},
        {"n": 0},
        {"stop": ("",)},
    ):
        with pytest.raises(ValueError):
            SamplingParams(**bad)


@settings(max_examples=60, deadline=None)
@given(
    weights=st.lists(st.integers(1, 1000), min_size=2, max_size=12, unique=True),
    top_p=st.floats(0.05, 0.999),
    top_k=st.integers(0, 12),
)
def test_filter_matches_reference_loop(weights, top_p, top_k):
    # Distinct integer weights: no ties, so "the k most likely" is one well-defined set.
    p = torch.tensor(weights, dtype=torch.float64) / sum(weights)
    order = sorted(range(len(weights)), key=lambda i: -weights[i])
    if 0 < top_k < len(weights):
        order = order[:top_k]
    p = p / p[order].sum()
    kept, mass, edge = set(), 0.0, False
    for i in order:  # the smallest most-likely-first set whose mass reaches top_p
        kept.add(i)
        mass += p[i].item()
        edge |= abs(mass - top_p) < 1e-5  # fp32 may round a mass landing on top_p either way
        if mass >= top_p:
            break
    got = _kept(filter_logits(p.log().float()[None], top_k=top_k, top_p=top_p))
    assert got == kept or (edge and len(got ^ kept) == 1)
