"""The GRPO-family math: advantages, the clipped surrogate, k3 KL, entropy and loss aggregation.

Every variant a user picks by name (an advantage estimator, a loss aggregation) is a small pure
function in a registry, and all functions of one registry share one signature, so the trainer
calls `compute_advantages(name, ...)` / `aggregate(..., mode, ...)` and never branches on a name.
`grpo_loss` composes the pieces for one micro-batch.

Shapes: P prompts, G completions per prompt (a group), b sequences in a micro-batch, L tokens.

Conventions, decided once here:
- std is the *population* std (divide by G, `correction=0`), used everywhere a std appears. A
  group is the whole population being standardised, so the advantages of a group have unit
  variance and a group of one is well defined. TRL and verl use the sample std (divide by G - 1);
  their GRPO advantages are ours times sqrt((G - 1) / G), e.g. 0.968 at G = 16.
- A group whose rewards are all equal has advantage exactly 0 (no NaN, no 1e-9 residue from the
  float mean), whatever the estimator and scale: it carries no signal.
- Losses are grad-accumulation exact: a micro-batch's loss is its share of the full-batch loss,
  normalised by totals over the whole optimisation batch, so summing micro-batch losses (and
  gradients) gives the full-batch value. `grpo_loss` stats follow the same rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

# exp() of a log-ratio beyond this overflows float32 soon after (exp(89) = inf); verl clamps at
# the same value. Tokens this far off-policy get zero gradient through the clamp instead of inf/NaN.
LOG_RATIO_CLAMP = 20.0

SCALES = ("group", "batch", "none")


# ---------------------------------------------------------------------------------------------
# Advantage estimators: (rewards [P, G], *, scale, eps) -> advantages [P, G]


class AdvantageFn(Protocol):
    def __call__(
        self, rewards: Tensor, *, scale: str, eps: float, batch: Tensor | None = None
    ) -> Tensor: ...


ADVANTAGE_ESTIMATORS: dict[str, AdvantageFn] = {}
DEFAULT_SCALE: dict[str, str] = {}


def register_advantage(name: str, *, default_scale: str) -> Callable[[AdvantageFn], AdvantageFn]:
    """Register an advantage estimator under `name`, with the scale used when none is given."""
    if default_scale not in SCALES:
        raise ValueError(f"default_scale must be one of {SCALES}, got {default_scale!r}")

    def deco(fn: AdvantageFn) -> AdvantageFn:
        ADVANTAGE_ESTIMATORS[name] = fn
        DEFAULT_SCALE[name] = default_scale
        return fn

    return deco


def _scale_and_zero_flat(
    rewards: Tensor, centred: Tensor, scale: str, eps: float, batch: Tensor | None = None
) -> Tensor:
    """Divide centred rewards by the chosen std of the *rewards*, then zero flat groups.

    The std is that of the raw rewards (not of `centred`), so `scale` means the same thing for
    every estimator. "batch" is the std over the whole batch's rewards: `batch` (every rank's
    rewards, in data-parallel training) when given, else this call's P x G.
    """
    if scale == "group":
        centred = centred / (rewards.std(dim=-1, keepdim=True, correction=0) + eps)  # [P, G]
    elif scale == "batch":
        whole = rewards if batch is None else batch.to(rewards)
        centred = centred / (whole.std(correction=0) + eps)  # [P, G]
    elif scale != "none":
        raise ValueError(f"unknown advantage scale {scale!r}; valid: {', '.join(SCALES)}")
    flat = (rewards == rewards[:, :1]).all(dim=-1, keepdim=True)  # [P, 1]
    return centred.masked_fill(flat, 0.0)


def _check_rewards(rewards: Tensor) -> Tensor:
    if rewards.dim() != 2:
        raise ValueError(
            f"rewards must be [P, G] (prompts x group), got shape {tuple(rewards.shape)}"
        )
    return rewards if rewards.is_floating_point() else rewards.float()


@register_advantage("grpo", default_scale="group")
@register_advantage("dr_grpo", default_scale="none")
def group_mean_advantage(
    rewards: Tensor, *, scale: str, eps: float, batch: Tensor | None = None
) -> Tensor:
    """r_i - mean(r) over the group. GRPO divides by the group std; Dr. GRPO does not."""
    rewards = _check_rewards(rewards)  # [P, G]
    centred = rewards - rewards.mean(dim=-1, keepdim=True)  # [P, G]
    return _scale_and_zero_flat(rewards, centred, scale, eps, batch)


@register_advantage("rloo", default_scale="none")
def rloo_advantage(
    rewards: Tensor, *, scale: str, eps: float, batch: Tensor | None = None
) -> Tensor:
    """r_i - mean_{j != i} r_j: the leave-one-out baseline, independent of the sample it scores."""
    rewards = _check_rewards(rewards)  # [P, G]
    g = rewards.shape[-1]
    if g < 2:
        raise ValueError(f"rloo needs at least 2 completions per group, got {g}")
    others_mean = (rewards.sum(dim=-1, keepdim=True) - rewards) / (g - 1)  # [P, G]
    return _scale_and_zero_flat(rewards, rewards - others_mean, scale, eps, batch)


def compute_advantages(
    name: str,
    rewards: Tensor,
    scale: str | None = None,
    eps: float = 1e-6,
    batch: Tensor | None = None,
) -> Tensor:
    """Advantages [P, G] for rewards [P, G] with the named estimator; scale None = its default.

    `batch`: all the rewards of the optimisation batch, whose std the "batch" scale divides by
    (a data-parallel rank passes every rank's; default: `rewards`)."""
    if name not in ADVANTAGE_ESTIMATORS:
        raise ValueError(
            f"unknown advantage estimator {name!r}; valid: {', '.join(ADVANTAGE_ESTIMATORS)}"
        )
    return ADVANTAGE_ESTIMATORS[name](
        rewards, scale=DEFAULT_SCALE[name] if scale is None else scale, eps=eps, batch=batch
    )


# ---------------------------------------------------------------------------------------------
# Per-token terms


def clipped_surrogate(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    *,
    eps_low: float,
    eps_high: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate per token, with DAPO's separate lower and upper clip ranges.

    logp, old_logp: [b, L] log-probs of the sampled tokens under the current / sampling policy.
    advantages: broadcastable to [b, L] ([b, 1] for one advantage per sequence).
    Returns loss_tok [b, L] = -min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A) and
    per-token tensors (no grad): `ratio`, and `clip_low` / `clip_high` (bool), the tokens where
    the clip binds and so has cut the gradient: A < 0 and ratio < 1 - eps_low, resp. A > 0 and
    ratio > 1 + eps_high.
    """
    log_ratio = (logp - old_logp).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)  # [b, L]
    ratio = torch.exp(log_ratio)  # [b, L]
    clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high)  # [b, L]
    loss_tok = -torch.minimum(ratio * advantages, clipped * advantages)  # [b, L]
    with torch.no_grad():
        clip_low = (advantages < 0) & (ratio < 1.0 - eps_low)  # [b, L]
        clip_high = (advantages > 0) & (ratio > 1.0 + eps_high)  # [b, L]
    return loss_tok, {"ratio": ratio.detach(), "clip_low": clip_low, "clip_high": clip_high}


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k3 estimate of KL(pi || pi_ref) per token: exp(d) - d - 1 with d = ref_logp - logp.

    Unbiased for the KL under samples from pi, >= 0, and exactly 0 where logp == ref_logp.
    Written expm1(d) - d, which is >= 0 in floating point too (exp(d) - d - 1 can round below 0
    for tiny d). d is clamped to +-LOG_RATIO_CLAMP so a token the policy has all but ruled out
    cannot make the loss inf; its KL gradient is then 0, not NaN.
    """
    d = (ref_logp - logp).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)  # [b, L]
    return torch.expm1(d) - d  # [b, L]


