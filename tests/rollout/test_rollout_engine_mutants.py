"""The sampler's wiring that the end-to-end tests left loose: which stop string wins, how far back
the finish tracker looks, special tokens in the text, the batch-compaction schedule, the pad id,
the attention implementation and train/eval mode around decoding, models whose forward lacks
`logits_to_keep`, tokenizers without a Rust backend, and the guards in `generate`.

Each test here was written against a mutant of `rollout/engine.py` that the other tests let
survive (the docstrings say which behaviour it pins)."""

from __future__ import annotations

import types

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AttentionInterface,
    PreTrainedTokenizerFast,
    Qwen2ForCausalLM,
)
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from r1lab.rollout import (
    Sampler,
    SamplingParams,
    collate,
    completion_logprobs,
    find_stop,
    resolve_eos_ids,
)
from r1lab.rollout import engine as engine_module
from r1lab.rollout import sampling as sampling_module
from r1lab.rollout.engine import _Detokenizer, _FinishTracker, cache_kwargs
from r1lab.rollout.kv_cache import SHARED_PREFIX_ATTENTION

from ._helpers import PROMPTS, flat


def _force_tokens(monkeypatch, forced: dict[int, int]) -> None:
    """Make every row sample token `forced[step]` at decode step `step` (real sampling
    otherwise), so a test can put a special token exactly where it wants it."""
    calls: list[int] = []

    def sample_next(logits, params, generator):
        tokens, logprobs = sampling_module.sample_next(logits, params, generator)
        step = len(calls)
        calls.append(step)
        if step in forced:
            tokens = torch.full_like(tokens, forced[step])
        return tokens, logprobs

    monkeypatch.setattr(engine_module, "sample_next", sample_next)


# --- find_stop and the finish tracker ------------------------------------------------------


def test_find_stop_returns_the_end_of_the_earliest_ending_stop_whatever_the_order():
    assert find_stop("x</answer>\n", ["\n", "</answer>"]) == 10
    assert find_stop("x</answer>\n", ["</answer>", "\n"]) == 10
    # Earliest-ending, not earliest-starting: "bc" ends before "abcd" does.
    assert find_stop("abcd", ["abcd", "bc"]) == 3
    assert find_stop("abcd", ["bc", "abcd"]) == 3
    # A short stop that ends later does not displace an earlier, longer one.
    assert find_stop("abcxxd", ["abc", "d"]) == 3
    # A stop at the very start of the text counts.
    assert find_stop("</answer>tail", ["</answer>"]) == 9
    assert find_stop("no stop here", ["</answer>", "\n"]) is None
    assert find_stop("anything", []) is None


def _feed(tracker: _FinishTracker, ids: list[int]) -> int | None:
    """Feed `ids` to completion 0 one token per step; the step at which it finished, or None."""
    for step, tok in enumerate(ids):
        if tracker.add([0], [tok])[0]:
            return step
    return None


def test_finish_tracker_window_covers_the_longest_of_several_stop_strings(tokenizer):
    # The window is sized by the longest stop, not the shortest: "\n" must not shrink it below
    # what "</answer>" (9 tokens of the char tokenizer) needs.
    text = "<answer>42</answer>tail\n"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    tracker = _FinishTracker(1, [], ["\n", "</answer>"], _Detokenizer(tokenizer))
    assert _feed(tracker, ids) == text.index("</answer>") + len("</answer>") - 1
    assert tracker.reasons == ["stop"]


def test_finish_tracker_decodes_a_bounded_tail_per_row(tokenizer):
    # The stop check decodes each live row's last few tokens, not its whole completion, so a
    # step costs O(rows) and not O(rows x length).
    detok = _Detokenizer(tokenizer)
    lengths: list[int] = []

    def recording(batch):
        lengths.extend(len(ids) for ids in batch)
        return detok(batch)

    tracker = _FinishTracker(2, [], ["</answer>"], recording)
    ids = tokenizer("x" * 60, add_special_tokens=False)["input_ids"]
    for tok in ids:
        assert tracker.add([0, 1], [tok, tok]) == [False, False]
    assert len(tracker.tokens[0]) == 60
    assert max(lengths) == len("</answer>") + engine_module._STOP_WINDOW_MARGIN


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE without merges: every UTF-8 byte is one token, so a non-ASCII character is
    several tokens and all but its last decode to no character (as in GPT-2 / Qwen vocabularies
    for characters they have no merge for)."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<eos>": 0, **{ch: i + 1 for i, ch in enumerate(alphabet)}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>")


