"""Completions to padded trainer tensors, and the full-forward log-probs that must match them.

Layout (as in TRL): prompts left-padded to Lp, completions right-padded to Lc, concatenated, so
every completion starts at column Lp and `logits[:, Lp - 1 : -1]` predicts it. Position ids are
part of the batch because Hugging Face models do not derive them from the attention mask in
forward (only `generate` does): without them a left-padded row is scored at shifted positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from r1lab.rollout.engine import Completion, logits_to_keep_kwargs
from r1lab.rollout.sampling import token_logprobs


@dataclass
class Batch:
    """N = number of completions (B x G in GRPO), Lp = longest prompt, Lc = longest completion."""

    input_ids: Tensor
    """[N, Lp + Lc] long: left-padded prompt then right-padded completion."""
    attention_mask: Tensor
    """[N, Lp + Lc] long: 1 on real prompt and completion tokens."""
    position_ids: Tensor
    """[N, Lp + Lc] long: 0-based position of each real token (padding gets 0)."""
    completion_ids: Tensor
    """[N, Lc] long: the sampled tokens (= input_ids[:, Lp:])."""
    completion_mask: Tensor
    """[N, Lc] float: 1 on sampled tokens (EOS included), 0 on padding."""
    old_logprobs: Tensor
    """[N, Lc] float: the sampler's log-probs (`token_logprobs` convention), 0 on padding."""
    prompt_index: Tensor
    """[N] long: which prompt each row completes (its GRPO group)."""
    prompt_len: int
    """Lp: completion token j of a row sits at column Lp + j."""

    def to(self, device: torch.device | str) -> Batch:
        moved = {
            f.name: getattr(self, f.name).to(device)
            if isinstance(getattr(self, f.name), Tensor)
            else getattr(self, f.name)
            for f in fields(self)
        }
        return Batch(**moved)


def collate(completions: Sequence[Completion], pad_id: int | None = None) -> Batch:
    """Pad completions (e.g. `[c for group in groups for c in group]`) into a `Batch` on CPU.

    pad_id only fills padding slots, which every mask excludes, so any valid id works: None
    (a tokenizer without a pad token) pads with 0.
    """
    if not completions:
        raise ValueError("collate needs at least one completion")
    pad_id = 0 if pad_id is None else pad_id
    n = len(completions)
    lp = max(len(c.prompt_ids) for c in completions)
    # At least one column so an all-empty batch still has a well-formed [N, Lc] shape.
    lc = max(1, max(len(c.token_ids) for c in completions))
    input_ids = torch.full((n, lp + lc), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((n, lp + lc), dtype=torch.long)
    old_logprobs = torch.zeros((n, lc), dtype=torch.float32)
    for i, c in enumerate(completions):
        p, k = len(c.prompt_ids), len(c.token_ids)
        input_ids[i, lp - p : lp] = torch.tensor(c.prompt_ids, dtype=torch.long)
        attention_mask[i, lp - p : lp + k] = 1
        if k:
            input_ids[i, lp : lp + k] = torch.tensor(c.token_ids, dtype=torch.long)
            old_logprobs[i, :k] = torch.tensor(c.logprobs, dtype=torch.float32)
    # Real tokens count 0, 1, 2, ...; right padding after a completion gets harmless values.
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # [N, Lp + Lc]
    return Batch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        completion_ids=input_ids[:, lp:],
        completion_mask=attention_mask[:, lp:].float(),
        old_logprobs=old_logprobs,
        prompt_index=torch.tensor([c.prompt_index for c in completions], dtype=torch.long),
        prompt_len=lp,
    )


