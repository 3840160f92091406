"""The rollout engine: batched sampling from any Hugging Face causal LM with a KV cache.

GRPO samples G completions of each prompt, so the sampler prefills every prompt once and copies
its KV cache to the G rows, decodes with a hand-written loop (no logits processors or
stopping-criteria objects), and drops finished rows from the batch so they stop costing compute.
On a CPU, for Qwen2 and Llama models, each decode step runs `fast_decode.PlainStep` (the model's
math in plain torch ops, without the forward's per-call Python) instead of the model's forward;
for other models there the prompt is kept and attended to once per group instead
(`kv_cache.shared_prefix_attention`). A vLLM backend can stand
behind the same `RolloutBackend` protocol later: it takes prompts and `SamplingParams` and
returns `Completion`s.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

from r1lab.rollout.fast_decode import PlainStep, plain_step_unsupported
from r1lab.rollout.kv_cache import (
    SHARED_PREFIX_ATTENTION,
    full_attention_only,
    make_cache,
    share_prefix,
)
from r1lab.rollout.sampling import SamplingParams, sample_next

FinishReason = Literal["eos", "stop", "length"]

# A finished row is dropped from the batch once this fraction of the rows are finished: a drop
# copies the whole KV cache once, a finished row kept in the batch costs one row of compute per
# step. An eighth bounds the wasted compute to ~12% while copying the cache rarely.
_COMPACT_FRACTION = 0.125

# Tokens decoded around the end of a completion to look for a stop string, beyond the stop
# string's length in UTF-8 bytes: a token holds at least one byte (a byte-level vocabulary
# writes a character it has no merge for as one token per byte, so "答案：" can be 9 tokens),
# and a few spare tokens absorb sentencepiece's dropped leading space.
_STOP_WINDOW_MARGIN = 4


@dataclass
class Completion:
    """One sampled completion of one prompt.

    `token_ids` and `logprobs` are every sampled token, in order, including the EOS token when
    finish_reason is "eos" (the trainer should learn to stop) and the whole token that completed
    a stop string when finish_reason is "stop". `text` is the decoded completion without the
    EOS token and, for "stop", cut right after the stop string (which it includes, e.g. the
    closing `</answer>` a format reward checks). So `text` can be a few characters shorter than
    `decode(token_ids)` when the last token runs past the stop string.
    """

    prompt_index: int
    """Index of the prompt in the list given to `generate`."""
    prompt_ids: list[int]
    """The prompt's token ids (the same list object for the n samples of a prompt)."""
    token_ids: list[int]
    text: str
    logprobs: list[float]
    """log softmax(logits / temperature)[token] before top-k/top-p; see `token_logprobs`."""
    finish_reason: FinishReason


class RolloutBackend(Protocol):
    """What a trainer needs from a sampler; `Sampler` is the Hugging Face implementation."""

    def generate(
        self,
        prompts: Sequence[str] | Sequence[Sequence[int]],
        params: SamplingParams,
        seed: int | None = None,
        progress: bool = False,
    ) -> list[list[Completion]]: ...


def resolve_eos_ids(model: torch.nn.Module, tokenizer) -> list[int]:
    """The union of the tokenizer's EOS id and the model's generation_config EOS ids.

    Instruct models often end turns with a token (`<|im_end|>`) that only generation_config
    lists, base models with the tokenizer's `eos_token`; stopping on either is what users expect.
    """
    ids: list[int] = []
    gen_cfg = getattr(model, "generation_config", None)
    candidates = [getattr(tokenizer, "eos_token_id", None), getattr(gen_cfg, "eos_token_id", None)]
    for cand in candidates:
        if cand is None:
            continue
        for i in [cand] if isinstance(cand, int) else list(cand):
            if int(i) not in ids:
                ids.append(int(i))
    return ids


def logits_to_keep_kwargs(model: torch.nn.Module, keep: int) -> dict[str, int]:
    """Forward kwargs that compute logits for the last `keep` positions only, if supported.

    The LM head over every prompt position is pure waste when only the next token is sampled,
    and with a 152k vocabulary it dominates the prefill's memory.
    """
    params = inspect.signature(model.forward).parameters
    for name in ("logits_to_keep", "num_logits_to_keep"):  # transformers >= 4.50, older
        if name in params:
            return {name: keep}
    return {}