def test_finish_tracker_finds_a_stop_string_of_multi_byte_characters():
    # "😀é" is 2 characters but 6 byte tokens (4 + 2): the window's margin beyond the stop's
    # length in characters must absorb the 4 tokens that decode to no character of their own.
    tok = byte_tokenizer()
    stop = "\U0001f600\u00e9"
    text = f"ok {stop} more"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(tok(stop, add_special_tokens=False)["input_ids"]) == 6
    assert tok.decode(ids) == text
    tracker = _FinishTracker(1, [], [stop], _Detokenizer(tok))
    end = len(tok("ok " + stop, add_special_tokens=False)["input_ids"])
    assert _feed(tracker, ids) == end - 1
    assert tracker.reasons == ["stop"]


@pytest.mark.parametrize("stop", ["\U0001f600\U0001f600", "答案：", "ééééé"])
def test_finish_tracker_finds_stop_strings_longer_in_bytes_than_characters_plus_margin(stop):
    # 8, 9 and 10 byte tokens for 2, 3 and 5 characters: a window sized in characters plus the
    # margin (6, 7, 9) never held the whole stop string, so the row ran to its length limit.
    tok = byte_tokenizer()
    text = f"ok {stop} more"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(tok(stop, add_special_tokens=False)["input_ids"]) == len(stop.encode("utf-8"))
    tracker = _FinishTracker(1, [], [stop], _Detokenizer(tok))
    end = len(tok("ok " + stop, add_special_tokens=False)["input_ids"])
    assert _feed(tracker, ids) == end - 1
    assert tracker.reasons == ["stop"]


def test_generate_with_no_prompts_returns_no_groups(model, tokenizer):
    sampler = Sampler(model, tokenizer)
    assert sampler.encode([]) == []
    assert sampler.generate([], SamplingParams(n=2, max_new_tokens=4), seed=0) == []


# --- special tokens are text too ---------------------------------------------------------


def test_special_tokens_stay_in_text_and_can_be_stop_strings(model, tokenizer, monkeypatch):
    eos = tokenizer.eos_token_id
    # ignore_eos: the EOS tokens (one mid-way, one last) are ordinary tokens of the text, even
    # the last one (the text drops a last EOS only when it finished the completion).
    _force_tokens(monkeypatch, {2: eos, 5: eos})
    params = SamplingParams(max_new_tokens=6, ignore_eos=True)
    got = Sampler(model, tokenizer).generate(PROMPTS[:1], params, seed=0)[0][0]
    assert got.finish_reason == "length"
    assert got.token_ids[2] == got.token_ids[5] == eos
    assert got.text == tokenizer.decode(got.token_ids)
    assert got.text.count("<eos>") == 2 and got.text.endswith("<eos>")
    # A special token's text as a stop string (like "<|im_end|>" for a model whose EOS is
    # something else): it is found, and the text is cut right after it.
    _force_tokens(monkeypatch, {3: eos})
    params = SamplingParams(max_new_tokens=10, stop=("<eos>",))
    got = Sampler(model, tokenizer, eos_token_ids=[]).generate(PROMPTS[:1], params, seed=0)[0][0]
    assert got.finish_reason == "stop"
    assert len(got.token_ids) == 4 and got.token_ids[-1] == eos
    assert got.text == tokenizer.decode(got.token_ids) and got.text.endswith("<eos>")


class _SlowTokenizer:
    """A tokenizer with only the Python API (a slow `PreTrainedTokenizer`): no Rust backend."""

    def __init__(self, fast: PreTrainedTokenizerFast) -> None:
        self._fast = fast

    def __getattr__(self, name: str):
        if name == "backend_tokenizer":
            raise AttributeError(name)
        return getattr(self._fast, name)

    def __call__(self, *args, **kwargs):
        return self._fast(*args, **kwargs)


