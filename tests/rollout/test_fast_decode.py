"""The plain-ops decode step: the same samples and log-probs as the model's own forward, on
Qwen2 and Llama (biases on every projection), left-padded groups, rows finishing at different
steps; chosen by default on the CPU, and refused for what it does not implement."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

from r1lab.rollout import Sampler, SamplingParams, collate, completion_logprobs
from r1lab.rollout import engine as engine_module
from r1lab.rollout.fast_decode import PlainStep, plain_step_unsupported

from ._helpers import PROMPTS, flat

EOS = list(range(40, 60))  # many EOS ids: rows finish at different steps, compaction runs


def _random(cls, config_cls, vocab: int, **kw):
    config = config_cls(
        vocab_size=vocab,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=256,
        initializer_range=0.2,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        **kw,
    )
    config._attn_implementation = "sdpa"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = cls(config).eval()
        with torch.no_grad():  # biases are zero at init: make them count
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.normal_(0, 0.2)
    return model


def _llama(vocab: int):
    return _random(LlamaForCausalLM, LlamaConfig, vocab, attention_bias=True, mlp_bias=True)


def _spy_plain_step(monkeypatch) -> list[int]:
    """Count the plain step's calls (batch size of each) made by Samplers built afterwards."""
    sizes: list[int] = []

    class Counting(PlainStep):
        def __call__(self, ids, *args):
            sizes.append(ids.shape[0])
            return super().__call__(ids, *args)

    monkeypatch.setattr(engine_module, "PlainStep", Counting)
    return sizes


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
@pytest.mark.parametrize("shared", [False, True])
def test_plain_step_samples_what_the_forward_samples(arch, shared, tokenizer, model, monkeypatch):
    net = model if arch == "qwen2" else _llama(len(tokenizer))
    assert plain_step_unsupported(net) is None
    params = SamplingParams(n=3, max_new_tokens=24, temperature=0.8, top_p=0.95)
    calls = _spy_plain_step(monkeypatch)
    fast = flat(
        Sampler(net, tokenizer, EOS, shared_prefix=shared, plain_step=True).generate(
            PROMPTS, params, seed=5
        )
    )
    assert len(calls) > 1 and min(calls) < max(calls)  # it decoded, and rows were dropped
    slow = flat(
        Sampler(net, tokenizer, EOS, shared_prefix=shared, plain_step=False).generate(
            PROMPTS, params, seed=5
        )
    )
    assert len({len(c.token_ids) for c in fast}) > 1  # rows finished at different steps
    assert [(c.token_ids, c.finish_reason) for c in fast] == [
        (c.token_ids, c.finish_reason) for c in slow
    ]
    for a, b in zip(fast, slow, strict=True):
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)) < 1e-5
    # And against the model's full forward over prompt + completion (padding, positions, GQA).
    batch = collate(fast, 0)
    with torch.no_grad():
        full = completion_logprobs(net, batch, temperature=0.8)
    assert (full - batch.old_logprobs).abs().max().item() < 1e-4


def test_bfloat16_model_decodes_in_bfloat16(tokenizer):
    net = _llama(len(tokenizer)).to(torch.bfloat16)
    params = SamplingParams(n=2, max_new_tokens=12, temperature=1.0)
    groups = Sampler(net, tokenizer, plain_step=True).generate(PROMPTS, params, seed=1)
    batch = collate(flat(groups), 0)
    with torch.no_grad():
        full = completion_logprobs(net, batch, temperature=1.0)
    mask = batch.completion_mask.bool()
    # bf16 keeps ~3 significant digits; a wrong rotation or mask is off by whole nats.
    assert (full - batch.old_logprobs).abs()[mask].mean().item() < 0.05


def test_cpu_default_is_the_plain_step_over_an_unshared_cache(model, tokenizer, monkeypatch):
    calls = _spy_plain_step(monkeypatch)
    shared_flags: list[bool] = []
    make_cache = engine_module.make_cache

    def spy(model, capacity, shared_prefix=False):
        shared_flags.append(shared_prefix)
        return make_cache(model, capacity, shared_prefix=shared_prefix)

    monkeypatch.setattr(engine_module, "make_cache", spy)
    params = SamplingParams(n=3, max_new_tokens=5, ignore_eos=True)
    Sampler(model, tokenizer).generate(PROMPTS, params, seed=0)
    assert calls == [len(PROMPTS) * 3] * 4  # every decode step after the first token
    assert shared_flags == [False]  # the plain step's attention beat the shared prefix
    Sampler(model, tokenizer, plain_step=False).generate(PROMPTS, params, seed=0)
    assert len(calls) == 4  # never used when turned off
    assert shared_flags == [False, True]  # the model's forward keeps the shared prefix


def test_what_the_plain_step_does_not_implement_is_refused(tokenizer, model, make_model):
    vocab = len(tokenizer)
    qwen3 = _random(Qwen3ForCausalLM, Qwen3Config, vocab, head_dim=16)  # q/k norms
    assert "qwen3" in plain_step_unsupported(qwen3)
    assert "not a causal LM" in plain_step_unsupported(model.model)  # the body without its head
    sliding = make_model(vocab)
    sliding.config.layer_types = ["sliding_attention", "full_attention"]
    assert "full attention" in plain_step_unsupported(sliding)
    handle = model.model.layers[0].register_forward_hook(lambda *_: None)
    try:
        assert "hooks" in plain_step_unsupported(model)
        # None (auto) falls back to the forward; True says why it cannot.
        out = Sampler(model, tokenizer).generate(PROMPTS, SamplingParams(max_new_tokens=3))
        assert len(out) == len(PROMPTS)
        with pytest.raises(ValueError, match="forward hooks"):
            Sampler(model, tokenizer, plain_step=True).generate(PROMPTS, SamplingParams())
    finally:
        handle.remove()
    adapted = make_model(vocab)

    class Adapter(torch.nn.Linear):  # what LoRA and quantisation wrappers look like
        pass

    old = adapted.model.layers[1].self_attn.v_proj
    adapted.model.layers[1].self_attn.v_proj = Adapter(old.in_features, old.out_features)
    assert "v_proj is a Adapter" in plain_step_unsupported(adapted)
    eager = make_model(vocab, attn="eager")
    assert plain_step_unsupported(eager) is None
    eager.config._attn_implementation = "flex_attention"
    assert "flex_attention" in plain_step_unsupported(eager)
