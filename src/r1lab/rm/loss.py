"""The Bradley-Terry objective of a reward model: small pure functions (STYLE.md 3).

P(chosen preferred) = sigmoid(r_chosen - r_rejected), so the loss of a pair is
-log sigmoid(r_chosen - r_rejected). A step's loss is the mean over the step's pairs; each
micro-batch sums its pairs' losses and divides by the step's pair count (every rank's), so
micro-batches and ranks add up to exactly the one-pass gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pair_losses(
    chosen: torch.Tensor, rejected: torch.Tensor, center_coef: float = 0.0
) -> torch.Tensor:
    """Each pair's loss: -log sigmoid(r_c - r_r), plus center_coef x (r_c + r_r)^2 (which
    pins the rewards' free offset near 0). chosen, rejected: [P] -> [P]."""
    loss = -F.logsigmoid(chosen - rejected)
    if center_coef:
        loss = loss + center_coef * (chosen + rejected) ** 2
    return loss


def pair_accuracy(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """1 where the chosen response scores strictly higher, else 0 (a tie is not a preference)."""
    return (chosen > rejected).float()
