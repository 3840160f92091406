"""One decode step of a Llama-family model in plain torch ops, for the sampler's decode loop.

A GRPO rollout decodes until its longest completion ends, and once few rows are left a step
costs the model's Python, not its arithmetic: the Hugging Face forward builds masks, output
objects, keyword dictionaries and hooks at every call. For the micro-world's model on a CPU that
was half a decode step (bench/decode_overhead.py: 4.66 against 2.37 ms a token at one row).

`PlainStep` computes the same function as the model's forward for one new token per row, with
the model's own weights, rotary embedding module and cache layers, and the operations in the
same order as Hugging Face's Qwen2 / Llama code, so on the shared-prefix route the logits are
the same bits (the tests compare them). Only what is exactly that architecture is taken:
`plain_step_unsupported` names why a model is not (another architecture, a sliding window, a
projection that is not a plain `nn.Linear`, forward hooks such as FSDP's or accelerate's), and
the sampler then keeps the model's own forward. The prefill always runs through the model.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from r1lab.rollout import kv_cache

# Architectures whose decoder layer is exactly: RMSNorm, q/k/v projections (biases optional),
# rotary embedding on q and k, attention, o projection, residual, RMSNorm, gated MLP, residual;
# then a final RMSNorm and the LM head. Others (q/k norms, soft-capping, scaled embeddings,
# sliding windows) would need their own step.
_ARCHITECTURES = ("qwen2", "llama")
_ATTENTION = ("sdpa", "eager")  # the same math as the step's SDPA call (no dropout at eval)


def plain_step_unsupported(model: torch.nn.Module) -> str | None:
    """Why `PlainStep` cannot stand in for this model's forward, or None when it can."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in _ARCHITECTURES:
        return f"architecture {model_type!r} is not one of {_ARCHITECTURES}"
    if not kv_cache.full_attention_only(model) or getattr(config, "use_sliding_window", False):
        return "not every layer is full attention"
    if getattr(config, "_attn_implementation", None) not in _ATTENTION:
        return f"attention implementation {config._attn_implementation!r}"
    if getattr(config, "pretraining_tp", 1) != 1:
        return "pretraining_tp > 1 splits the projections"
    base = getattr(model, "model", None)
    parts = ("layers", "rotary_emb", "embed_tokens", "norm")
    if base is None or not all(hasattr(base, p) for p in parts) or not hasattr(model, "lm_head"):
        return "not a causal LM of model.model.{layers, rotary_emb, embed_tokens, norm} + lm_head"
    for name, module in model.named_modules():
        if module._forward_hooks or module._forward_pre_hooks:
            return f"{name or 'the model'} has forward hooks (sharding, offloading, adapters)"
        projection = name.endswith("_proj") or name == "lm_head"
        if projection and type(module) is not torch.nn.Linear:
            return f"{name} is a {type(module).__name__}, not nn.Linear"
    for layer in base.layers:
        mlp, norms = layer.mlp, (layer.input_layernorm, layer.post_attention_layernorm)
        if not hasattr(mlp, "gate_proj") or not all(_is_rms_norm(n) for n in norms):
            return "a layer is not RMSNorm + gated MLP"
    if not _is_rms_norm(base.norm):
        return "the final norm is not RMSNorm"
    return None


def _is_rms_norm(module: torch.nn.Module) -> bool:
    return type(module).__name__.endswith("RMSNorm") and hasattr(module, "variance_epsilon")


