"""The sampler end to end on random Qwen2 models: determinism, finish reasons, HF equivalence,
log-prob agreement with a full forward pass, prefix sharing and batch compaction."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from r1lab.rollout import (
    Sampler,
    SamplingParams,
    collate,
    completion_logprobs,
    find_stop,
    resolve_eos_ids,
)
from r1lab.rollout import engine as engine_module

from ._helpers import PROMPTS, flat


def _forward_batch_sizes(model):
    """Record the batch size of every forward call (a hook, removed by the caller)."""
    sizes: list[int] = []
    handle = model.register_forward_pre_hook(
        lambda _m, _a, kw: sizes.append(kw["input_ids"].shape[0]), with_kwargs=True
    )
    return sizes, handle


def test_same_seed_same_output_different_seed_differs(model, tokenizer):
    sampler = Sampler(model, tokenizer)
    params = SamplingParams(n=3, max_new_tokens=24, top_p=0.95, stop=("\n",))
    a = flat(sampler.generate(PROMPTS, params, seed=11))
    b = flat(sampler.generate(PROMPTS, params, seed=11))
    c = flat(sampler.generate(PROMPTS, params, seed=12))
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    assert [x.logprobs for x in a] == [x.logprobs for x in b]
    assert [(x.text, x.finish_reason) for x in a] == [(x.text, x.finish_reason) for x in b]
    assert [x.token_ids for x in a] != [x.token_ids for x in c]


def test_seed_does_not_touch_global_rng(model, tokenizer):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    Sampler(model, tokenizer).generate(PROMPTS, SamplingParams(max_new_tokens=5), seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_top_k_one_equals_greedy_and_hf_generate(model, tokenizer):
    sampler = Sampler(model, tokenizer, eos_token_ids=[])  # no early stop: compare 20 tokens
    top1 = flat(sampler.generate(PROMPTS, SamplingParams(top_k=1, max_new_tokens=20), seed=0))
    greedy = flat(sampler.generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=20)))
    assert [c.token_ids for c in top1] == [c.token_ids for c in greedy]

    tokenizer.padding_side = "left"
    enc = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        hf = model.generate(
            input_ids=enc["input_ids"],  # not **enc: older tokenizers add token_type_ids
            attention_mask=enc["attention_mask"],
            do_sample=False,
            max_new_tokens=20,
            min_new_tokens=20,
            pad_token_id=tokenizer.pad_token_id,
        )
    hf_new = hf[:, enc["input_ids"].shape[1] :].tolist()
    assert [c.token_ids for c in greedy] == hf_new


def test_finish_reason_length(model, tokenizer):
    out = Sampler(model, tokenizer).generate(
        PROMPTS, SamplingParams(max_new_tokens=7, ignore_eos=True, n=2), seed=0
    )
    for c in flat(out):
        assert c.finish_reason == "length"
        assert len(c.token_ids) == len(c.logprobs) == 7


def test_finish_reason_eos_keeps_eos_token_and_drops_it_from_text(model, tokenizer):
    # A random model rarely samples <eos>; declare as EOS a token greedy decoding emits at
    # step 5, so the completion must stop there with that token last.
    plain = Sampler(model, tokenizer, eos_token_ids=[])
    ref = plain.generate([PROMPTS[1]], SamplingParams(temperature=0, max_new_tokens=20))[0][0]
    eos = ref.token_ids[5]
    first = ref.token_ids.index(eos)
    got = Sampler(model, tokenizer, eos_token_ids=[eos]).generate(
        [PROMPTS[1]], SamplingParams(temperature=0, max_new_tokens=20)
    )[0][0]
    assert got.finish_reason == "eos"
    assert got.token_ids == ref.token_ids[: first + 1]
    assert len(got.logprobs) == first + 1
    assert got.text == tokenizer.decode(ref.token_ids[:first])


def test_finish_reason_stop_string_spanning_tokens(model, tokenizer):
    plain = Sampler(model, tokenizer, eos_token_ids=[])
    ref = plain.generate([PROMPTS[0]], SamplingParams(temperature=0, max_new_tokens=20))[0][0]
    stop = ref.text[4:7]  # three characters = three tokens of the char tokenizer
    end = find_stop(ref.text, [stop])
    got = plain.generate([PROMPTS[0]], SamplingParams(temperature=0, max_new_tokens=20, stop=stop))
    got = got[0][0]
    assert got.finish_reason == "stop"
    assert got.text == ref.text[:end] and got.text.endswith(stop)
    assert got.token_ids == ref.token_ids[:end]


def test_stop_string_inside_a_multi_character_token(make_tokenizer, make_model):
    # Vocabulary with multi-character tokens: the stop string "Q|" ends inside a sampled token
    # "|Zq"-like piece, so the text is cut mid-token while the whole token stays in token_ids.
    extra = tuple(f"{a}{b}" for a in "QRST" for b in "|#")
    tok = make_tokenizer(extra_tokens=extra)
    model = make_model(len(tok), init_std=0.2, seed=3)
    plain = Sampler(model, tok, eos_token_ids=[])
    params = SamplingParams(n=16, max_new_tokens=30, ignore_eos=True)
    refs = flat(plain.generate(["go"], params, seed=0))
    multi = {tok.convert_tokens_to_ids(t) for t in extra}
    # Pick a sample and a multi-char token in it; stop = last char of the token before + first
    # char of the multi-char token, so the stop string straddles a token boundary and
    # finishes one character before the token's end.
    for ref in refs:
        hits = [i for i, t in enumerate(ref.token_ids) if t in multi and i > 0]
        if hits:
            break
    else:
        pytest.fail("the random model sampled no multi-character token; change the seed")
    i = hits[0]
    prefix = tok.decode(ref.token_ids[:i])
    piece = tok.convert_ids_to_tokens(ref.token_ids[i])
    stop = prefix[-1] + piece[0]
    assert find_stop(prefix, [stop]) is None, "setup: the stop string must not occur earlier"
    got = flat(plain.generate(["go"], SamplingParams(**{**vars(params), "stop": (stop,)}), 0))
    got = got[refs.index(ref)]
    assert got.finish_reason == "stop"
    assert got.token_ids == ref.token_ids[: i + 1]  # the whole straddling token is kept
    assert got.text == prefix + piece[0]  # text cut right after the stop string
    assert tok.decode(got.token_ids) == prefix + piece  # one character more than the text


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_logprobs_match_full_forward_left_padded_group(tokenizer, make_model, attn):
    model = make_model(len(tokenizer), init_std=0.2, attn=attn)
    sampler = Sampler(model, tokenizer)
    # Truncation on, to check the recorded log-prob is of the untruncated distribution.
    params = SamplingParams(n=4, max_new_tokens=24, temperature=0.7, top_p=0.9, top_k=40)
    groups = sampler.generate(PROMPTS, params, seed=3)
    batch = collate(flat(groups), sampler.pad_token_id)
    assert batch.input_ids.shape[0] == len(PROMPTS) * 4
    with torch.no_grad():
        full = completion_logprobs(model, batch, temperature=0.7)
    diff = (full - batch.old_logprobs).abs().max().item()
    assert diff < 1e-4
    # The comparison is not vacuous: a different temperature disagrees clearly.
    with torch.no_grad():
        other = completion_logprobs(model, batch, temperature=1.0)
    assert (other - batch.old_logprobs).abs().max().item() > 1e-2


def test_n_samples_grouped_by_prompt(model, tokenizer):
    sampler = Sampler(model, tokenizer, eos_token_ids=[])
    params = SamplingParams(temperature=0, max_new_tokens=12, n=3)
    groups = sampler.generate(PROMPTS, params)
    assert [len(g) for g in groups] == [3] * len(PROMPTS)
    for p, group in enumerate(groups):
        alone = sampler.generate([PROMPTS[p]], SamplingParams(temperature=0, max_new_tokens=12))
        for c in group:
            assert c.prompt_index == p
            assert c.prompt_ids == sampler.encode([PROMPTS[p]])[0]
            assert c.token_ids == alone[0][0].token_ids


def test_prefix_is_prefilled_once_per_prompt(model, tokenizer):
    sizes, handle = _forward_batch_sizes(model)
    try:
        Sampler(model, tokenizer).generate(
            PROMPTS, SamplingParams(n=5, max_new_tokens=4, ignore_eos=True), seed=0
        )
    finally:
        handle.remove()
    assert sizes[0] == len(PROMPTS)  # prefill: one row per prompt
    assert sizes[1:] == [len(PROMPTS) * 5] * 3  # decode: one row per sample


def test_compaction_drops_finished_rows_without_changing_results(model, tokenizer, monkeypatch):
    # Many EOS ids: greedy rows of different prompts finish at different steps.
    eos = list(range(40, 70))
    params = SamplingParams(temperature=0, max_new_tokens=30, n=2)
    sizes, handle = _forward_batch_sizes(model)
    try:
        compacted = Sampler(model, tokenizer, eos_token_ids=eos).generate(PROMPTS, params)
    finally:
        handle.remove()
    assert min(sizes[1:]) < len(PROMPTS) * 2  # finished rows were dropped
    monkeypatch.setattr(engine_module, "_COMPACT_FRACTION", 2.0)  # never compact
    kept = Sampler(model, tokenizer, eos_token_ids=eos).generate(PROMPTS, params)
    assert [(c.token_ids, c.finish_reason) for c in flat(compacted)] == [
        (c.token_ids, c.finish_reason) for c in flat(kept)
    ]
    lengths = {len(c.token_ids) for c in flat(kept)}
    assert len(lengths) > 1  # the test needs rows that finish at different steps


def test_shared_prefix_and_stock_dynamic_cache_give_same_tokens(model, tokenizer, monkeypatch):
    # Through the model's forward (plain_step=False): the shared-prefix cache and attention (the
    # CPU default there), the preallocated cache with the prompt repeated per sample, and
    # transformers' own DynamicCache: same samples, same log-probs. Rows finish at different
    # steps, so batch compaction is exercised too.
    params = SamplingParams(n=3, max_new_tokens=16, top_p=0.9)
    shared_sampler = Sampler(model, tokenizer, plain_step=False)
    assert shared_sampler._shares_prefix(params.n, plain=False)
    shared = flat(shared_sampler.generate(PROMPTS, params, seed=4))
    assert model.config._attn_implementation == "sdpa"  # restored after decoding
    plain = flat(
        Sampler(model, tokenizer, shared_prefix=False, plain_step=False).generate(
            PROMPTS, params, seed=4
        )
    )
    monkeypatch.setattr(engine_module, "make_cache", lambda *_a, **_k: DynamicCache())
    stock = flat(
        Sampler(model, tokenizer, shared_prefix=False, plain_step=False).generate(
            PROMPTS, params, seed=4
        )
    )
    assert len({len(c.token_ids) for c in shared}) > 1
    for other in (plain, stock):
        assert [c.token_ids for c in shared] == [c.token_ids for c in other]
        for a, b in zip(shared, other, strict=True):
            assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)) < 1e-5


def test_tokenizer_without_pad_token_uses_eos(make_tokenizer, make_model):
    tok = make_tokenizer(with_pad=False)
    assert tok.pad_token_id is None
    model = make_model(len(tok), init_std=0.2)
    sampler = Sampler(model, tok)
    assert sampler.pad_token_id == tok.eos_token_id
    groups = sampler.generate(PROMPTS, SamplingParams(n=2, max_new_tokens=10), seed=0)
    batch = collate(flat(groups), sampler.pad_token_id)
    with torch.no_grad():
        full = completion_logprobs(model, batch)
    assert (full - batch.old_logprobs).abs().max().item() < 1e-4


def test_eos_ids_union_of_tokenizer_and_generation_config(tokenizer, make_model):
    model = make_model(len(tokenizer), eos_token_id=[2, 50])
    assert resolve_eos_ids(model, tokenizer) == [2, 50]
    # A generation-config-only EOS id stops sampling.
    ref = Sampler(model, tokenizer, eos_token_ids=[]).generate(
        [PROMPTS[3]], SamplingParams(temperature=0, max_new_tokens=20)
    )[0][0]
    model.generation_config.eos_token_id = [2, ref.token_ids[3]]
    got = Sampler(model, tokenizer).generate(
        [PROMPTS[3]], SamplingParams(temperature=0, max_new_tokens=20)
    )[0][0]
    assert got.finish_reason == "eos"
    assert got.token_ids[-1] == ref.token_ids[3]


def test_training_mode_restored_and_errors_are_actionable(model, tokenizer):
    sampler = Sampler(model, tokenizer)
    model.train()
    try:
        sampler.generate(["x"], SamplingParams(max_new_tokens=2), seed=0)
        assert model.training
    finally:
        model.eval()
    with pytest.raises(ValueError, match="max_position_embeddings"):
        sampler.generate(["x" * 500], SamplingParams(max_new_tokens=20))
    with pytest.raises(ValueError, match="prompt 1 has no tokens"):
        sampler.generate([[1, 5], []], SamplingParams(max_new_tokens=2))
    with pytest.raises(TypeError, match="mix"):
        sampler.generate(["a", [1, 2]], SamplingParams(max_new_tokens=2))


def test_token_id_prompts_and_progress_bar(model, tokenizer):
    sampler = Sampler(model, tokenizer)
    ids = sampler.encode(PROMPTS[:2])
    a = sampler.generate(ids, SamplingParams(max_new_tokens=6), seed=9, progress=True)
    b = sampler.generate(PROMPTS[:2], SamplingParams(max_new_tokens=6), seed=9)
    assert [c.token_ids for c in flat(a)] == [c.token_ids for c in flat(b)]


def test_sliding_window_models_fall_back_to_stock_cache(tokenizer, make_model):
    from r1lab.rollout.kv_cache import PreallocatedLayer, make_cache

    model = make_model(len(tokenizer))
    assert isinstance(make_cache(model, 64).layer_class_to_replicate(), PreallocatedLayer)
    model.config.layer_types = ["sliding_attention", "full_attention"]
    model.config.sliding_window = 16
    assert not any(isinstance(layer, PreallocatedLayer) for layer in make_cache(model, 64).layers)


def test_finish_tracker_finds_long_stop_string_fed_token_by_token(tokenizer):
    from r1lab.rollout.engine import _Detokenizer, _FinishTracker

    tracker = _FinishTracker(2, [tokenizer.eos_token_id], ["</answer>"], _Detokenizer(tokenizer))
    text = "<answer>42</answer>tail"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)  # one token per character
    finished_at = None
    for step, tok in enumerate(ids):
        # Row 1 samples EOS at step 3: EOS wins and is recorded as such.
        row1 = tokenizer.eos_token_id if step == 3 else ids[0]
        live = [0] if step > 3 else [0, 1]
        flags = tracker.add(live, [tok, row1][: len(live)])
        if flags[0]:
            finished_at = step
            break
    assert finished_at == text.index("</answer>") + len("</answer>") - 1
    assert tracker.reasons == ["stop", "eos"]
    assert len(tracker.tokens[1]) == 4


def test_cache_keyword_follows_the_forward_signature(model, tokenizer):
    class Renamed(torch.nn.Module):  # transformers >= 5.x: `cache`
        def forward(self, input_ids=None, cache=None, use_cache=None, **kwargs): ...

    class Legacy(torch.nn.Module):  # transformers 4.56 ..: `past_key_values`
        def forward(self, input_ids=None, past_key_values=None, use_cache=None, **kwargs): ...

    assert engine_module.cache_keyword(Renamed()) == "cache"
    assert engine_module.cache_keyword(Legacy()) == "past_key_values"
    assert engine_module.cache_kwargs(Legacy(), "kv") == {"past_key_values": "kv"}
    # The installed transformers: the name is one the model declares, and sampling and the
    # trainer's cached forwards raise no deprecation warning (the old name warns from the
    # release that renames it until 5.40, which removes it).
    import inspect
    import warnings

    assert engine_module.cache_keyword(model) in inspect.signature(model.forward).parameters
    groups = Sampler(model, tokenizer).generate(PROMPTS, SamplingParams(n=2, max_new_tokens=4))
    batch = collate(flat(groups))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        Sampler(model, tokenizer).generate(PROMPTS, SamplingParams(n=2, max_new_tokens=4))
        Sampler(model, tokenizer, shared_prefix=False).generate(
            PROMPTS, SamplingParams(n=2, max_new_tokens=4)
        )
        from r1lab.rollout.batch import PromptCache, completion_logits

        completion_logits(model, batch, slice(None), PromptCache(model, batch))