def test_tokenizer_without_rust_backend_gives_the_same_completions(model, tokenizer, monkeypatch):
    slow = _SlowTokenizer(tokenizer)
    assert getattr(slow, "backend_tokenizer", None) is None
    _force_tokens(monkeypatch, {1: tokenizer.eos_token_id})
    params = SamplingParams(n=2, max_new_tokens=12, ignore_eos=True, stop=("3",))
    fast_out = flat(Sampler(model, tokenizer).generate(PROMPTS, params, seed=2))
    _force_tokens(monkeypatch, {1: tokenizer.eos_token_id})
    slow_out = flat(Sampler(model, slow).generate(PROMPTS, params, seed=2))
    assert [(c.token_ids, c.text, c.finish_reason) for c in slow_out] == [
        (c.token_ids, c.text, c.finish_reason) for c in fast_out
    ]
    assert all("<eos>" in c.text for c in slow_out)  # special tokens kept on this path too
    assert _Detokenizer(slow)([]) == []


# --- batch compaction --------------------------------------------------------------------


def _expected_decode_batch_sizes(completions, max_new: int) -> tuple[list[int], int]:
    """The batch size of every decode forward under the documented policy: a finished row stays
    in the batch until an eighth of the batch (at least one row) is finished, then every
    finished row is dropped; decoding stops once every row is finished. Also how many decode
    steps ran with a finished row still in the batch."""
    finish_step = [
        len(c.token_ids) - 1 if c.finish_reason != "length" else None for c in completions
    ]
    rows = list(range(len(completions)))
    finished: set[int] = set()
    sizes, waited = [], 0
    for step in range(max_new):
        finished |= {c for c in rows if finish_step[c] == step}
        n_live = sum(c not in finished for c in rows)
        if n_live == 0 or step == max_new - 1:
            break
        if len(rows) - n_live >= max(1, len(rows) / 8):
            rows = [c for c in rows if c not in finished]
        waited += len(rows) > n_live
        sizes.append(len(rows))
    return sizes, waited


def test_compaction_schedule_drops_finished_rows_once_an_eighth_are_finished(model, tokenizer):
    # 16 rows that finish at scattered steps (many EOS ids, sampled): a lone finished row in a
    # big batch waits, two of sixteen are dropped at once, small batches drop every finished
    # row, and decoding stops with the last row.
    eos = list(range(40, 52))
    params = SamplingParams(n=4, max_new_tokens=60)
    sizes: list[int] = []
    handle = model.register_forward_pre_hook(
        lambda _m, _a, kw: sizes.append(kw["input_ids"].shape[0]), with_kwargs=True
    )
    try:
        out = flat(Sampler(model, tokenizer, eos_token_ids=eos).generate(PROMPTS, params, seed=1))
    finally:
        handle.remove()
    assert all(c.finish_reason == "eos" for c in out)  # so decoding ends early
    expected, waited = _expected_decode_batch_sizes(out, params.max_new_tokens)
    assert sizes[0] == len(PROMPTS)  # the prefill
    assert sizes[1:] == expected
    # The schedule is not vacuous: finished rows waited, and the batch shrank several times.
    assert waited > 0 and len(set(expected)) > 3


# --- Sampler construction and generate's guards ------------------------------------------


def test_pad_token_id_is_the_tokenizers_then_the_first_eos_then_zero(
    model, tokenizer, make_tokenizer
):
    assert Sampler(model, tokenizer).pad_token_id == tokenizer.pad_token_id == 0
    assert Sampler(model, tokenizer, eos_token_ids=[7, 9]).pad_token_id == 0
    no_pad = make_tokenizer(with_pad=False)
    assert Sampler(model, no_pad, eos_token_ids=[7, 9]).pad_token_id == 7
    assert Sampler(model, no_pad, eos_token_ids=[]).pad_token_id == 0


