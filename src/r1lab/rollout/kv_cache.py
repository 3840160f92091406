"""A KV cache that writes in place into preallocated buffers, for the sampler's decode loop.

Hugging Face's `DynamicCache` grows by `torch.cat` at every step, copying the whole cache of
every layer each time: for 128 rows of a small model on a CPU that copy alone took about a
quarter of the decoding time. The sampler knows the final length up front (longest prompt +
max_new_tokens), so each layer allocates [B, H_kv, capacity, D] once and appends by writing
into it; attention reads a view of the filled part. Batch compaction and prefix expansion copy
only the filled part.

GRPO samples G completions of every prompt, and after the prefill the prompt's keys and values
are the same for all G. `SharedPrefixLayer` keeps them once per prompt instead of once per
sample, and `shared_prefix_attention` (registered with transformers' AttentionInterface) attends
to them once per group: every query of the group's samples against the prompt in one matrix
product, each sample's own tokens separately, the two softmax parts merged by their log-sum-exp.
The prompt is most of what a decode step reads (93 of ~150 positions in the micro-world), and a
product of one group's 8 x 3 query rows runs far faster on a CPU than 8 products of 3 rows.

Built on transformers' cache-layer API (`DynamicLayer`, transformers >= 4.56). Models whose
layers are not all plain full attention (sliding windows, linear attention, KV sharing) and
older transformers get the stock `DynamicCache` instead, which the sampler drives through the
same `batch_repeat_interleave` / `batch_select_indices` calls.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor
from transformers import AttentionInterface, DynamicCache

try:
    from transformers.cache_utils import DynamicLayer
except ImportError:  # transformers < 4.56: no per-layer cache objects
    DynamicLayer = None

SHARED_PREFIX_ATTENTION = "r1lab_shared_prefix"
"""The attention implementation name the sampler switches a model to while it decodes."""


def full_attention_only(model: torch.nn.Module) -> bool:
    """True when every layer is plain full attention, so a cache layer per layer holds all KV."""
    config = getattr(model, "config", None)
    if DynamicLayer is None or config is None:
        return False
    config = config.get_text_config(decoder=True)
    layer_types = getattr(config, "layer_types", None) or ["full_attention"]
    return all(t == "full_attention" for t in layer_types)


def make_cache(model: torch.nn.Module, capacity: int, shared_prefix: bool = False):
    """A fresh cache for one `generate` call whose sequences never exceed `capacity` tokens.

    shared_prefix: layers that keep the prompt once per prompt after `share_prefix` (only for
    models where `full_attention_only` holds).
    """
    if not full_attention_only(model):
        config = getattr(model, "config", None)
        if DynamicLayer is None or config is None:
            return DynamicCache()
        return DynamicCache(config=config.get_text_config(decoder=True))  # sliding / linear layers
    cache = DynamicCache()
    # Layers are created lazily on first update, one per attention layer the model calls.
    layer = SharedPrefixLayer if shared_prefix else PreallocatedLayer
    cache.layer_class_to_replicate = functools.partial(layer, capacity)
    return cache


def share_prefix(cache, n: int, prompt_mask: Tensor) -> None:
    """After the prefill of P prompts: n samples per prompt from here on, the prompts kept once.

    prompt_mask: [P, Lp] 1 on real prompt tokens, 0 on left padding.
    """
    bias = torch.zeros(prompt_mask.shape, dtype=torch.float32, device=prompt_mask.device)
    bias = bias.masked_fill(prompt_mask == 0, float("-inf"))[:, None, None, :]  # [P, 1, 1, Lp]
    for layer in cache.layers:
        layer.share(n, bias)


if DynamicLayer is not None:

    class PreallocatedLayer(DynamicLayer):
        """One layer's keys and values in [B, H_kv, capacity, D] buffers, filled from the left.

        `keys` / `values` are views of the filled part, so everything that reads a
        `DynamicLayer` (mask sizes, sequence length) keeps working.
        """

        def __init__(self, capacity: int) -> None:
            super().__init__()
            self.capacity = capacity
            self.length = 0
            self.is_initialized = False  # transformers 4.56's layers have no such flag yet

        def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
            self.dtype, self.device = key_states.dtype, key_states.device
            b, h, _, d = key_states.shape
            self._k = key_states.new_empty((b, h, self.capacity, d))  # [B, H_kv, cap, D]
            self._v = value_states.new_empty((b, h, self.capacity, value_states.shape[-1]))
            self.length = 0
            self._refresh_views()
            self.is_initialized = True

        def _refresh_views(self) -> None:
            self.keys = self._k[:, :, : self.length]  # [B, H_kv, T, D] view, no copy
            self.values = self._v[:, :, : self.length]

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
        ) -> tuple[torch.Tensor, torch.Tensor]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            new = key_states.shape[-2]
            if self.length + new > self.capacity:
                raise RuntimeError(
                    f"KV cache capacity {self.capacity} exceeded ({self.length} + {new} tokens)"
                )
            self._k[:, :, self.length : self.length + new] = key_states
            self._v[:, :, self.length : self.length + new] = value_states
            self.length += new
            self._refresh_views()
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length if self.is_initialized else 0

        def _rebuild(self, rows: torch.Tensor | None, repeats: int = 1) -> None:
            # Copy only the filled part into new buffers: the empty tail holds no data.
            k, v = self._k[:, :, : self.length], self._v[:, :, : self.length]
            if rows is not None:
                k, v = k[rows], v[rows]
            if repeats > 1:
                k, v = k.repeat_interleave(repeats, dim=0), v.repeat_interleave(repeats, dim=0)
            b, h, _, d = k.shape
            self._k = k.new_empty((b, h, self.capacity, d))
            self._v = v.new_empty((b, h, self.capacity, v.shape[-1]))
            self._k[:, :, : self.length] = k
            self._v[:, :, : self.length] = v
            self._refresh_views()

        def batch_repeat_interleave(self, repeats: int) -> None:
            if self.is_initialized:
                self._rebuild(None, repeats)

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if self.is_initialized:
                self._rebuild(indices)

        def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
            self.batch_select_indices(beam_idx.to(self.device))

        def crop(self, tokens_to_remove: int) -> None:
            if tokens_to_remove > 0:
                raise ValueError("crop takes a negative number of tokens to remove")
            self.length = max(0, self.length + tokens_to_remove)
            if self.is_initialized:
                self._refresh_views()

        def reset(self) -> None:
            self.length = 0
            if self.is_initialized:
                self._refresh_views()


if DynamicLayer is not None:

    class SharedPrefixLayer(PreallocatedLayer):
        """A `PreallocatedLayer` whose prompt part is kept once per prompt once prefilled.

        Prefill fills [P, H_kv, capacity, D] as a `PreallocatedLayer` does. `share(n, bias)`
        then keeps the filled part as the prefix [P, H_kv, Lp, D] and starts buffers
        [P x n, H_kv, capacity - Lp, D] for the samples' own tokens, without copying the prompt
        n times. From then on `update` returns the samples' own keys and values only, so
        decoding must go through `shared_prefix_attention` (the sampler switches to it).
        """

        def __init__(self, capacity: int) -> None:
            super().__init__(capacity)
            self.prefix_k: Tensor | None = None  # [P, H_kv, Lp, D]
            self.prefix_v: Tensor | None = None
            self.prefix_bias: Tensor | None = None  # [P, 1, 1, Lp] 0 or -inf (left padding)
            self.samples: Tensor | None = None  # [B] each batch row's index among the P x n
            self.n = 1

        def share(self, n: int, bias: Tensor) -> None:
            lp = self.length
            self.prefix_k = self._k[:, :, :lp].contiguous()
            self.prefix_v = self._v[:, :, :lp].contiguous()
            self.prefix_bias, self.n = bias, n
            p, h, _, d = self.prefix_k.shape
            self.samples = torch.arange(p * n, device=self.prefix_k.device)
            self.capacity -= lp
            self._k = self._k.new_empty((p * n, h, self.capacity, d))
            self._v = self._v.new_empty((p * n, h, self.capacity, self._v.shape[-1]))
            self.length = 0
            self._refresh_views()

        def get_seq_length(self) -> int:
            prefix = 0 if self.prefix_k is None else self.prefix_k.shape[-2]
            return prefix + super().get_seq_length()

        def batch_repeat_interleave(self, repeats: int) -> None:
            raise RuntimeError("SharedPrefixLayer repeats rows with share(n, bias), not this")

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            super().batch_select_indices(indices)
            if self.samples is not None:
                self.samples = self.samples[indices]

    def shared_prefix_attention(
        module: torch.nn.Module,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        attention_mask: Tensor | None,
        scaling: float | None = None,
        dropout: float = 0.0,
        shared_prefix=None,
        **kwargs,
    ) -> tuple[Tensor, None]:
        """One decode step's attention over a cache of `SharedPrefixLayer`s.

        query [B, H, 1, D]; key, value [B, H_kv, T, D]: each sample's own tokens (this step's
        included). The prompt's part is computed per group and merged with the sample's own part
        by log-sum-exp, which equals softmax attention over prompt + own tokens (the test checks
        it against SDPA). Returns [B, 1, H, D] as transformers' attention functions do.
        """
        if shared_prefix is None:
            raise RuntimeError(
                f"{SHARED_PREFIX_ATTENTION} attention needs the cache as the `shared_prefix` "
                "forward argument; this model does not pass it to its attention layers "
                "(build the Sampler with shared_prefix=False)"
            )
        layer = shared_prefix.layers[module.layer_idx]
        b, h, q_len, d = query.shape
        if q_len != 1:
            raise ValueError(f"shared-prefix attention decodes one token per step, got {q_len}")
        hkv = key.shape[1]
        r = h // hkv  # query heads per KV head: head i reads KV head i // r
        scale = d**-0.5 if scaling is None else scaling
        q = query.reshape(b, hkv, r, d)  # [B, H_kv, r, D]
        p, n = layer.prefix_k.shape[0], layer.n
        if 2 * b > p * n:
            # Most samples still running: each group's samples (dropped ones as zero rows) as one
            # [n x r, D] block of queries per KV head against its prompt.
            if b == p * n:
                q_all = q  # no row dropped yet: samples are 0..P*n-1 in order
            else:
                q_all = q.new_zeros((p * n, hkv, r, d))
                q_all[layer.samples] = q
            q_grp = q_all.view(p, n, hkv, r, d).transpose(1, 2).reshape(p, hkv, n * r, d)
            s_pre = torch.matmul(q_grp, layer.prefix_k.transpose(-1, -2)).float() * scale
            parts = _softmax_parts(s_pre + layer.prefix_bias, layer.prefix_v)  # [P, H_kv, n r, .]

            def per_sample(x: Tensor) -> Tensor:  # [P, H_kv, n r, k] -> [B, H_kv, r, k]
                x = x.view(p, hkv, n, r, -1).transpose(1, 2).reshape(p * n, hkv, r, -1)
                return x if b == p * n else x[layer.samples]

            m_pre, z_pre, o_pre = (per_sample(x) for x in parts)
        else:
            # The tail of decoding: a product over every group would be mostly dropped rows, so
            # each remaining sample reads its own prompt's keys.
            group = layer.samples // n  # [B] prompt of each row
            k_pre = layer.prefix_k[group]  # [B, H_kv, Lp, D]
            s_pre = torch.matmul(q, k_pre.transpose(-1, -2)).float() * scale  # [B, H_kv, r, Lp]
            m_pre, z_pre, o_pre = _softmax_parts(
                s_pre + layer.prefix_bias[group], layer.prefix_v[group]
            )
        # The sample's own tokens: all real (a finished row's are never read back).
        s_own = torch.matmul(q, key.transpose(-1, -2)).float() * scale  # [B, H_kv, r, T]
        m_own, z_own, o_own = _softmax_parts(s_own, value)
        m = torch.maximum(m_pre, m_own)
        w_pre, w_own = torch.exp(m_pre - m), torch.exp(m_own - m)
        out = (o_pre * w_pre + o_own * w_own) / (z_pre * w_pre + z_own * w_own)  # [B, H_kv, r, D]
        return out.to(query.dtype).reshape(b, h, 1, d).transpose(1, 2), None

    def _softmax_parts(scores: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Unnormalised softmax attention of fp32 scores [..., q, k] over value [..., k, D]:
        (row max [..., q, 1], sum of exp [..., q, 1], exp-weighted values [..., q, D]). Two
        parts over disjoint keys merge exactly: rescale each by exp(its max - joint max)."""
        m = scores.amax(-1, keepdim=True)
        e = torch.exp(scores - m)
        return m, e.sum(-1, keepdim=True), torch.matmul(e.to(value.dtype), value).float()

    AttentionInterface.register(SHARED_PREFIX_ATTENTION, shared_prefix_attention)
