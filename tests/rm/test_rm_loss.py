"""The Bradley-Terry loss and pair accuracy, against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from r1lab.rm.loss import pair_accuracy, pair_losses


def test_pair_loss_is_minus_log_sigmoid_of_chosen_minus_rejected():
    chosen = torch.tensor([2.0, -1.0, 0.5])
    rejected = torch.tensor([0.0, 1.0, 0.5])
    expected = [math.log1p(math.exp(-2.0)), math.log1p(math.exp(2.0)), math.log(2.0)]
    assert pair_losses(chosen, rejected).tolist() == pytest.approx(expected, rel=1e-6)
    # Swapping the sides is a different loss: the order of the arguments is the preference.
    assert pair_losses(rejected, chosen)[0].item() == pytest.approx(math.log1p(math.exp(2.0)))


def test_loss_depends_on_the_margin_only_unless_centred():
    c, r = torch.tensor([3.0]), torch.tensor([1.0])
    assert pair_losses(c + 10, r + 10).item() == pytest.approx(pair_losses(c, r).item())
    centred = pair_losses(c, r, center_coef=0.01).item()
    assert centred == pytest.approx(math.log1p(math.exp(-2.0)) + 0.01 * 16.0, rel=1e-6)


def test_the_gradient_raises_chosen_and_lowers_rejected():
    c = torch.tensor([0.3], requires_grad=True)
    r = torch.tensor([0.1], requires_grad=True)
    pair_losses(c, r).sum().backward()
    assert c.grad.item() < 0 < r.grad.item()
    assert c.grad.item() == pytest.approx(-(1 - torch.sigmoid(torch.tensor(0.2)).item()))


def test_a_tie_is_not_counted_right():
    c = torch.tensor([1.0, 0.0, 2.0])
    r = torch.tensor([0.0, 0.0, 3.0])
    assert pair_accuracy(c, r).tolist() == [1.0, 0.0, 0.0]