def test_resolve_eos_ids_skips_missing_ids(tokenizer, make_model):
    model = make_model(len(tokenizer))
    model.generation_config.eos_token_id = None
    assert resolve_eos_ids(model, tokenizer) == [tokenizer.eos_token_id]
    model.generation_config.eos_token_id = [50, 2]
    no_eos = types.SimpleNamespace(eos_token_id=None)
    assert resolve_eos_ids(model, no_eos) == [50, 2]


def test_max_position_check_uses_the_longest_prompt_and_allows_exactly_the_limit(
    tokenizer, make_model
):
    model = make_model(len(tokenizer), max_positions=32)
    sampler = Sampler(model, tokenizer)
    long = "x" * 20  # 21 tokens with the BOS
    exact = sampler.generate(["x", long], SamplingParams(max_new_tokens=11, ignore_eos=True))
    assert [len(g[0].token_ids) for g in exact] == [11, 11]  # 21 + 11 = 32 positions: allowed
    with pytest.raises(ValueError, match="longest prompt \\(21 tokens\\)"):
        sampler.generate(["x", long], SamplingParams(max_new_tokens=12))


def test_progress_bar_only_when_asked(model, tokenizer, capsys):
    params = SamplingParams(max_new_tokens=3)
    Sampler(model, tokenizer).generate(PROMPTS[:1], params, seed=0)
    assert capsys.readouterr().out == ""
    Sampler(model, tokenizer).generate(PROMPTS[:1], params, seed=0, progress=True)
    assert "sampling" in capsys.readouterr().out


# --- the model around decoding: eval mode, attention implementation, logits_to_keep ---------


def test_sampling_runs_in_eval_mode_so_dropout_is_off(tokenizer, make_model):
    model = make_model(len(tokenizer), init_std=0.2)
    for layer in model.model.layers:
        layer.self_attn.attention_dropout = 0.5  # dropout that train mode would apply
    params = SamplingParams(n=2, max_new_tokens=8)
    ref = flat(Sampler(model, tokenizer).generate(PROMPTS, params, seed=0))
    model.train()
    got = flat(Sampler(model, tokenizer).generate(PROMPTS, params, seed=0))
    assert model.training  # the caller's mode is restored
    assert [c.token_ids for c in got] == [c.token_ids for c in ref]
    assert [c.logprobs for c in got] == [c.logprobs for c in ref]


def _attention_per_forward(model) -> tuple[list[str], object]:
    seen: list[str] = []
    handle = model.register_forward_pre_hook(
        lambda m, _a, _kw: seen.append(m.config._attn_implementation), with_kwargs=True
    )
    return seen, handle


def test_attention_implementation_is_switched_only_for_the_shared_prefix(tokenizer, make_model):
    model = make_model(len(tokenizer), init_std=0.2, attn="eager")
    params = SamplingParams(n=2, max_new_tokens=4, ignore_eos=True)
    seen, handle = _attention_per_forward(model)
    try:
        # Without the shared prefix the model decodes with its own (eager) attention.
        Sampler(model, tokenizer, shared_prefix=False, plain_step=False).generate(
            PROMPTS, params, seed=0
        )
        assert seen == ["eager"] * 4
        seen.clear()
        # With it (the CPU default through the forward, for n = 2 already), the decode steps
        # run the shared-prefix attention, and the model's own is restored afterwards.
        Sampler(model, tokenizer, plain_step=False).generate(PROMPTS, params, seed=0)
        assert seen == ["eager"] + [SHARED_PREFIX_ATTENTION] * 3
    finally:
        handle.remove()
    assert model.config._attn_implementation == "eager"


def test_custom_attention_implementation_is_kept_while_decoding(tokenizer, make_model):
    # The shared prefix is only measured to pay over SDPA / eager: a model running some other
    # attention kernel keeps it for every decode step.
    calls: list[int] = []

    def counted(module, *args, **kwargs):
        calls.append(1)
        return sdpa_attention_forward(module, *args, **kwargs)

    name = "r1lab_test_counted_sdpa"
    AttentionInterface.register(name, counted)
    model = make_model(len(tokenizer), init_std=0.2)
    model.set_attn_implementation(name)
    params = SamplingParams(n=3, max_new_tokens=4, ignore_eos=True)
    Sampler(model, tokenizer, plain_step=False).generate(PROMPTS, params, seed=0)
    layers = model.config.num_hidden_layers
    assert len(calls) == layers * 4  # the prefill and 3 decode steps, every layer
    assert model.config._attn_implementation == name


