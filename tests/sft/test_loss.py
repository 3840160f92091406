"""The SFT objective and schedule as pure functions, against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from r1lab.sft.loss import IGNORE, lr_factor, sft_loss, token_nll


def reference_nll(logits, targets):
    """-log p(target) summed over the positions that have one, one position at a time."""
    total = 0.0
    for pos in zip(*torch.where(targets != IGNORE), strict=True):
        row = logits[pos].double()
        total += -(row[targets[pos]] - torch.logsumexp(row, 0)).item()
    return total


def test_the_loss_is_the_summed_nll_of_the_targets_over_the_given_count():
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11)
    targets = torch.randint(0, 11, (3, 7))
    targets[torch.rand(3, 7) < 0.4] = IGNORE
    n = int((targets != IGNORE).sum())
    assert token_nll(logits, targets).item() == pytest.approx(reference_nll(logits, targets), 1e-5)
    assert sft_loss(logits, targets, 50).item() == pytest.approx(
        reference_nll(logits, targets) / 50, 1e-5
    )
    assert sft_loss(logits, targets, n).item() == pytest.approx(
        reference_nll(logits, targets) / n, 1e-5
    )


def test_positions_without_a_target_do_not_count_and_targets_do():
    torch.manual_seed(1)
    logits = torch.randn(2, 5, 9)
    targets = torch.tensor([[IGNORE, 3, 4, IGNORE, IGNORE], [IGNORE, IGNORE, 1, 2, IGNORE]])
    base = sft_loss(logits, targets, 4)
    masked = logits.clone()
    masked[targets == IGNORE] = torch.randn(int((targets == IGNORE).sum()), 9) * 10
    assert torch.equal(sft_loss(masked, targets, 4), base)
    moved = logits.clone()
    moved[0, 1] += torch.randn(9)
    assert sft_loss(moved, targets, 4).item() != pytest.approx(base.item(), abs=1e-6)


def test_micro_batch_losses_with_the_batch_count_add_up_to_the_batch_token_mean():
    torch.manual_seed(2)
    logits = torch.randn(6, 8, 13)
    targets = torch.randint(0, 13, (6, 8))
    # Rows with very different numbers of targets: a per micro-batch mean would differ.
    targets[:2, :6] = IGNORE
    targets[2:, :1] = IGNORE
    n = int((targets != IGNORE).sum())
    whole = sft_loss(logits, targets, n)
    parts = [sft_loss(logits[i : i + 2], targets[i : i + 2], n) for i in (0, 2, 4)]
    assert sum(parts).item() == pytest.approx(whole.item(), rel=1e-6)
    per_micro_mean = (
        sum(
            sft_loss(
                logits[i : i + 2], targets[i : i + 2], int((targets[i : i + 2] != IGNORE).sum())
            )
            for i in (0, 2, 4)
        )
        / 3
    )
    assert per_micro_mean.item() != pytest.approx(whole.item(), rel=1e-3)


def test_a_batch_of_one_target_token_is_that_tokens_nll():
    logits = torch.tensor([[[0.0, math.log(3.0)]]])  # p = 1/4, 3/4
    assert sft_loss(logits, torch.tensor([[1]]), 1).item() == pytest.approx(-math.log(0.75))


def test_a_batch_without_targets_is_a_finite_zero():
    logits = torch.randn(1, 3, 5)
    targets = torch.full((1, 3), IGNORE)
    assert sft_loss(logits, targets, 0).item() == 0.0


def test_bf16_logits_are_reduced_in_float32():
    torch.manual_seed(3)
    logits = torch.randn(4, 6, 50) * 5
    targets = torch.randint(0, 50, (4, 6))
    low = token_nll(logits.bfloat16(), targets)
    assert low.dtype == torch.float32
    assert low.item() == pytest.approx(reference_nll(logits.bfloat16().float(), targets), 1e-5)


def test_warmup_then_cosine_to_the_floor():
    w, total, floor = 4, 24, 0.1
    f = [lr_factor(s, w, total, floor) for s in range(total)]
    assert f[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])  # step 0 already learns
    assert f[4] == pytest.approx(1.0)  # the cosine starts at the peak
    assert f[-1] == pytest.approx(floor)  # and ends at the floor on the last step
    mid = 4 + (total - 1 - 4) / 2  # 13.5: halfway between steps 13 and 14
    half = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (13 - 4) / 19))
    assert f[13] == pytest.approx(half) and f[13] > (1 + floor) / 2 > f[14]
    assert mid == 13.5
    assert all(a >= b for a, b in zip(f[4:], f[5:], strict=False))  # never rises after warm-up
    assert lr_factor(0, 0, 10, 0.0) == 1.0  # no warm-up: the peak at once
    assert lr_factor(50, 0, 10, 0.2) == pytest.approx(0.2)  # past the end: stays at the floor
    assert lr_factor(0, 0, 1, 0.2) == 1.0  # a one-step run trains at the peak
    # one step of cosine after the warm-up: the peak, then the floor
    assert [lr_factor(s, 2, 4, 0.1) for s in range(4)] == [0.5, 1.0, 1.0, pytest.approx(0.1)]
