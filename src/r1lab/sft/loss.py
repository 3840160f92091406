"""The SFT objective and its learning-rate schedule: small pure functions (STYLE.md 3).

The loss is the token mean over the whole optimisation batch: every micro-batch divides its
summed negative log-likelihood by the completion tokens of the *batch*, not its own, so the
micro-batches' gradients add up to exactly the one-pass gradient whatever the cut (a per
micro-batch mean would weight a token of a short micro-batch more than one of a long one).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE = -100
"""Target of a position with no loss (the prompt, padding, the end of a packed sequence)."""


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed negative log-likelihood of the targets, in float32.

    logits: [..., V]; targets: [...] token ids, IGNORE (-100) where there is no loss."""
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        targets.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )


def sft_loss(logits: torch.Tensor, targets: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """This micro-batch's share of the batch's token-mean loss: its summed NLL over the
    `num_tokens` completion tokens of the whole optimisation batch (>= 1)."""
    return token_nll(logits, targets) / max(num_tokens, 1)


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """The learning rate of optimizer step `step` (0-based) as a share of the peak.

    Linear warm-up over the first `warmup` steps ((step + 1) / warmup, so step 0 already
    learns), then a cosine from 1 at step `warmup` down to `min_ratio` at the last step,
    `total - 1`."""
    if step < warmup:
        return (step + 1) / warmup
    span = total - 1 - warmup
    if span <= 0:
        return 1.0
    progress = min((step - warmup) / span, 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