def cache_keyword(model: torch.nn.Module) -> str:
    """The forward argument that takes a KV cache: `cache` where the model's forward has it
    (transformers 5.x, which deprecates `past_key_values` and removes it in 5.40), else
    `past_key_values` (4.56 .. the rename). The signature decides, not the version number, so
    a model whose own code lags the library's rename still gets the name it accepts."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_kwargs(model: torch.nn.Module, cache) -> dict[str, object]:
    """`{cache_keyword(model): cache}`, to splat into a forward call."""
    return {cache_keyword(model): cache}


def find_stop(text: str, stops: Sequence[str]) -> int | None:
    """End index (exclusive) of the earliest-ending stop string in `text`, or None."""
    best: int | None = None
    for stop in stops:
        at = text.find(stop)
        if at >= 0 and (best is None or at + len(stop) < best):
            best = at + len(stop)
    return best


class _Detokenizer:
    """Batch decoding through the Rust tokenizer when there is one (one call per step)."""

    def __init__(self, tokenizer) -> None:
        self._rust = getattr(tokenizer, "backend_tokenizer", None)
        self._tokenizer = tokenizer

    def __call__(self, batch: list[list[int]]) -> list[str]:
        if not batch:
            return []
        if self._rust is not None:
            return self._rust.decode_batch(batch, skip_special_tokens=False)
        return self._tokenizer.batch_decode(batch, skip_special_tokens=False)


@contextlib.contextmanager
def _attention(model: torch.nn.Module, implementation: str | None) -> Iterator[None]:
    # Decoding with the shared-prefix cache needs its attention function; the model's own
    # implementation is restored afterwards (the trainer's forward passes use it).
    if implementation is None:
        yield
        return
    before = model.config._attn_implementation
    model.set_attn_implementation(implementation)
    try:
        yield
    finally:
        model.set_attn_implementation(before)


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    # Sampling with dropout on would sample from a different policy than the one being scored;
    # the caller's train/eval mode is restored afterwards.
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class Sampler:
    """Batched sampling from a Hugging Face causal LM and its tokenizer.

        sampler = Sampler(model, tokenizer)
        groups = sampler.generate(prompts, SamplingParams(n=8, max_new_tokens=256), seed=step)
        # groups[p][i]: the i-th of 8 completions of prompts[p]

    The device and dtype are the model's. The random stream comes from a `torch.Generator` on
    that device seeded with `seed`, never from torch's global RNG (unless seed is None), so the
    same seed gives the same completions for the same inputs on the same device.

    shared_prefix: keep each prompt's KV once for its n samples and attend to it once per group
    while decoding (`kv_cache.shared_prefix_attention`). None (default) turns it on where it was
    measured to pay: on the CPU, for models with SDPA or eager attention in every layer, when
    the decode steps go through the model's forward (the plain step's own attention over each
    row's whole cache was faster than the shared prefix).

    plain_step: decode steps (not the prefill) in plain torch ops instead of the model's forward
    (`fast_decode.PlainStep`: the same math without the forward's per-call Python). None
    (default) uses it where it was measured to pay, on the CPU, for the architectures it covers;
    True asks for it and raises if the model is not one of them; False never uses it.
    """

    def __init__(
        self,
        model,
        tokenizer,
        eos_token_ids: Sequence[int] | None = None,
        shared_prefix: bool | None = None,
        plain_step: bool | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.shared_prefix = shared_prefix
        self.plain_step = plain_step
        self.eos_token_ids = (
            list(eos_token_ids) if eos_token_ids is not None else resolve_eos_ids(model, tokenizer)
        )
        pad = getattr(tokenizer, "pad_token_id", None)
        # Prompt padding is masked out, so any valid id works; models without a pad token
        # (Qwen base, Llama) conventionally pad with EOS.
        if pad is None:
            pad = self.eos_token_ids[0] if self.eos_token_ids else 0
        self.pad_token_id = int(pad)
        self._last_logits_only = logits_to_keep_kwargs(model, 1)
        self._cache_keyword = cache_keyword(model)
        self._detok = _Detokenizer(tokenizer)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, prompts: Sequence[str] | Sequence[Sequence[int]]) -> list[list[int]]:
        """Prompt token ids exactly as `generate` uses them (strings go through the tokenizer
        with its special tokens, e.g. a BOS it adds)."""
        if not prompts:
            return []
        if all(isinstance(p, str) for p in prompts):
            ids = self.tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
        elif not any(isinstance(p, str) for p in prompts):
            ids = [[int(t) for t in p] for p in prompts]
        else:
            raise TypeError("prompts must be all strings or all token-id sequences, not a mix")
        for i, p in enumerate(ids):
            if not p:
                raise ValueError(
                    f"prompt {i} has no tokens; give it some text or a BOS token to condition on"
                )
        return ids

    def generate(
        self,
        prompts: Sequence[str] | Sequence[Sequence[int]],
        params: SamplingParams,
        seed: int | None = None,
        progress: bool = False,
    ) -> list[list[Completion]]:
        """Sample `params.n` completions of every prompt; returns [P][n] `Completion`s."""
        prompt_ids = self.encode(prompts)
        if not prompt_ids:
            return []
        max_pos = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        longest = max(len(p) for p in prompt_ids)
        if max_pos is not None and longest + params.max_new_tokens > max_pos:
            raise ValueError(
                f"the longest prompt ({longest} tokens) plus max_new_tokens "
                f"({params.max_new_tokens}) exceeds the model's max_position_embeddings "
                f"({max_pos}); shorten the prompts or lower max_new_tokens"
            )
        device = self.device
        generator = None
        if seed is not None:
            generator = torch.Generator(device=device)
            generator.manual_seed(seed)
        with torch.inference_mode(), _eval_mode(self.model):
            tokens, logprobs, reasons = self._decode(prompt_ids, params, generator, progress)

        eos = set(self.eos_token_ids)
        texts = self._detok(
            [
                t[:-1] if r == "eos" and t and t[-1] in eos else t
                for t, r in zip(tokens, reasons, strict=True)
            ]
        )
        out: list[list[Completion]] = []
        for p, ids in enumerate(prompt_ids):
            group = []
            for c in range(p * params.n, (p + 1) * params.n):
                text = texts[c]
                if reasons[c] == "stop":
                    end = find_stop(text, params.stop)
                    text = text[:end] if end is not None else text
                group.append(Completion(p, ids, tokens[c], text, logprobs[c], reasons[c]))
            out.append(group)
        return out

    def _shares_prefix(self, n: int, plain: bool) -> bool:
        model = self.model
        implementation = getattr(getattr(model, "config", None), "_attn_implementation", None)
        # With the plain step, its grouped attention over each row's whole cache beat the shared
        # prefix's two parts (docs/benchmarks.md, the decode step in plain torch ops).
        auto = self.device.type == "cpu" and implementation in ("sdpa", "eager") and not plain
        wanted = auto if self.shared_prefix is None else self.shared_prefix
        return (
            wanted
            and n > 1
            and full_attention_only(model)
            and hasattr(model, "set_attn_implementation")
        )

    def _plain_step(self) -> PlainStep | None:
        if self.plain_step is False:
            return None
        why_not = plain_step_unsupported(self.model)
        if self.plain_step and why_not is not None:
            raise ValueError(f"plain_step=True, but this model's forward is needed: {why_not}")
        if why_not is not None or (self.plain_step is None and self.device.type != "cpu"):
            return None
        return PlainStep(self.model)

    def _forward(
        self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor, cache, **kw
    ):
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            **{self._cache_keyword: cache},
            **self._last_logits_only,
            **kw,
        )
        return out.logits[:, -1]  # [B, V]

    def _decode(
        self,
        prompt_ids: list[list[int]],
        params: SamplingParams,
        generator: torch.Generator | None,
        progress: bool,
    ) -> tuple[list[list[int]], list[list[float]], list[FinishReason]]:
        device, n, max_new = self.device, params.n, params.max_new_tokens
        num_prompts = len(prompt_ids)
        num_rows = num_prompts * n
        lp = max(len(p) for p in prompt_ids)

        # Prefill: P left-padded prompts, each once. [P, Lp]
        input_ids = torch.full((num_prompts, lp), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((num_prompts, lp + max_new), dtype=torch.long)  # room for completions
        for i, p in enumerate(prompt_ids):
            input_ids[i, lp - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[i, lp - len(p) :] = 1  # completion columns are real tokens for live rows
        input_ids, mask = input_ids.to(device), mask.to(device)
        positions = (mask[:, :lp].cumsum(-1) - 1).clamp(min=0)  # [P, Lp] left padding -> 0
        plain = self._plain_step()
        shared = self._shares_prefix(n, plain is not None)
        cache = make_cache(self.model, lp + max_new, shared_prefix=shared)
        logits = self._forward(input_ids, mask[:, :lp], positions, cache)  # [P, V]

        # Prefix sharing: the G samples of a prompt start from one copy of its prefill.
        if n > 1:
            if shared:
                share_prefix(cache, n, mask[:, :lp])
            else:
                cache.batch_repeat_interleave(n)
            logits = logits.repeat_interleave(n, dim=0)  # [P x G, V]
            mask = mask.repeat_interleave(n, dim=0)  # [P x G, Lp + max_new]
        next_pos = torch.tensor([len(p) for p in prompt_ids], device=device)  # [P]
        next_pos = next_pos.repeat_interleave(n)  # [P x G]
        # The plain step's additive key mask: -inf on prompt padding, none without padding.
        key_bias = None
        if plain is not None and not shared and bool((mask[:, :lp] == 0).any()):
            key_bias = torch.zeros(mask.shape, dtype=torch.float32, device=device)
            key_bias = key_bias.masked_fill(mask == 0, float("-inf"))[:, None, None, :]

        rows = list(range(num_rows))  # batch row -> completion index
        live = [True] * num_rows  # per batch row; finished rows wait for the next compaction
        row_index = torch.arange(num_rows, device=device)  # [B] completion index per row
        logprob_buf = torch.zeros((num_rows, max_new), dtype=torch.float32, device=device)
        eos = () if params.ignore_eos else self.eos_token_ids
        done = _FinishTracker(num_rows, eos, params.stop, self._detok)

        bar = _Bar(max_new) if progress else None
        extra = {"shared_prefix": cache} if shared else {}
        with _attention(self.model, SHARED_PREFIX_ATTENTION if shared else None):
            for step in range(max_new):
                next_tok, next_lp = sample_next(logits, params, generator)  # [B], [B]
                logprob_buf[row_index, step] = next_lp
                new = next_tok.tolist()  # the one host sync per step: finish checks need the ids
                live_rows = [b for b in range(len(rows)) if live[b]]
                finished = done.add([rows[b] for b in live_rows], [new[b] for b in live_rows])
                for b, f in zip(live_rows, finished, strict=True):
                    live[b] = not f
                n_live = len(live_rows) - sum(finished)
                if bar is not None:
                    bar.update(n_live)
                if n_live == 0 or step == max_new - 1:
                    break

                if len(rows) - n_live >= max(1, _COMPACT_FRACTION * len(rows)):
                    keep = [b for b in range(len(rows)) if live[b]]
                    keep_t = torch.tensor(keep, device=device)
                    cache.batch_select_indices(keep_t)
                    mask, next_pos, row_index = mask[keep_t], next_pos[keep_t], row_index[keep_t]
                    key_bias = key_bias[keep_t] if key_bias is not None else None
                    next_tok = next_tok[keep_t]
                    rows = [rows[b] for b in keep]
                    live = [True] * len(rows)

                kv_len = lp + step + 1
                if plain is not None:
                    bias = key_bias[..., :kv_len] if key_bias is not None else None
                    logits = plain(next_tok, next_pos, cache, bias, shared)  # [B, V]
                else:
                    logits = self._forward(
                        next_tok[:, None], mask[:, :kv_len], next_pos[:, None], cache, **extra
                    )  # [B, V]
                next_pos = next_pos + 1
        if bar is not None:
            bar.close()

        all_lp = logprob_buf.cpu().tolist()
        logprobs = [all_lp[c][: len(done.tokens[c])] for c in range(num_rows)]
        return done.tokens, logprobs, done.reasons


class _FinishTracker:
    """Every completion's tokens so far and why it finished; decides which finish at a step."""

    def __init__(
        self, num: int, eos_ids: Sequence[int], stops: Sequence[str], detok: _Detokenizer
    ) -> None:
        self.tokens: list[list[int]] = [[] for _ in range(num)]
        self.reasons: list[FinishReason] = ["length"] * num  # until something else ends it
        self._eos = set(eos_ids)
        self._stops = tuple(stops)
        self._detok = detok
        longest = max((len(s.encode("utf-8")) for s in stops), default=0)
        self._window = longest + _STOP_WINDOW_MARGIN

    def add(self, completions: list[int], new_tokens: list[int]) -> list[bool]:
        """Append one token to each of `completions`; returns which of them just finished."""
        finished = []
        for c, tok in zip(completions, new_tokens, strict=True):
            self.tokens[c].append(tok)
            if tok in self._eos:
                self.reasons[c] = "eos"
            finished.append(tok in self._eos)
        if self._stops:
            # Only the last few tokens can complete a stop string that was absent a step ago;
            # decoding just them, in one batched call, keeps this O(rows) per step.
            check = [i for i, f in enumerate(finished) if not f]
            tails = self._detok([self.tokens[completions[i]][-self._window :] for i in check])
            for i, tail in zip(check, tails, strict=True):
                if find_stop(tail, self._stops) is not None:
                    self.reasons[completions[i]] = "stop"
                    finished[i] = True
        return finished


class _Bar:
    """A minimal rich progress bar over decoding steps (only built when asked for)."""

    def __init__(self, total: int) -> None:
        from rich.progress import Progress

        self._progress = Progress(*Progress.get_default_columns(), "{task.fields[live]} live")
        self._task = self._progress.add_task("sampling", total=total, live=0)
        self._progress.start()

    def update(self, live: int) -> None:
        self._progress.update(self._task, advance=1, live=live)

    def close(self) -> None:
        self._progress.stop()