def entropy_from_logits(logits: Tensor, *, chunk_rows: int = 1024) -> Tensor:
    """Entropy [...] of the softmax over the last dim of logits [..., V], in float32.

    H = logsumexp(z) - sum(softmax(z) * z), computed `chunk_rows` positions at a time so that the
    float32 upcast and the softmax never hold more than chunk_rows x V at once (under no_grad;
    with grad, autograd keeps each chunk's softmax for backward anyway). Logits must be finite.
    """
    vocab = logits.shape[-1]
    rows = logits.reshape(-1, vocab)  # [N, V]
    parts = []
    for z in rows.split(chunk_rows):
        z = z.float()  # [n, V]
        p = torch.softmax(z, dim=-1)  # [n, V]
        parts.append(torch.logsumexp(z, dim=-1) - (p * z).sum(dim=-1))  # [n]
    return torch.cat(parts).reshape(logits.shape[:-1])


# ---------------------------------------------------------------------------------------------
# Loss aggregation: (loss_tok [b, L], mask [b, L], *, num_seqs, num_tokens, max_len) -> scalar
#
# num_seqs / num_tokens are totals over the whole optimisation batch (every micro-batch, every
# rank), so each micro-batch returns its exact share and the shares sum to the full-batch loss.


class AggregateFn(Protocol):
    def __call__(
        self, loss_tok: Tensor, mask: Tensor, *, num_seqs: int, num_tokens: int, max_len: int
    ) -> Tensor: ...


AGGREGATIONS: dict[str, AggregateFn] = {}


def register_aggregation(name: str) -> Callable[[AggregateFn], AggregateFn]:
    def deco(fn: AggregateFn) -> AggregateFn:
        AGGREGATIONS[name] = fn
        return fn

    return deco


def _masked(loss_tok: Tensor, mask: Tensor) -> Tensor:
    # where, not multiply: padding positions may hold inf/NaN and 0 * inf is NaN.
    return torch.where(mask.bool(), loss_tok, torch.zeros_like(loss_tok))  # [b, L]


@register_aggregation("token-mean")
def token_mean(
    loss_tok: Tensor, mask: Tensor, *, num_seqs: int, num_tokens: int, max_len: int
) -> Tensor:
    """DAPO: every token of the batch weighs the same; sum / total tokens."""
    return _masked(loss_tok, mask).sum() / max(num_tokens, 1)


