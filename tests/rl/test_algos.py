"""The GRPO math against hand-computed numbers, explicit Python loops and autograd."""

import math
import statistics

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from r1lab.rl.algos import (
    ADVANTAGE_ESTIMATORS,
    AGGREGATIONS,
    DEFAULT_SCALE,
    SCALES,
    aggregate,
    clipped_surrogate,
    compute_advantages,
    entropy_from_logits,
    grpo_loss,
    kl_k3,
)

F64 = torch.float64


# --- advantages -------------------------------------------------------------------------------


def test_default_scales_are_the_published_ones():
    assert DEFAULT_SCALE == {"grpo": "group", "dr_grpo": "none", "rloo": "none"}


def test_advantages_hand_computed():
    # Group [1, 0, 0, 0]: mean 1/4, centred [3/4, -1/4, -1/4, -1/4], population std sqrt(3)/4
    # (the sample std would be 1/2 and give 1.5 instead of sqrt(3)).
    # Group [1, 1, 1, 1]: flat, all zero.
    r = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]], dtype=F64)
    s3 = math.sqrt(3.0)
    expected = {
        ("grpo", "group"): [[s3, -1 / s3, -1 / s3, -1 / s3], [0.0] * 4],
        ("dr_grpo", "none"): [[0.75, -0.25, -0.25, -0.25], [0.0] * 4],
        # leave-one-out: 1 - mean(0, 0, 0) = 1; 0 - mean(1, 0, 0) = -1/3
        ("rloo", "none"): [[1.0, -1 / 3, -1 / 3, -1 / 3], [0.0] * 4],
        # batch rewards [1,0,0,0,1,1,1,1]: population std sqrt(5/8 * 3/8) = sqrt(15)/8
        ("grpo", "batch"): [[6 / math.sqrt(15)] + [-2 / math.sqrt(15)] * 3, [0.0] * 4],
        # rloo with group scale divides by the std of the rewards, sqrt(3)/4
        ("rloo", "group"): [[4 / s3] + [-4 / (3 * s3)] * 3, [0.0] * 4],
    }
    for (name, scale), want in expected.items():
        got = compute_advantages(name, r, scale=scale, eps=0.0)
        torch.testing.assert_close(got, torch.tensor(want, dtype=F64), msg=f"{name}/{scale}")
    torch.testing.assert_close(
        compute_advantages("grpo", r, eps=0.0), torch.tensor(expected["grpo", "group"], dtype=F64)
    )


def _loop_advantages(name: str, rewards: list[list[float]], scale: str, eps: float):
    everything = [x for group in rewards for x in group]
    out = []
    for group in rewards:
        row = []
        for i, r in enumerate(group):
            if len(set(group)) == 1:
                row.append(0.0)
                continue
            if name == "rloo":
                others = group[:i] + group[i + 1 :]
                a = r - sum(others) / len(others)
            else:
                a = r - sum(group) / len(group)
            if scale == "group":
                a /= statistics.pstdev(group) + eps
            elif scale == "batch":
                a /= statistics.pstdev(everything) + eps
            row.append(a)
        out.append(row)
    return out


@pytest.mark.parametrize("name", sorted(ADVANTAGE_ESTIMATORS))
@pytest.mark.parametrize("scale", SCALES)
def test_advantages_match_python_loop(name, scale):
    gen = torch.Generator().manual_seed(0)
    continuous = torch.randn(5, 6, generator=gen, dtype=F64)
    binary = torch.randint(0, 2, (5, 6), generator=gen).to(F64)
    flat = torch.full((2, 6), 0.5, dtype=F64)
    for rewards in (continuous, binary, torch.cat([continuous, flat])):
        want = _loop_advantages(name, rewards.tolist(), scale, 1e-6)
        got = compute_advantages(name, rewards, scale=scale, eps=1e-6)
        torch.testing.assert_close(got, torch.tensor(want, dtype=F64), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ADVANTAGE_ESTIMATORS))
@pytest.mark.parametrize("scale", SCALES)
def test_flat_groups_get_exactly_zero(name, scale):
    # 0.7 at G = 16 in float32: the float mean is off by ~6e-8, so without the explicit flat-group
    # rule the group-scaled advantage would be ~0.06 (6e-8 / (0 + 1e-6)).
    rewards = torch.tensor([[0.7] * 16, [0.0] * 16, [1.0] * 8 + [0.0] * 8])
    assert (rewards[0] - rewards[0].mean()).abs().max() > 0  # the residue this test is about
    adv = compute_advantages(name, rewards, scale=scale)
    assert torch.isfinite(adv).all()
    assert torch.equal(adv[:2], torch.zeros(2, 16))
    assert (adv[2] != 0).all()


