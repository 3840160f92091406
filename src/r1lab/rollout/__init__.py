"""Rollouts for GRPO: batched sampling of G completions per prompt and their trainer tensors.

    from r1lab.rollout import Sampler, SamplingParams, collate, completion_logprobs
    groups = Sampler(model, tokenizer).generate(prompts, SamplingParams(n=8), seed=step)
    batch = collate([c for g in groups for c in g], pad_id)   # [B x G, Lp + Lc] tensors

Log-prob convention (one source of truth, `token_logprobs`): log softmax(logits / T)[token],
before top-k / top-p truncation, which is what a trainer's full forward pass at temperature T
computes (`completion_logprobs`).
"""

from r1lab.rollout.batch import Batch, collate, completion_logprobs
from r1lab.rollout.engine import (
    Completion,
    FinishReason,
    RolloutBackend,
    Sampler,
    find_stop,
    resolve_eos_ids,
)
from r1lab.rollout.sampling import SamplingParams, filter_logits, sample_next, token_logprobs

__all__ = [
    "Batch",
    "Completion",
    "FinishReason",
    "RolloutBackend",
    "Sampler",
    "SamplingParams",
    "collate",
    "completion_logprobs",
    "filter_logits",
    "find_stop",
    "resolve_eos_ids",
    "sample_next",
    "token_logprobs",
]
