"""The shared optimizer step of the SFT, reward-model and distillation trainers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from r1lab.run.loop import optimizer_step


def _trainer(max_grad_norm: float = 1.0) -> SimpleNamespace:
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
    return SimpleNamespace(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        cfg=SimpleNamespace(max_grad_norm=max_grad_norm),
        nan_streak=0,
    )


def _backward(t: SimpleNamespace, scale: float = 1.0) -> float:
    loss = t.model(torch.ones(1, 3)).sum() * scale
    loss.backward()
    return loss.item()


def test_a_finite_step_applies_the_clipped_gradient_and_ends_a_streak():
    t = _trainer(max_grad_norm=0.5)
    t.nan_streak = 2
    before = t.model.weight.detach().clone()
    out = optimizer_step(t, _backward(t, scale=10.0))
    # the gradient of 10 * (w . 1 + b) is 10 per weight and for the bias: norm 20, clipped to 0.5
    assert out == {"policy/lr": 0.1, "policy/grad_norm": pytest.approx(20.0)}
    torch.testing.assert_close(t.model.weight, before - 0.1 * 0.5 / 2)
    assert t.nan_streak == 0 and t.model.weight.grad is None
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)  # the schedule stepped


@pytest.mark.parametrize("bad", ["loss", "gradient"])
def test_a_non_finite_loss_or_gradient_applies_nothing_and_counts(bad):
    t = _trainer()
    before = [p.detach().clone() for p in t.model.parameters()]
    for streak in (1, 2):
        _backward(t, scale=float("inf") if bad == "gradient" else 1.0)
        # the loss is reported finite when only the gradient is not
        out = optimizer_step(t, float("nan") if bad == "loss" else 1.0)
        assert out["train/nan_skipped"] == 1.0 and t.nan_streak == streak
        assert all(p.grad is None for p in t.model.parameters())  # nothing carried over
    for a, p in zip(before, t.model.parameters(), strict=True):
        assert torch.equal(a, p)
    assert t.optimizer.param_groups[0]["lr"] == 0.1  # the schedule did not move