class PlainStep:
    """`step(ids, positions, cache, key_bias, shared)` -> next-token logits, as the model's forward.

    Build one per `generate` call: it holds the model's parameter tensors (which an optimizer
    updates in place) and drives the cache layers the prefill created.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        base = model.model
        self.embed = base.embed_tokens.weight
        self.rotary = base.rotary_emb
        self.final_norm = _norm(base.norm)
        self.head = (model.lm_head.weight, model.lm_head.bias)
        # Parameters fetched once: an nn.Module attribute lookup costs about as much as a small
        # operator, and a step would otherwise make ~35 of them per layer.
        self.layers = [
            _Layer(
                attn=layer.self_attn,
                head_dim=layer.self_attn.head_dim,
                scaling=layer.self_attn.scaling,
                norm1=_norm(layer.input_layernorm),
                norm2=_norm(layer.post_attention_layernorm),
                q=_linear(layer.self_attn.q_proj),
                k=_linear(layer.self_attn.k_proj),
                v=_linear(layer.self_attn.v_proj),
                o=_linear(layer.self_attn.o_proj),
                gate=_linear(layer.mlp.gate_proj),
                up=_linear(layer.mlp.up_proj),
                down=_linear(layer.mlp.down_proj),
                act=layer.mlp.act_fn,
            )
            for layer in base.layers
        ]

    def __call__(
        self, ids: Tensor, positions: Tensor, cache, key_bias: Tensor | None, shared: bool
    ) -> Tensor:
        """Logits [B, V] after one more token per row.

        ids, positions: [B]. cache: the prefill's cache (its layers take this step's keys and
        values). key_bias: [B, 1, 1, T] fp32, 0 on the cached keys a row attends to (this
        step's included) and -inf on its prompt padding, or None when there is no padding;
        unused when `shared` (the shared-prefix layers keep the prompt's padding themselves).
        """
        b = ids.shape[0]
        x = F.embedding(ids, self.embed)[:, None]  # [B, 1, hidden]
        cos, sin = self.rotary(x, positions[:, None])  # [B, 1, D]
        half = cos.shape[-1] // 2
        cos = cos[:, None]  # [B, 1, 1, D]: broadcast over heads
        # rotate_half(x) * sin == roll(x, half) * (sin with its first half negated), exactly:
        # the two halves of sin are equal and a sign flip is exact.
        sin = torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)[:, None]
        for i, layer in enumerate(self.layers):
            d = layer.head_dim
            h = _rms(x, *layer.norm1)
            # [B, 1, heads * D] -> [B, heads, 1, D] is a view: one query position.
            q = F.linear(h, *layer.q).view(b, -1, 1, d)
            k = F.linear(h, *layer.k).view(b, -1, 1, d)
            v = F.linear(h, *layer.v).view(b, -1, 1, d)
            q = q * cos + q.roll(half, -1) * sin
            k = k * cos + k.roll(half, -1) * sin
            k, v = cache.layers[i].update(k, v)
            if shared:
                out, _ = kv_cache.shared_prefix_attention(
                    layer.attn, q, k, v, None, scaling=layer.scaling, shared_prefix=cache
                )  # [B, 1, H, D]
            else:
                out = _attend(q, k, v, key_bias, layer.scaling)  # [B, H_kv, r, D]
            x = x + F.linear(out.reshape(b, 1, -1), *layer.o)
            h = _rms(x, *layer.norm2)
            x = x + F.linear(
                layer.act(F.linear(h, *layer.gate)) * F.linear(h, *layer.up), *layer.down
            )
        return F.linear(_rms(x, *self.final_norm)[:, -1], *self.head)  # [B, V]


class _Layer(NamedTuple):
    attn: torch.nn.Module
    head_dim: int
    scaling: float
    norm1: tuple[Tensor, float]
    norm2: tuple[Tensor, float]
    q: tuple[Tensor, Tensor | None]
    k: tuple[Tensor, Tensor | None]
    v: tuple[Tensor, Tensor | None]
    o: tuple[Tensor, Tensor | None]
    gate: tuple[Tensor, Tensor | None]
    up: tuple[Tensor, Tensor | None]
    down: tuple[Tensor, Tensor | None]
    act: torch.nn.Module


def _linear(module: torch.nn.Linear) -> tuple[Tensor, Tensor | None]:
    return module.weight, module.bias


def _norm(module: torch.nn.Module) -> tuple[Tensor, float]:
    return module.weight, module.variance_epsilon


def _attend(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, scale: float) -> Tensor:
    """Softmax attention of one query per row: q [B, H, 1, D] over k, v [B, H_kv, T, D].

    Query head i reads KV head i // r (r = H / H_kv), so the r query heads of each KV head
    are one [r, D] block against that head's keys: two batched products, no repeated keys
    (chosen over SDPA's CPU kernel, whose blocking is made for many queries, in a scratch
    comparison; bench/rollout.py --plain-step measures it against the shared prefix). Returns
    [B, H_kv, r, D], in the same memory order as [B, 1, H, D]. Scores and softmax are fp32,
    as in Hugging Face's eager attention.
    """
    b, h_kv, _, d = k.shape
    q = q.view(b, h_kv, -1, d)  # [B, H_kv, r, D]
    scores = torch.matmul(q, k.transpose(-1, -2)).float() * scale  # [B, H_kv, r, T]
    if bias is not None:
        scores = scores + bias
    return torch.matmul(scores.softmax(-1).to(v.dtype), v)


def _rms(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    # Hugging Face's Qwen2RMSNorm / LlamaRMSNorm, op for op (the casts are no-ops in fp32).
    if x.dtype == torch.float32:
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))
    h = x.to(torch.float32)
    return weight * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