def completion_logits(
    model, batch: Batch, rows: slice = slice(None), group_size: int = 1
) -> Tensor:
    """The logits that predict each completion token of `rows` of the batch: [b, Lc, V].

    Columns that are padding in every one of these rows (the left of short prompts) are dropped
    first, which is safe because position ids are explicit. Only the Lc + 1 last positions go
    through the LM head when the model supports `logits_to_keep`. Differentiable outside
    `torch.no_grad`.

    With `group_size` G > 1 and rows that come in whole groups of G completions of one prompt
    (the GRPO layout), each prompt goes through the model once and its KV cache is shared by its
    G completions, as in the sampler: the prompt's share of the work drops G-fold, and gradients
    reach the prompt positions through the shared cache, so the result and its gradient equal
    the plain forward pass's. Other rows fall back to the plain pass.

    Columns right of the longest completion among these rows are padding in all of them and are
    not computed either (their logits are returned as zeros): the batch is padded to the longest
    completion of the whole step, and with early-stopping completions most micro-batches end
    well before it.
    """
    lc = batch.completion_ids.shape[1]
    attn = batch.attention_mask[rows]  # [b, Lp + Lc]
    first = min(int((attn.sum(0) > 0).int().argmax().item()), batch.prompt_len)
    live = (batch.completion_mask[rows].sum(0) > 0).nonzero()  # columns with a real token
    k = int(live.max().item()) + 1 if live.numel() else 1  # completion columns to compute
    end = batch.prompt_len + k
    if group_size > 1 and _whole_groups(batch.prompt_index[rows], group_size):
        logits = _shared_prefix_logits(model, batch, rows, first, end, group_size)
    else:
        out = model(
            input_ids=batch.input_ids[rows, first:end],
            attention_mask=attn[:, first:end],
            position_ids=batch.position_ids[rows, first:end],
            use_cache=False,
            **logits_to_keep_kwargs(model, k + 1),
        )
        logits = out.logits[:, -(k + 1) : -1]  # [b, k, V]: position t predicts token t + 1
    return torch.nn.functional.pad(logits, (0, 0, 0, lc - k))  # [b, Lc, V]


def _whole_groups(prompt_index: Tensor, g: int) -> bool:
    if prompt_index.numel() % g:
        return False
    groups = prompt_index.view(-1, g)  # [b / G, G]
    return bool((groups == groups[:, :1]).all())


def _shared_prefix_logits(model, batch: Batch, rows: slice, first: int, end: int, g: int) -> Tensor:
    from transformers import DynamicCache

    lp = batch.prompt_len
    ids = batch.input_ids[rows]  # [b, Lp + Lc]
    attn = batch.attention_mask[rows]
    pos = batch.position_ids[rows]
    heads = slice(None, None, g)  # one row per group: its prompt is every member's prompt
    cache = DynamicCache()
    prefix = model(
        input_ids=ids[heads, first:lp],
        attention_mask=attn[heads, first:lp],
        position_ids=pos[heads, first:lp],
        past_key_values=cache,
        use_cache=True,
        **logits_to_keep_kwargs(model, 1),
    )
    cache.batch_repeat_interleave(g)  # [b / G, ...] -> [b, ...]; differentiable
    rest = model(
        input_ids=ids[:, lp:end],
        attention_mask=attn[:, first:end],
        position_ids=pos[:, lp:end],
        past_key_values=cache,
        use_cache=True,
    )
    head = prefix.logits[:, -1:].repeat_interleave(g, dim=0)  # [b, 1, V]: predicts token 0
    return torch.cat([head, rest.logits[:, :-1]], dim=1)  # [b, end - Lp, V]


def completion_logprobs(
    model, batch: Batch, temperature: float = 1.0, rows: slice = slice(None), group_size: int = 1
) -> Tensor:
    """Log-probs of the completion tokens of `rows` from one full forward pass: [b, Lc], 0 on
    padding. Same convention as the sampler (`token_logprobs`), so for the sampling policy it
    reproduces `batch.old_logprobs`. Differentiable when called outside `torch.no_grad`.
    """
    logits = completion_logits(model, batch, rows, group_size)  # [b, Lc, V]
    lp = token_logprobs(logits, batch.completion_ids[rows], temperature)  # [b, Lc]
    # where, not a product: a NaN from a padded position must not leak into the result
    return torch.where(batch.completion_mask[rows].bool(), lp, 0.0)
