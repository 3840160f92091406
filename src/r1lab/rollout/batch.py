"""Completions to padded trainer tensors, and the full-forward log-probs that must match them.

Layout (as in TRL): prompts left-padded to Lp, completions right-padded to Lc, concatenated, so
every completion starts at column Lp and `logits[:, Lp - 1 : -1]` predicts it. Position ids are
part of the batch because Hugging Face models do not derive them from the attention mask in
forward (only `generate` does): without them a left-padded row is scored at shifted positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from r1lab.rollout.engine import Completion, cache_kwargs, logits_to_keep_kwargs
from r1lab.rollout.kv_cache import full_attention_only
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
    prefix_index: Tensor
    """[N] long: the row's prompt among the batch's distinct prompts (`prefix_rows`)."""
    prefix_rows: Tensor
    """[U] long: one row per distinct prompt token sequence, in order of first appearance."""
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
    # Distinct prompts by their tokens, not by prompt_index, which restarts in every sampling
    # call (dynamic sampling collates several); equal tokens give equal KV, so sharing is exact.
    distinct: dict[tuple[int, ...], int] = {}
    prefix_index = [distinct.setdefault(tuple(c.prompt_ids), len(distinct)) for c in completions]
    first_row = {}
    for row, u in enumerate(prefix_index):
        first_row.setdefault(u, row)
    return Batch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        completion_ids=input_ids[:, lp:],
        completion_mask=attention_mask[:, lp:].float(),
        old_logprobs=old_logprobs,
        prompt_index=torch.tensor([c.prompt_index for c in completions], dtype=torch.long),
        prefix_index=torch.tensor(prefix_index, dtype=torch.long),
        prefix_rows=torch.tensor([first_row[u] for u in range(len(distinct))], dtype=torch.long),
        prompt_len=lp,
    )


Rows = slice | Tensor
"""Rows of a batch: a slice, or a [b] long index tensor (any order, e.g. sorted by length)."""


def micro_batches(
    lengths: Tensor, max_rows: int, cut_cost: int, max_tokens: int | None = None
) -> list[Tensor]:
    """Split rows into micro-batches of at most `max_rows` rows that waste the least padding.

    lengths: [N] completion lengths. A micro-batch costs its rows x its longest completion
    (`completion_logits` computes no wider), plus `cut_cost` token columns for being one more
    forward and backward (the fixed per-call cost). Rows are sorted longest first, which is
    optimal for equal-size groups, and cut where a cut saves more padding than it costs: one
    long outlier no longer makes 31 short rows as wide as itself. An exact dynamic program over
    the sorted rows, O(N x max_rows). Returns [b] row-index tensors covering every row once.
    With `max_tokens`, a micro-batch also holds at most that many rows x width positions (a
    row wider than that alone): `r1lab sft` bounds its micro-batches' memory so.
    """
    order = lengths.sort(descending=True, stable=True).indices  # [N] longest first
    widths = [max(int(x), 1) for x in lengths[order].tolist()]  # >= 1 column each
    n = len(widths)
    best = [0.0] * (n + 1)  # best[i]: least cost of rows i.. of the sorted order
    cut = [n] * (n + 1)  # cut[i]: where the micro-batch starting at row i ends
    for i in range(n - 1, -1, -1):
        best[i] = float("inf")
        rows = max_rows if max_tokens is None else min(max_rows, max(max_tokens // widths[i], 1))
        for j in range(i + 1, min(n, i + rows) + 1):
            cost = (j - i) * widths[i] + cut_cost + best[j]  # widths[i]: the chunk's longest
            if cost < best[i]:
                best[i], cut[i] = cost, j
    out, i = [], 0
    while i < n:
        out.append(order[i : cut[i]])
        i = cut[i]
    return out


def default_cut_cost(device_type: str) -> int:
    """The fixed cost of one more micro-batch, in token columns (see `micro_batches`).

    On 2 CPU cores a micro-world micro-batch's forward+backward costs ~9 ms plus ~0.13 ms per
    token column (bench/prefix_update.py --shapes), so ~64; on a GPU per-token work is far
    cheaper than a call, so cut only for large savings (not yet measured there: no GPU has been
    lent)."""
    return 64 if device_type == "cpu" else 4096


# A common prefix (the prompt template) gets a forward pass of its own when that saves at least
# this many prompt tokens: about one extra call's fixed cost on 2 CPU cores (see micro_batches).
MIN_SHARED_TOKENS = 64


class PromptCache:
    """Every distinct prompt of a batch through the model once; rows borrow its KV cache.

        prompts = PromptCache(model, batch)     # one forward over the U distinct prompts
        for rows in micro_batches:              # any rows, in any grouping
            logits = completion_logits(model, batch, rows, prompts)
            loss(logits).backward()             # gradients stop at the borrowed cache ...
        prompts.backward()                      # ... and go through the prompts' pass once

    GRPO's G completions of a prompt share it, and micro-batches can then be cut from rows in
    any order (sorted by length, so each is as narrow as its own longest completion) while each
    prompt is still computed once per pass, not once per micro-batch or per row. The prompts'
    longest common prefix (the R1-Zero template: 82 of ~92 tokens on the micro-world) is
    computed once too, as a single row whose KV the U prompts continue from; position ids are
    explicit, so it has the same positions, and the same KV, in every prompt.

    The rows read the cache through leaf tensors that collect their gradients; `backward()`
    sends the sum through the prompts' graph in one call, which equals backpropagating each
    micro-batch through it (the chain rule is linear in the upstream gradient). Under
    `torch.no_grad` (the reference model) there is no graph and `backward()` is a no-op.

    Only for models whose layers are all plain full attention: `PromptCache.supports(model)`.
    """

    def __init__(self, model, batch: Batch) -> None:
        from transformers import DynamicCache

        lp, heads = batch.prompt_len, batch.prefix_rows
        ids = batch.input_ids[heads, :lp]  # [U, Lp] left-padded
        lengths = batch.attention_mask[heads, :lp].sum(1)  # [U]
        u = ids.shape[0]
        common = _common_prefix(ids, lengths)
        if (u - 1) * common < MIN_SHARED_TOKENS:
            common = 0
        first = ids[:1, lp - int(lengths[0]) :]  # the first prompt, unpadded
        cache = prefix_cache(model, first[:, :common], u) if common else DynamicCache()
        # The rest of every prompt, left-padded to the longest rest: its last `width` columns.
        rest = lengths - common  # [U] >= 1
        width = int(rest.max())
        rest_mask = torch.arange(width, device=ids.device) >= (width - rest)[:, None]  # [U, W]
        self.mask = torch.cat([rest_mask.new_ones((u, common)), rest_mask], dim=1).long()
        out = model(
            input_ids=ids[:, lp - width :],
            attention_mask=self.mask,  # [U, c + W]: the shared part, then each rest
            position_ids=batch.position_ids[heads, lp - width : lp],
            **cache_kwargs(model, cache),
            use_cache=True,
            **logits_to_keep_kwargs(model, 1),
        )
        # [U, V] logits of the last prompt position (they predict completion token 0), then
        # [U, H_kv, c + W, D] keys and values of every layer.
        outputs = [out.logits[:, -1]]
        for layer in cache.layers:
            outputs += [layer.keys, layer.values]
        self._outputs = outputs
        self._leaves = [o.detach().requires_grad_(o.requires_grad) for o in outputs]
        self._index = batch.prefix_index

    @staticmethod
    def supports(model) -> bool:
        """True when every layer is full attention (a plain DynamicCache holds its KV)."""
        return full_attention_only(model)

    def rows(self, rows: Rows) -> tuple[Tensor, Any, Tensor]:
        """For rows of the batch: next-token logits [b, V], a DynamicCache of
        [b, H_kv, c + W, D] per layer, and its attention mask [b, c + W]."""
        from transformers import DynamicCache

        take = self._index[rows]  # [b] distinct-prompt index of each row
        picked = [leaf.index_select(0, take) for leaf in self._leaves]
        kv = list(zip(picked[1::2], picked[2::2], strict=True))
        return picked[0], DynamicCache(kv), self.mask[take]

    def backward(self) -> None:
        """Backpropagate the gradient the rows left on the cache through the prompts' pass."""
        pairs = [
            (out, leaf.grad)
            for out, leaf in zip(self._outputs, self._leaves, strict=True)
            if out.requires_grad and leaf.grad is not None
        ]
        if pairs:
            torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
        self._outputs = []  # the graph is spent; free it