def test_the_default_eps_is_the_trainers_and_only_guards_a_zero_std():
    # The trainer calls compute_advantages without eps: its default is what every run uses. A
    # group [0, 1] has population std 1/2, so GRPO's advantages are -+1 up to the 1e-6 guard
    # (an eps of 0.5 would halve them).
    got = compute_advantages("grpo", torch.tensor([[0.0, 1.0]], dtype=F64))
    torch.testing.assert_close(got, torch.tensor([[-1.0, 1.0]], dtype=F64), rtol=0, atol=5e-6)
    assert not torch.equal(got.abs(), torch.ones(1, 2, dtype=F64))  # eps is there: 0.5 / 0.500001


def test_rloo_at_two_samples_a_group_is_the_difference_of_the_two():
    got = compute_advantages("rloo", torch.tensor([[1.0, 0.0], [0.25, 0.75]], dtype=F64))
    torch.testing.assert_close(got, torch.tensor([[1.0, -1.0], [-0.5, 0.5]], dtype=F64))


def test_advantages_edge_cases():
    one = torch.tensor([[3.0], [1.0]])
    assert torch.equal(compute_advantages("grpo", one), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="at least 2"):
        compute_advantages("rloo", one)
    with pytest.raises(ValueError, match="valid: .*grpo"):
        compute_advantages("ppo", one)
    with pytest.raises(ValueError, match="scale"):
        compute_advantages("grpo", one, scale="global")
    ints = torch.tensor([[1, 0], [0, 0]])
    torch.testing.assert_close(
        compute_advantages("dr_grpo", ints), torch.tensor([[0.5, -0.5], [0.0, 0.0]])
    )


# --- clipped surrogate ------------------------------------------------------------------------


def test_clip_gradient_is_zero_exactly_where_the_clip_binds():
    eps_low, eps_high = 0.2, 0.28
    # one token per regime: (log-ratio, advantage)
    cases = [
        (math.log(1.5), 1.0, "high"),  # A > 0, ratio above 1 + eps_high: clipped
        (math.log(1.5), -1.0, None),  # A < 0, ratio above: unclipped, pushed back down
        (math.log(0.5), -1.0, "low"),  # A < 0, ratio below 1 - eps_low: clipped
        (math.log(0.5), 1.0, None),  # A > 0, ratio below: unclipped, pushed back up
        (math.log(1.1), 1.0, None),  # inside the range
        (math.log(0.9), -2.0, None),
        (0.0, 0.0, None),  # no advantage, no gradient, no clip
        (math.log(0.5), 0.0, None),  # far off-policy but no advantage: nothing for a clip to cut
        (math.log(1.5), 0.0, None),
    ]
    log_ratio = torch.tensor([[c[0] for c in cases]], dtype=F64)
    adv = torch.tensor([[c[1] for c in cases]], dtype=F64)
    old_logp = torch.full_like(log_ratio, -1.3)
    logp = (old_logp + log_ratio).requires_grad_()
    loss_tok, tok = clipped_surrogate(logp, old_logp, adv, eps_low=eps_low, eps_high=eps_high)
    loss_tok.sum().backward()

    binds = [c[2] for c in cases]
    assert tok["clip_high"][0].tolist() == [b == "high" for b in binds]
    assert tok["clip_low"][0].tolist() == [b == "low" for b in binds]
    ratio = log_ratio.exp()
    # d/dlogp of -ratio * A is -A * ratio where unclipped
    want_grad = torch.where(tok["clip_low"] | tok["clip_high"], 0.0, -adv * ratio)
    torch.testing.assert_close(logp.grad, want_grad, rtol=1e-12, atol=0)
    assert (logp.grad[0, [0, 2, 6]] == 0).all()
    assert (logp.grad[0, [1, 3, 4, 5]] != 0).all()
    torch.testing.assert_close(
        loss_tok[0, :4], torch.tensor([-1.28, 1.5, 0.8, -0.5], dtype=F64), rtol=1e-12, atol=0
    )


