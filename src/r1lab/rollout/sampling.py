"""Sampling math: the log-prob convention, top-k / top-p filtering and one sampling step.

Everything here is a pure function of tensors so the sampler, the trainer and the tests share
exactly one implementation (the trainer imports `token_logprobs`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# Rows of [rows, V] processed at once by `token_logprobs`. With a 152k vocabulary (Qwen2.5) a
# chunk of 64 rows is ~39 MB in fp32: small next to the logits themselves, and it lets a bf16
# [B x G, L, V] tensor be scored without an fp32 copy of the whole thing.
_LOGPROB_CHUNK_ELEMENTS = 1 << 23


def token_logprobs(logits: Tensor, ids: Tensor, temperature: float = 1.0) -> Tensor:
    """Log-probability of `ids` under `softmax(logits / temperature)`.

    This is THE log-prob convention of r1lab: the sampler records it for every sampled token and
    the trainer recomputes it with a full forward pass at the same temperature, so the PPO ratio
    pi/pi_old is exactly 1 before the first update. It is the distribution before top-k / top-p
    truncation (truncation is a sampling device, not part of the policy being trained).

    logits: [..., V] (any float dtype; computed in fp32), ids: [...] -> [...] fp32.
    Differentiable. Memory-lean: gathers the picked logit and subtracts a row-chunked logsumexp
    instead of materialising a full log_softmax, so peak extra memory is one fp32 chunk.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for log-probs, got {temperature}")
    vocab = logits.shape[-1]
    flat_logits = logits.reshape(-1, vocab)  # [M, V]
    flat_ids = ids.reshape(-1, 1)  # [M, 1]
    chunk = max(1, _LOGPROB_CHUNK_ELEMENTS // vocab)
    out = []
    for start in range(0, flat_logits.shape[0], chunk):
        block = flat_logits[start : start + chunk].float()  # [m, V] fp32 copy of one chunk only
        if temperature != 1.0:
            block = block / temperature
        picked = block.gather(-1, flat_ids[start : start + chunk]).squeeze(-1)  # [m]
        out.append(picked - torch.logsumexp(block, dim=-1))
    if not out:  # zero rows: keep shape and autograd connectivity
        return logits.new_zeros(ids.shape, dtype=torch.float32)
    return torch.cat(out).reshape(ids.shape)


@dataclass
class SamplingParams:
    """How to sample completions. Mirrors vLLM's names so a vLLM backend can take it as is."""

    temperature: float = 1.0
    """Softmax temperature; 0 means greedy (argmax) decoding, with log-probs taken at T = 1."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p."""
    top_k: int = 0
    """Keep only the k most likely tokens (0 = no limit). Applied before top_p."""
    max_new_tokens: int = 128
    """Completion length cap; a completion that hits it finishes with reason "length"."""
    stop: tuple[str, ...] = ()
    """Stop strings. The text is cut right after the first one; its tokens are kept (see Completion)."""
    n: int = 1
    """Samples per prompt (GRPO's group size G); they share the prompt's prefill."""
    ignore_eos: bool = False
    """Keep sampling past EOS (benchmarks of fixed length); EOS tokens stay in the output."""

    def __post_init__(self) -> None:
        # A bare string would be iterated character by character: a classic silent bug.
        if isinstance(self.stop, str):
            self.stop = (self.stop,)
        self.stop = tuple(self.stop)
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 disables it), got {self.top_k}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.n < 1:
            raise ValueError(f"n (samples per prompt) must be >= 1, got {self.n}")
        if any(not s for s in self.stop):
            raise ValueError(f"stop strings must be non-empty, got {self.stop!r}")

    @property
    def logprob_temperature(self) -> float:
        """The temperature log-probs are reported at (greedy decoding reports the raw model, T = 1)."""
        return self.temperature if self.temperature > 0 else 1.0


def filter_logits(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Mask (to -inf) the tokens top-k and then top-p would never sample.

    logits: [B, V] already divided by the temperature -> [B, V].
    top-k keeps ties with the k-th value (as Hugging Face does); top-p then works on the
    renormalised top-k distribution and always keeps the most likely token.
    """
    vocab = logits.shape[-1]
    if 0 < top_k < vocab:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # [B, 1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)  # [B, V]
        probs = sorted_logits.softmax(dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # [B, V] mass of strictly more likely tokens
        drop_sorted = mass_before >= top_p  # first token has mass_before 0 < top_p: always kept
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)  # back to vocab order
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(
    logits: Tensor, params: SamplingParams, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """One decoding step: next-token logits [B, V] -> (token ids [B], their log-probs [B]).

    The log-prob follows `token_logprobs` (temperature applied, before top-k / top-p).
    """
    if params.temperature == 0:
        tokens = logits.argmax(dim=-1)  # [B]
    else:
        scaled = logits.float() / params.temperature  # [B, V]
        filtered = filter_logits(scaled, params.top_k, params.top_p)
        probs = filtered.softmax(dim=-1)
        tokens = torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # [B]
    return tokens, token_logprobs(logits, tokens, params.logprob_temperature)