def test_sliding_window_model_samples_with_its_own_attention(tokenizer, make_model):
    model = make_model(
        len(tokenizer),
        max_positions=256,
        init_std=0.2,
        use_sliding_window=True,
        sliding_window=6,
        max_window_layers=1,
    )
    assert "sliding_attention" in model.config.layer_types
    # Defaults (n > 1 on the CPU): neither the plain step nor the shared prefix applies.
    groups = Sampler(model, tokenizer).generate(PROMPTS, SamplingParams(n=2, max_new_tokens=16), 0)
    batch = collate(flat(groups), 0)
    with torch.no_grad():
        full = completion_logprobs(model, batch)
    assert (full - batch.old_logprobs).abs().max().item() < 1e-4


class _ConfigWithout:
    """A model config that lacks some attributes (`missing`), the rest as `config`'s."""

    def __init__(self, config, *missing: str) -> None:
        self._config = config
        self._missing = missing

    def __getattr__(self, name: str):
        if name in self._missing:
            raise AttributeError(name)
        return getattr(self._config, name)


class _CustomCausalLM(torch.nn.Module):
    """A causal LM that is not a transformers `PreTrainedModel`: its forward has no
    `logits_to_keep` (logits for every position, as in older or custom models), it has no
    `set_attn_implementation`, and its config no `max_position_embeddings`."""

    def __init__(self, inner: Qwen2ForCausalLM) -> None:
        super().__init__()
        self.inner = inner
        self.config = _ConfigWithout(inner.config, "max_position_embeddings")
        self.generation_config = inner.generation_config

    def forward(self, input_ids, attention_mask, position_ids, past_key_values, use_cache=True):
        return self.inner(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache,
            **cache_kwargs(self.inner, past_key_values),
        )


def test_logits_to_keep_kwargs_follows_the_forward_signature(model):
    class Renamed(torch.nn.Module):  # transformers >= 4.50
        def forward(self, input_ids=None, logits_to_keep=0, **kwargs): ...

    class Legacy(torch.nn.Module):  # older releases
        def forward(self, input_ids=None, num_logits_to_keep=0, **kwargs): ...

    assert engine_module.logits_to_keep_kwargs(Renamed(), 3) == {"logits_to_keep": 3}
    assert engine_module.logits_to_keep_kwargs(Legacy(), 3) == {"num_logits_to_keep": 3}
    assert engine_module.logits_to_keep_kwargs(_CustomCausalLM(model), 3) == {}


def test_prefill_computes_logits_for_the_last_position_only(model, tokenizer):
    shapes: list[tuple[int, ...]] = []
    handle = model.register_forward_hook(lambda _m, _a, out: shapes.append(tuple(out.logits.shape)))
    try:
        Sampler(model, tokenizer).generate(PROMPTS, SamplingParams(n=2, max_new_tokens=3), seed=0)
    finally:
        handle.remove()
    vocab = model.config.vocab_size
    assert shapes[0] == (len(PROMPTS), 1, vocab)  # not [P, Lp, V]
    assert shapes[1:] == [(len(PROMPTS) * 2, 1, vocab)] * 2


def test_custom_causal_lm_samples_the_same(model, tokenizer):
    custom = _CustomCausalLM(model)
    assert getattr(custom.config, "max_position_embeddings", None) is None
    params = SamplingParams(n=3, max_new_tokens=12, top_p=0.9)
    # The reference goes through the same path: the model's forward over an unshared cache.
    ref = flat(
        Sampler(model, tokenizer, shared_prefix=False, plain_step=False).generate(
            PROMPTS, params, seed=7
        )
    )
    got = flat(Sampler(custom, tokenizer).generate(PROMPTS, params, seed=7))
    assert [c.token_ids for c in got] == [c.token_ids for c in ref]
    for a, b in zip(got, ref, strict=True):
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)) < 1e-5