def test_on_policy_ratio_is_exactly_one():
    gen = torch.Generator().manual_seed(1)
    logp = -torch.rand(4, 9, generator=gen).requires_grad_()
    adv = torch.tensor([1.0, -1.0, 0.5, 0.0])
    mask = torch.ones(4, 9, dtype=torch.bool)
    kw = dict(eps_low=0.2, eps_high=0.2, beta=0.0, agg="token-mean", num_seqs=4, num_tokens=36)
    loss, stats = grpo_loss(logp, logp.detach(), None, adv, mask, max_len=9, **kw)
    _, tok = clipped_surrogate(logp, logp.detach(), adv[:, None], eps_low=0.2, eps_high=0.2)
    assert torch.equal(tok["ratio"], torch.ones(4, 9))
    assert stats["policy/ratio_mean"] == 1.0
    assert stats["policy/clip_frac_low"] == stats["policy/clip_frac_high"] == 0.0
    assert "loss/kl" not in stats and "policy/kl" not in stats
    # old_logp None means on-policy; the policy gradient is then -A * grad logp / num_tokens
    loss_none, stats_none = grpo_loss(logp, None, None, adv, mask, max_len=9, **kw)
    assert stats_none == stats
    (grad,) = torch.autograd.grad(loss_none, logp)
    torch.testing.assert_close(grad, (-adv[:, None] / 36).expand(4, 9))


# --- KL and entropy ---------------------------------------------------------------------------

logps = st.floats(-60.0, 0.0, allow_nan=False, width=32)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(logps, logps), min_size=1, max_size=20))
def test_k3_is_nonnegative(pairs):
    logp = torch.tensor([[a for a, _ in pairs]])
    ref = torch.tensor([[b for _, b in pairs]])
    kl = kl_k3(logp, ref)
    assert torch.isfinite(kl).all()
    assert (kl >= 0).all()
    assert torch.equal(kl_k3(logp, logp), torch.zeros_like(logp))


def test_k3_matches_formula_and_is_unbiased():
    gen = torch.Generator().manual_seed(2)
    logpi = torch.randn(7, generator=gen, dtype=F64).log_softmax(-1)
    logref = torch.randn(7, generator=gen, dtype=F64).log_softmax(-1)
    d = logref - logpi
    torch.testing.assert_close(kl_k3(logpi, logref), d.exp() - d - 1)
    # E_{x ~ pi}[k3(x)] = KL(pi || ref), exactly, by summing over the support
    expectation = (logpi.exp() * kl_k3(logpi, logref)).sum()
    torch.testing.assert_close(expectation, (logpi.exp() * (logpi - logref)).sum())


def test_k3_clamp_keeps_far_off_tokens_finite():
    logp = torch.tensor([-200.0, 0.0], requires_grad=True)
    ref = torch.tensor([0.0, -200.0])
    kl = kl_k3(logp, ref)
    kl.sum().backward()
    assert torch.isfinite(kl).all() and torch.isfinite(logp.grad).all()


def test_entropy_matches_categorical_in_any_chunking():
    gen = torch.Generator().manual_seed(3)
    logits = 3 * torch.randn(2, 5, 11, generator=gen)
    want = torch.distributions.Categorical(logits=logits).entropy()
    for chunk_rows in (1, 3, 1024):
        got = entropy_from_logits(logits, chunk_rows=chunk_rows)
        assert got.shape == (2, 5) and got.dtype == torch.float32
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(
        entropy_from_logits(logits.bfloat16()),
        torch.distributions.Categorical(logits=logits.bfloat16().float()).entropy(),
    )
    assert entropy_from_logits(torch.zeros(0, 4, 11)).shape == (0, 4)
    uniform = entropy_from_logits(torch.zeros(3, 8))
    torch.testing.assert_close(uniform, torch.full((3,), math.log(8)))


# --- aggregation ------------------------------------------------------------------------------


def _loop_aggregate(mode, loss_tok, mask, num_seqs, num_tokens, max_len):
    total = 0.0
    for row_loss, row_mask in zip(loss_tok.tolist(), mask.tolist(), strict=True):
        tokens = [x for x, m in zip(row_loss, row_mask, strict=True) if m]
        if mode == "token-mean":
            total += sum(tokens) / num_tokens
        elif mode == "seq-mean-token-mean":
            total += (sum(tokens) / len(tokens) if tokens else 0.0) / num_seqs
        elif mode == "seq-mean-token-sum-norm":
            total += sum(tokens) / max_len / num_seqs
        else:
            raise AssertionError(mode)
    return total


