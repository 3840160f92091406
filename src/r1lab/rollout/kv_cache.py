"""A KV cache that writes in place into preallocated buffers, for the sampler's decode loop.

Hugging Face's `DynamicCache` grows by `torch.cat` at every step, copying the whole cache of
every layer each time: for 128 rows of a small model on a CPU that copy alone took about a
quarter of the decoding time. The sampler knows the final length up front (longest prompt +
max_new_tokens), so each layer allocates [B, H_kv, capacity, D] once and appends by writing
into it; attention reads a view of the filled part. Batch compaction and prefix expansion copy
only the filled part.

Built on transformers' cache-layer API (`DynamicLayer`, transformers >= 4.56). Models whose
layers are not all plain full attention (sliding windows, linear attention, KV sharing) and
older transformers get the stock `DynamicCache` instead, which the sampler drives through the
same `batch_repeat_interleave` / `batch_select_indices` calls.
"""

from __future__ import annotations

import functools

import torch
from transformers import DynamicCache

try:
    from transformers.cache_utils import DynamicLayer
except ImportError:  # transformers < 4.56: no per-layer cache objects
    DynamicLayer = None


def make_cache(model: torch.nn.Module, capacity: int):
    """A fresh cache for one `generate` call whose sequences never exceed `capacity` tokens."""
    config = getattr(model, "config", None)
    if DynamicLayer is None or config is None:
        return DynamicCache()
    config = config.get_text_config(decoder=True)
    layer_types = getattr(config, "layer_types", None) or ["full_attention"]
    if any(t != "full_attention" for t in layer_types):
        return DynamicCache(config=config)  # knows sliding / linear layers
    cache = DynamicCache()
    # Layers are created lazily on first update, one per attention layer the model calls.
    cache.layer_class_to_replicate = functools.partial(PreallocatedLayer, capacity)
    return cache


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
