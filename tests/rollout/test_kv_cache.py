"""The shared-prefix cache layer and its attention: equal to SDPA over prompt + own tokens."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from r1lab.rollout.kv_cache import SharedPrefixLayer, share_prefix, shared_prefix_attention


def _filled_cache(p, n, h_kv, lp, d, capacity, prompt_lens, own, gen):
    """A one-layer cache after a prefill of P prompts and `own` decoded tokens per sample, and
    the same keys/values laid out in full: [P x n, H_kv, Lp + own, D] with the prompt repeated."""
    layer = SharedPrefixLayer(capacity)
    k_pre, v_pre = torch.randn(2, p, h_kv, lp, d, generator=gen)
    layer.update(k_pre, v_pre)
    mask = torch.zeros(p, lp, dtype=torch.long)
    for i, n_tok in enumerate(prompt_lens):
        mask[i, lp - n_tok :] = 1  # left padding
    share_prefix(SimpleNamespace(layers=[layer]), n, mask)
    k_own, v_own = torch.randn(2, p * n, h_kv, own, d, generator=gen)
    layer.update(k_own, v_own)
    full_k = torch.cat([k_pre.repeat_interleave(n, 0), k_own], dim=2)
    full_v = torch.cat([v_pre.repeat_interleave(n, 0), v_own], dim=2)
    full_mask = torch.cat([mask.repeat_interleave(n, 0), torch.ones(p * n, own)], dim=1).bool()
    return layer, full_k, full_v, full_mask


@pytest.mark.parametrize("drop", ["none", "some", "most"])
def test_shared_prefix_attention_equals_sdpa_over_the_full_cache(drop):
    p, n, h, h_kv, lp, d = 3, 4, 6, 2, 7, 8
    gen = torch.Generator().manual_seed(0)
    layer, full_k, full_v, full_mask = _filled_cache(
        p, n, h_kv, lp, d, capacity=lp + 10, prompt_lens=[7, 3, 1], own=5, gen=gen
    )
    # Finished samples dropped from the batch, as the sampler compacts it: with more than half
    # left the prompt is attended per group, with fewer per sample (both paths checked).
    rows = {
        "none": torch.arange(p * n),
        "some": torch.tensor([0, 1, 2, 3, 5, 6, 9, 11]),
        "most": torch.tensor([2, 5, 9]),
    }[drop]
    if drop != "none":
        layer.batch_select_indices(rows)
    b = len(rows)
    query = torch.randn(b, h, 1, d, generator=gen)
    cache = SimpleNamespace(layers=[layer])
    out, _ = shared_prefix_attention(
        SimpleNamespace(layer_idx=0), query, layer.keys, layer.values, None, shared_prefix=cache
    )
    # Reference: SDPA with the KV heads repeated for their query heads (head i reads i // 3).
    ref = F.scaled_dot_product_attention(
        query,
        full_k[rows].repeat_interleave(h // h_kv, 1),
        full_v[rows].repeat_interleave(h // h_kv, 1),
        attn_mask=full_mask[rows][:, None, None, :],
    )  # [b, H, 1, D]
    assert out.shape == (b, 1, h, d)
    torch.testing.assert_close(out, ref.transpose(1, 2), rtol=1e-5, atol=1e-5)


def test_shared_prefix_layer_keeps_the_prompt_once():
    gen = torch.Generator().manual_seed(1)
    layer, *_ = _filled_cache(2, 8, 2, 6, 4, capacity=20, prompt_lens=[6, 2], own=3, gen=gen)
    assert layer.prefix_k.shape == (2, 2, 6, 4)  # [P, H_kv, Lp, D]: not repeated 8 times
    assert layer.keys.shape == (16, 2, 3, 4)  # each sample's own tokens
    assert layer.get_seq_length() == 9
    with pytest.raises(RuntimeError, match="share"):
        layer.batch_repeat_interleave(2)


def test_attention_without_the_cache_argument_says_what_to_do():
    with pytest.raises(RuntimeError, match="shared_prefix=False"):
        shared_prefix_attention(
            SimpleNamespace(layer_idx=0), torch.zeros(1, 2, 1, 4), torch.zeros(1, 1, 1, 4),
            torch.zeros(1, 1, 1, 4), None,
        )  # fmt: skip