@pytest.mark.parametrize("mode", sorted(AGGREGATIONS))
def test_aggregate_matches_token_loop(mode):
    gen = torch.Generator().manual_seed(4)
    loss_tok = torch.randn(5, 8, generator=gen, dtype=F64)
    lengths = torch.tensor([8, 3, 0, 5, 1])
    mask = torch.arange(8) < lengths[:, None]  # [5, 8]
    loss_tok[~mask] = math.inf  # padding must not leak in, not even as 0 * inf = NaN
    loss_tok.requires_grad_()
    for num_seqs, num_tokens, max_len in ((5, 17, 8), (12, 40, 32)):
        got = aggregate(
            loss_tok, mask, mode, num_seqs=num_seqs, num_tokens=num_tokens, max_len=max_len
        )
        want = _loop_aggregate(mode, loss_tok, mask, num_seqs, num_tokens, max_len)
        assert math.isclose(got.item(), want, rel_tol=1e-12)
        (grad,) = torch.autograd.grad(got, loss_tok)
        assert torch.equal(grad[~mask], torch.zeros(int((~mask).sum()), dtype=F64))
        float_mask = aggregate(
            loss_tok, mask.double(), mode, num_seqs=num_seqs, num_tokens=num_tokens, max_len=max_len
        )
        assert float_mask.item() == got.item()


def test_aggregate_rejects_bad_arguments():
    x, m = torch.zeros(3, 2), torch.ones(3, 2)
    with pytest.raises(ValueError, match="valid: .*token-mean"):
        aggregate(x, m, "sum", num_seqs=3, num_tokens=6, max_len=2)
    with pytest.raises(ValueError, match="whole optimisation batch"):
        aggregate(x, m, "token-mean", num_seqs=2, num_tokens=6, max_len=2)


def _batch(seed=5, B=6, L=7, V=5):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, L, V, generator=gen, dtype=F64)
    tokens = torch.randint(V, (B, L), generator=gen)
    lengths = torch.tensor([7, 3, 0, 5, 1, 6])
    mask = torch.arange(L) < lengths[:, None]  # [B, L]

    def logp_of(lg, rows, length):  # [b, l]
        lp = lg.log_softmax(-1)[:, :length]
        return lp.gather(-1, tokens[rows, :length, None]).squeeze(-1)

    base = logp_of(logits, slice(None), L)
    old = base + 0.4 * torch.randn(B, L, generator=gen, dtype=F64)
    ref = base + 0.3 * torch.randn(B, L, generator=gen, dtype=F64)
    adv = torch.randn(B, generator=gen, dtype=F64)
    return logits, logp_of, lengths, mask, old, ref, adv


@pytest.mark.parametrize("agg", sorted(AGGREGATIONS))
def test_micro_batches_sum_to_the_full_batch(agg):
    logits, logp_of, lengths, mask, old, ref, adv = _batch()
    B, L = mask.shape
    kw = dict(eps_low=0.2, eps_high=0.28, beta=0.04, agg=agg)
    sizes = dict(num_seqs=B, num_tokens=int(mask.sum()), max_len=L)

    full_param = logits.clone().requires_grad_()
    full_loss, full_stats = grpo_loss(
        logp_of(full_param, slice(None), L), old, ref, adv, mask, **kw, **sizes
    )
    full_loss.backward()
    assert full_stats["policy/clip_frac_low"] > 0 and full_stats["policy/clip_frac_high"] > 0

    micro_param = logits.clone().requires_grad_()
    total, summed = 0.0, {}
    for rows in (slice(0, 2), slice(2, 3), slice(3, 6)):
        length = int(lengths[rows].max())  # each micro-batch padded only to its own longest
        loss, stats = grpo_loss(
            logp_of(micro_param[rows], rows, length),
            old[rows, :length],
            ref[rows, :length],
            adv[rows],
            mask[rows, :length],
            **kw,
            **sizes,
        )
        loss.backward()
        total += loss.item()
        for k, v in stats.items():
            summed[k] = summed.get(k, 0.0) + v

    assert math.isclose(total, full_loss.item(), rel_tol=1e-12)
    torch.testing.assert_close(micro_param.grad, full_param.grad, rtol=1e-12, atol=1e-15)
    assert summed.keys() == full_stats.keys()
    for k in full_stats:
        assert math.isclose(summed[k], full_stats[k], rel_tol=1e-9, abs_tol=1e-15), k
    assert math.isclose(full_stats["loss/total"], full_loss.item(), rel_tol=1e-12)
    assert full_stats["loss/kl"] > 0


@pytest.mark.parametrize("agg", sorted(AGGREGATIONS))
def test_empty_sequences_and_empty_batches_do_not_nan(agg):
    logp = torch.tensor([[-0.5, 500.0], [-300.0, 1e4]], requires_grad=True)  # padding is junk
    old = torch.tensor([[-0.7, -2.0], [0.0, -1e4]])
    mask = torch.tensor([[True, False], [False, False]])  # row 1 has no tokens
    adv = torch.tensor([1.0, -1.0])
    kw = dict(eps_low=0.2, eps_high=0.2, beta=0.1, agg=agg, max_len=2)
    for num_tokens, m in ((1, mask), (0, torch.zeros_like(mask))):
        logp.grad = None
        loss, stats = grpo_loss(logp, old, old, adv, m, num_seqs=2, num_tokens=num_tokens, **kw)
        loss.backward()
        assert torch.isfinite(loss) and all(math.isfinite(v) for v in stats.values())
        assert torch.isfinite(logp.grad).all()
        assert torch.equal(logp.grad[~m], torch.zeros(int((~m).sum())))
    assert loss.item() == 0.0  # the all-empty batch has nothing to learn from