def prefix_cache(model, prefix: Tensor, rows: int) -> Any:
    """A DynamicCache holding the KV of `prefix` [1, c] (positions 0..c-1), computed once and
    repeated for `rows` rows: a copy that autograd follows back to the single pass, so the
    rows' losses reach the prefix's computation."""
    from transformers import DynamicCache

    cache = DynamicCache()
    model(
        input_ids=prefix,
        position_ids=torch.arange(prefix.shape[1], device=prefix.device)[None],
        **cache_kwargs(model, cache),
        use_cache=True,
        **logits_to_keep_kwargs(model, 1),
    )
    cache.batch_repeat_interleave(rows)
    return cache


def _common_prefix(ids: Tensor, lengths: Tensor) -> int:
    """Tokens every left-padded prompt of ids [U, Lp] starts with, leaving each at least one."""
    lp = ids.shape[1]
    prompts = [row[lp - n :] for row, n in zip(ids.tolist(), lengths.tolist(), strict=True)]
    limit = min(len(p) for p in prompts) - 1
    common = 0
    while common < limit and all(p[common] == prompts[0][common] for p in prompts):
        common += 1
    return common


def completion_logits(
    model, batch: Batch, rows: Rows = slice(None), prompts: PromptCache | None = None
) -> Tensor:
    """The logits that predict the completion tokens of `rows` of the batch: [b, k, V], where
    k <= Lc is the longest completion among these rows (column j predicts completion token j).

    With `prompts` (a `PromptCache` of this batch and model) the rows continue from their
    prompts' cached KV and only their completion columns go through the model; without it, one
    plain forward pass over prompt and completion. Both give the same logits and gradients.
    Differentiable outside `torch.no_grad`.

    Columns that are padding in every one of these rows (the left of short prompts) are dropped,
    which is safe because position ids are explicit, and so are the columns right of the rows'
    longest completion: the batch is padded to the longest completion of the whole step, and a
    micro-batch of short completions needs only its own width, in the model and in everything
    computed from the logits (log-softmax, entropy) afterwards. Only the needed positions go
    through the LM head when the model supports `logits_to_keep`.
    """
    lp = batch.prompt_len
    attn = batch.attention_mask[rows]  # [b, Lp + Lc]
    live = (batch.completion_mask[rows].sum(0) > 0).nonzero()  # columns with a real token
    k = int(live.max().item()) + 1 if live.numel() else 1  # completion columns to predict
    # Column t's output predicts token t + 1, so the inputs end one column before `lp + k`:
    # the last completion token's own output would predict past the completion.
    end = lp + k - 1
    if prompts is not None:
        head, cache, prompt_mask = prompts.rows(rows)  # [b, V] predicts token 0; the prompts' KV
        logits = head[:, None]  # [b, 1, V]
        if k > 1:
            rest = model(
                input_ids=batch.input_ids[rows, lp:end],
                attention_mask=torch.cat([prompt_mask, attn[:, lp:end]], dim=1),
                position_ids=batch.position_ids[rows, lp:end],
                **cache_kwargs(model, cache),
                use_cache=True,
            )
            logits = torch.cat([logits, rest.logits], dim=1)  # [b, k, V]
    else:
        first = min(int((attn.sum(0) > 0).int().argmax().item()), lp - 1)
        out = model(
            input_ids=batch.input_ids[rows, first:end],
            attention_mask=attn[:, first:end],
            position_ids=batch.position_ids[rows, first:end],
            use_cache=False,
            **logits_to_keep_kwargs(model, k),
        )
        logits = out.logits[:, -k:]  # [b, k, V]: columns lp - 1 .. end - 1
    return logits


def completion_logprobs(
    model,
    batch: Batch,
    temperature: float = 1.0,
    rows: Rows = slice(None),
    prompts: PromptCache | None = None,
) -> Tensor:
    """Log-probs of the completion tokens of `rows` from one full forward pass: [b, Lc], 0 on
    padding. Same convention as the sampler (`token_logprobs`), so for the sampling policy it
    reproduces `batch.old_logprobs`. Differentiable when called outside `torch.no_grad`.
    """
    logits = completion_logits(model, batch, rows, prompts)  # [b, k, V]
    k = logits.shape[1]
    lp = token_logprobs(logits, batch.completion_ids[rows, :k], temperature)  # [b, k]
    # where, not a product: a NaN from a padded position must not leak into the result
    lp = torch.where(batch.completion_mask[rows, :k].bool(), lp, 0.0)
    return torch.nn.functional.pad(lp, (0, batch.completion_ids.shape[1] - k))  # [b, Lc]