@register_aggregation("seq-mean-token-mean")
def seq_mean_token_mean(
    loss_tok: Tensor, mask: Tensor, *, num_seqs: int, num_tokens: int, max_len: int
) -> Tensor:
    """Original GRPO: mean over each sequence's tokens, then mean over sequences.

    A sequence with no tokens contributes 0 (and still counts in num_seqs if the caller counted it).
    """
    per_seq = _masked(loss_tok, mask).sum(dim=-1) / mask.sum(dim=-1).clamp_min(1)  # [b]
    return per_seq.sum() / num_seqs


@register_aggregation("seq-mean-token-sum-norm")
def seq_mean_token_sum_norm(
    loss_tok: Tensor, mask: Tensor, *, num_seqs: int, num_tokens: int, max_len: int
) -> Tensor:
    """Dr. GRPO: each sequence's token sum divided by the constant max_len, mean over sequences.

    A constant divisor removes GRPO's length bias (a long wrong answer is penalised per token
    less than a short one under seq-mean-token-mean).
    """
    return _masked(loss_tok, mask).sum() / (max_len * num_seqs)


def aggregate(
    loss_tok: Tensor, mask: Tensor, mode: str, *, num_seqs: int, num_tokens: int, max_len: int
) -> Tensor:
    """Reduce loss_tok [b, L] over mask [b, L] (bool or 0/1) to a scalar with the named mode.

    num_tokens = 0 (nothing to learn from in the whole batch) gives 0, not NaN.
    """
    if mode not in AGGREGATIONS:
        raise ValueError(f"unknown loss aggregation {mode!r}; valid: {', '.join(AGGREGATIONS)}")
    if num_seqs < loss_tok.shape[0]:
        raise ValueError(
            f"num_seqs={num_seqs} is less than this micro-batch's {loss_tok.shape[0]} sequences; "
            "pass the total over the whole optimisation batch"
        )
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    return AGGREGATIONS[mode](
        loss_tok, mask, num_seqs=num_seqs, num_tokens=num_tokens, max_len=max_len
    )


# ---------------------------------------------------------------------------------------------
# The composed loss the trainer calls once per micro-batch


def grpo_loss(
    logp: Tensor,
    old_logp: Tensor | None,
    ref_logp: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    *,
    eps_low: float,
    eps_high: float,
    beta: float,
    agg: str,
    num_seqs: int,
    num_tokens: int,
    max_len: int,
) -> tuple[Tensor, dict[str, float]]:
    """GRPO loss of one micro-batch: aggregated clipped surrogate + beta * aggregated k3 KL.

    logp [b, L] (with grad), old_logp [b, L] or None (on-policy: the sampling policy is the
    current one, ratio 1), ref_logp [b, L] or None, advantages [b], mask [b, L].
    beta == 0 or ref_logp None skips the KL term entirely (no `loss/kl`, `policy/kl` stats).

    Returns (loss, stats). Every stat is this micro-batch's share, like the loss: the token
    stats are sums over its tokens / num_tokens, so summing stats over micro-batches gives the
    full-batch value. `loss/*` use the `agg` mode; `loss/kl` is beta times the aggregated KL, so
    loss/total = loss/policy + loss/kl.
    """
    if advantages.dim() != 1:
        raise ValueError(f"advantages must be [b], one per sequence, got {tuple(advantages.shape)}")
    if old_logp is None:
        old_logp = logp.detach()
    mask = mask.bool()
    loss_tok, tok = clipped_surrogate(
        logp, old_logp, advantages.unsqueeze(-1), eps_low=eps_low, eps_high=eps_high
    )  # [b, L]
    sizes = {"num_seqs": num_seqs, "num_tokens": num_tokens, "max_len": max_len}
    policy_loss = aggregate(loss_tok, mask, agg, **sizes)
    loss = policy_loss

    denom = max(num_tokens, 1)
    stat_dtype = torch.promote_types(logp.dtype, torch.float32)  # never sum stats in bf16

    def token_share(x: Tensor) -> Tensor:
        return _masked(x.to(stat_dtype), mask).sum() / denom

    stats = {
        "loss/policy": policy_loss.detach(),
        "policy/clip_frac_low": token_share(tok["clip_low"]),
        "policy/clip_frac_high": token_share(tok["clip_high"]),
        "policy/clip_frac": token_share(tok["clip_low"] | tok["clip_high"]),
        "policy/ratio_mean": token_share(tok["ratio"]),
    }
    if beta != 0 and ref_logp is not None:
        kl_tok = kl_k3(logp, ref_logp)  # [b, L]
        kl_loss = beta * aggregate(kl_tok, mask, agg, **sizes)
        loss = loss + kl_loss
        stats["loss/kl"] = kl_loss.detach()
        stats["policy/kl"] = token_share(kl_tok.detach())
    stats["loss/total"] = loss.detach()
    # one device sync for all stats, not one .item() each
    values = torch.stack([v.to(stat_dtype) for v in stats.values()]).tolist()
    return loss, dict(zip(stats, values, strict=True))