def test_grpo_loss_wants_one_advantage_per_sequence():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"\[b\]"):
        grpo_loss(
            x, x, None, torch.zeros(2, 3), x.bool(), eps_low=0.2, eps_high=0.2, beta=0.0,
            agg="token-mean", num_seqs=2, num_tokens=0, max_len=3,
        )  # fmt: skip


@pytest.mark.parametrize("agg", sorted(AGGREGATIONS))
def test_kl_term_adds_to_the_loss_and_its_gradient_pulls_toward_the_reference(agg):
    gen = torch.Generator().manual_seed(4)
    B, L = 3, 6
    logp = -torch.rand(B, L, generator=gen, dtype=F64) - 0.1
    ref = logp + 0.5 * torch.randn(B, L, generator=gen, dtype=F64)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2, 2:] = False
    beta = 0.1
    sizes = dict(num_seqs=B, num_tokens=int(mask.sum()), max_len=L)
    kw = dict(eps_low=0.2, eps_high=0.28, beta=beta, agg=agg, **sizes)

    # With advantages: the reported parts add up to the loss that is backpropagated.
    adv = torch.tensor([1.0, -0.5, 0.25], dtype=F64)
    loss, stats = grpo_loss(logp.clone().requires_grad_(), None, ref, adv, mask, **kw)
    assert stats["loss/kl"] > 0
    assert loss.item() == pytest.approx(stats["loss/policy"] + stats["loss/kl"], rel=1e-12)
    assert stats["loss/total"] == pytest.approx(loss.item(), rel=1e-12)
    want_kl = beta * aggregate(kl_k3(logp, ref), mask, agg, **sizes)
    assert stats["loss/kl"] == pytest.approx(want_kl.item(), rel=1e-12)

    # Without advantages the gradient is the KL's alone: descending it moves every token's
    # log-prob toward the reference's, and lowers the KL.
    x = logp.clone().requires_grad_()
    loss, _ = grpo_loss(x, None, ref, torch.zeros(B, dtype=F64), mask, **kw)
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.equal(torch.sign(grad[mask]), torch.sign((logp - ref)[mask]))
    assert (grad[~mask] == 0).all()
    stepped = logp - 1e-2 * grad / grad.abs().max()
    assert (kl_k3(stepped, ref)[mask] < kl_k3(logp, ref)[mask]).all()


def test_beta_zero_skips_the_kl_even_with_a_reference_given():
    # The docstring's promise: beta == 0 drops the term and its stats, reference or not.
    logp = torch.tensor([[-0.5, -1.0]], dtype=F64)
    ref = torch.tensor([[-2.0, -0.1]], dtype=F64)
    kw = dict(
        eps_low=0.2, eps_high=0.2, beta=0.0, agg="token-mean", num_seqs=1, num_tokens=2, max_len=2
    )
    mask = torch.ones(1, 2, dtype=torch.bool)
    adv = torch.tensor([1.0], dtype=F64)
    with_ref = grpo_loss(logp, None, ref, adv, mask, **kw)
    without = grpo_loss(logp, None, None, adv, mask, **kw)
    assert with_ref[1] == without[1] and "policy/kl" not in with_ref[1]


def test_a_one_token_budget_is_a_valid_max_len():
    mask = torch.ones(2, 1, dtype=torch.bool)
    loss, _ = grpo_loss(
        torch.zeros(2, 1), None, None, torch.tensor([1.0, -1.0]), mask, eps_low=0.2,
        eps_high=0.2, beta=0.0, agg="seq-mean-token-sum-norm", num_seqs=2, num_tokens=2, max_len=1,
    )  # fmt: skip
    assert loss.item() == 0.0
    with pytest.raises(ValueError, match="max_len"):
        grpo_loss(
            torch.zeros(2, 1), None, None, torch.tensor([1.0, -1.0]), mask, eps_low=0.2,
            eps_high=0.2, beta=0.0, agg="seq-mean-token-sum-norm", num_seqs=2, num_tokens=2,
            max_len=0,
        )  # fmt: skip
