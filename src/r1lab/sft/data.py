"""SFT data: rows in, token sequences and micro-batches out.

    rows (JSONL, Parquet, hf:NAME, microworld:general)
      -> (prompt text, completion text), the prompt rendered with the run's template
      -> Example: token ids and where the completion starts
      -> micro-batches: `grouped` (rows of similar length, right-padded) or `packed` (one row of
         whole sequences, position ids restarting at each)

A row is either `prompt` + `completion` (column names configurable) or a chat conversation
`messages` = [{role, content}, ...] whose last turn is the assistant's. A prompt is rendered as
`r1lab eval` and `r1lab zero` render a question (`r1lab.tasks.render_prompt`), so a fine-tuned
model is prompted the same way afterwards: `r1zero`, `prefill`, `raw` (as written), or `chat`
(the model's chat template around the question and R1-Zero's tag instruction). A conversation
is rendered by the chat template as it is (template=chat); with another template it must be one
user turn and the reply, which are read as prompt and completion.

The completion is the text after the prompt: appended as written after a rendered prompt (plus
the tokenizer's EOS, so the model learns to stop), or what the chat template writes for the
assistant's turn (its end-of-turn marker included, no extra EOS). Prompt and completion are
tokenized apart, the prompt exactly as eval and RL tokenize it (`encode_prompts`), so training
sees the prompt tokens the model will be given.

Errors are `ConfigError`s naming the file, the line (JSONL, 1-based) or row (Parquet/dataset,
0-based) and the field, as the task loaders report them (`r1lab.tasks.files`).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from r1lab.config import ConfigError
from r1lab.sft.loss import IGNORE
from r1lab.tasks import chat_messages, encode_prompts, render_prompt
from r1lab.tasks.files import read_rows, row_field, split_examples

BUILTIN = {"microworld:general": (2000, 200)}
"""Generated sources: name -> (train rows, test rows). `microworld:general` is the micro-world's
general requests with good responses (`r1lab.microworld.general.sft_examples`)."""


@dataclass(frozen=True)
class Fields:
    """Which columns hold what."""

    prompt: str = "prompt"
    completion: str = "completion"
    messages: str = "messages"


@dataclass(frozen=True)
class Example:
    """One training sequence: prompt tokens then completion tokens."""

    ids: tuple[int, ...]
    prompt_len: int
    where: str
    """Where the row came from ("data.jsonl, line 3"), for messages about it."""

    @property
    def num_targets(self) -> int:
        """Tokens the loss is taken on: the completion's (a first token with no context before
        it, when the prompt is empty, is never predicted)."""
        return len(self.ids) - max(self.prompt_len, 1)


@dataclass
class SFTData:
    """Tokenized training and held-out sequences."""

    train: list[Example]
    eval: list[Example]
    dropped: int = 0
    """Rows left out for being longer than max_length (train and held out)."""
    eval_source: str = ""
    """Where the held-out rows came from, for the start-up line."""
    mixed: int = 0
    """Training rows drawn from the `mix` source (included in `train`)."""


# ---------------------------------------------------------------------------------------------
# Rows -> (prompt text, completion text)


def _text(value: Any, where: str, name: str, empty_ok: bool = False) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: field '{name}' must be text, got {type(value).__name__}")
    if not empty_ok and not value.strip():
        raise ConfigError(f"{where}: field '{name}' is empty")
    return value


def _messages(value: Any, where: str, name: str) -> list[dict[str, str]]:
    if not isinstance(value, (list, tuple)) or not value:
        kind = "empty" if isinstance(value, (list, tuple)) else f"a {type(value).__name__}"
        raise ConfigError(
            f"{where}: field '{name}' must be a non-empty list of {{role, content}}, got {kind}"
        )
    out = []
    for i, message in enumerate(value):
        at = f"{where}: field '{name}', message {i}"
        if not isinstance(message, Mapping):
            raise ConfigError(f"{at}: expected {{role, content}}, got {type(message).__name__}")
        for key in ("role", "content"):
            if not isinstance(message.get(key), str):
                what = "missing" if message.get(key) is None else "not text"
                raise ConfigError(f"{at}: '{key}' is {what}")
        out.append({"role": message["role"], "content": message["content"]})
    if out[-1]["role"] != "assistant":
        raise ConfigError(
            f"{where}: field '{name}': the last message must be the assistant's (it is the "
            f"completion), got role '{out[-1]['role']}'"
        )
    if len(out) < 2:
        raise ConfigError(f"{where}: field '{name}': no prompt before the assistant's message")
    if not out[-1]["content"].strip():
        raise ConfigError(f"{where}: field '{name}': the assistant's message is empty")
    return out


def _chat_texts(messages: list[dict[str, str]], where: str, tokenizer: Any) -> tuple[str, str]:
    """The chat template's prompt (ending in the generation prompt) and the assistant turn's
    text after it."""
    try:
        prompt = tokenizer.apply_chat_template(
            messages[:-1], tokenize=False, add_generation_prompt=True
        )
        full = tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception as e:  # jinja's errors (roles out of order, ...) are many; all mean "no"
        raise ConfigError(f"{where}: the chat template refused this conversation ({e})") from None
    if not full.startswith(prompt):
        raise ConfigError(
            f"{where}: the chat template writes this conversation without the prompt "
            f"{prompt[-40:]!r} as its beginning, so the completion cannot be cut from it"
        )
    return prompt, full[len(prompt) :]


def render(
    row: Mapping[str, Any],
    where: str,
    template: str,
    tokenizer: Any,
    fields: Fields = Fields(),
    empty_ok: bool = False,
) -> tuple[str, str]:
    """(prompt text, completion text) of one row, as the module docstring describes. An empty
    completion is an error unless `empty_ok` (a reward model scores whatever a policy wrote)."""
    if row.get(fields.messages) is not None:
        messages = _messages(row[fields.messages], where, fields.messages)
        if template == "chat":
            return _chat_texts(messages, where, tokenizer)
        if len(messages) != 2 or messages[0]["role"] != "user":
            roles = ", ".join(m["role"] for m in messages)
            raise ConfigError(
                f"{where}: field '{fields.messages}': template={template} takes one user turn "
                f"and the assistant's reply, this row has [{roles}]; use template=chat"
            )
        prompt, completion = messages[0]["content"], messages[1]["content"]
    else:
        raw_prompt = row_field(row, fields.prompt, where)
        prompt = _text(raw_prompt, where, fields.prompt, empty_ok=True)
        raw = row_field(row, fields.completion, where)
        completion = _text(raw, where, fields.completion, empty_ok=empty_ok)
        if template == "chat":
            reply = {"role": "assistant", "content": completion}
            return _chat_texts([*chat_messages(prompt), reply], where, tokenizer)
    return render_prompt(prompt, template, tokenizer), completion


# ---------------------------------------------------------------------------------------------
# Sources -> rendered rows -> examples

# (where, prompt text, completion text)
Rendered = tuple[str, str, str]


def _builtin(name: str) -> dict[str, list[tuple[str, str, Mapping[str, Any]]]]:
    from r1lab.microworld.general import sft_examples

    n_train, n_test = BUILTIN[name]
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        rows = sft_examples(n, seed=0, split=split)
        out[split] = [
            (f"{name} ({split}), row {i}", "", {"prompt": r["prompt"], "completion": r["response"]})
            for i, r in enumerate(rows)
        ]
    return out


def read_rendered(
    source: str, template: str, tokenizer: Any, fields: Fields = Fields()
) -> dict[str, list[Rendered]]:
    """Every row of a source rendered, by split ("train", and "test" when the source has one)."""
    parts = _builtin(source) if source in BUILTIN else read_rows(source)
    return {
        split: [(where, *render(row, where, template, tokenizer, fields)) for where, _, row in rows]
        for split, rows in parts.items()
    }


def tokenize(rows: Sequence[Rendered], template: str, tokenizer: Any) -> list[Example]:
    """Token ids of rendered rows: the prompt as eval and RL encode it, then the completion
    (without special tokens), then EOS unless the chat template ended the turn itself."""
    if not rows:
        return []
    prompts = encode_prompts([p for _, p, _ in rows], template, tokenizer)
    completions = tokenizer([c for _, _, c in rows], add_special_tokens=False)["input_ids"]
    eos = (
        [tokenizer.eos_token_id]
        if template != "chat" and tokenizer.eos_token_id is not None
        else []
    )
    out = []
    for (where, _, _), p, c in zip(rows, prompts, completions, strict=True):
        if not c:
            raise ConfigError(f"{where}: the completion encodes to no tokens")
        out.append(Example(tuple(p) + tuple(c) + tuple(eos), len(p), where))
    return out


R = TypeVar("R", bound=tuple)


def split_held_out(
    data: str,
    read: Callable[[str], dict[str, list[R]]],
    eval_data: str = "",
    eval_size: float = 0.0,
    seed: int = 0,
) -> tuple[list[R], list[R], str]:
    """(training rows, held-out rows, where the held-out rows came from) of a source whose
    rendered rows `read` returns by split, each row (where, prompt text, ...): `eval_data` if
    given (its test split, else all of it), else the source's test split if it has one, else
    `eval_size` of `data` held out by a seeded hash of the prompt (a repeated prompt stays on
    one side; `r1lab.tasks.files.split_examples`)."""
    parts = read(data)
    train = parts["train"]
    if eval_data:
        held = read(eval_data)
        return train, held.get("test", held["train"]), eval_data
    if "test" in parts:
        return train, parts["test"], f"{data} (test split)"
    if eval_size > 0 and len(train) >= 2:
        keyed = [{"prompt": r[1], "row": r} for r in train]
        kept, test = split_examples(keyed, eval_size, seed, data, key="prompt")
        source = f"{eval_size:.0%} of {data}, held out by prompt hash (seed {seed})"
        return [k["row"] for k in kept], [k["row"] for k in test], source
    return train, [], ""


def load_data(
    data: str,
    template: str,
    tokenizer: Any,
    max_length: int,
    *,
    eval_data: str = "",
    eval_size: float = 0.0,
    seed: int = 0,
    fields: Fields = Fields(),
    mix: str = "",
    mix_ratio: float = 1 / 3,
) -> SFTData:
    """Training and held-out examples: `eval_data` if given, else the source's test split if
    it has one, else `eval_size` of `data` held out by a seeded hash of the rendered prompt
    (`r1lab.tasks.files.split_examples`: a repeated prompt stays on one side). Rows longer than
    `max_length` tokens are dropped and counted.

    `mix`: a second source (DeepSeek-R1's non-reasoning rows beside its reasoning ones) of which
    round(mix_ratio x training rows of `data`) training rows join the training set, drawn by a
    seeded sample (repeated whole when it has fewer), and as many of its held-out rows per
    held-out row of `data` join the held-out set."""

    def read(source: str) -> dict[str, list[Rendered]]:
        return read_rendered(source, template, tokenizer, fields)

    train, held_out, eval_source = split_held_out(data, read, eval_data, eval_size, seed)
    if not train:
        raise ConfigError(f"{data}: no training rows left after holding out eval_size={eval_size}")
    mixed = 0
    if mix:
        mix_train, mix_held, _ = split_held_out(mix, read, "", eval_size, seed)
        extra = draw(mix_train, round(mix_ratio * len(train)), f"sft-mix/{seed}/train")
        extra_held = draw(mix_held, round(mix_ratio * len(held_out)), f"sft-mix/{seed}/eval")
        train, held_out, mixed = train + extra, held_out + extra_held, len(extra)
        if extra_held:
            eval_source += f" + {len(extra_held)} held-out rows of {mix}"
    train_ex = tokenize(train, template, tokenizer)
    eval_ex = tokenize(held_out, template, tokenizer)
    fits_train = [e for e in train_ex if len(e.ids) <= max_length]
    fits_eval = [e for e in eval_ex if len(e.ids) <= max_length]
    if not fits_train:
        shortest = min(train_ex, key=lambda e: len(e.ids))
        raise ConfigError(
            f"{data}: every training row is longer than max_length={max_length} tokens (the "
            f"shortest, {shortest.where}, has {len(shortest.ids)}); raise max_length"
        )
    dropped = len(train_ex) - len(fits_train) + len(eval_ex) - len(fits_eval)
    return SFTData(fits_train, fits_eval, dropped, eval_source, mixed)


def draw(rows: Sequence[R], n: int, key: str) -> list[R]:
    """`n` of `rows` by a seeded sample without replacement: every row as often as the others,
    the whole set repeated when `n` exceeds it, the rest sampled."""
    if n <= 0 or not rows:
        return []
    whole, rest = divmod(n, len(rows))
    return list(rows) * whole + random.Random(key).sample(list(rows), rest)


# ---------------------------------------------------------------------------------------------
# Examples -> micro-batches


@dataclass
class MicroBatch:
    """Model inputs of one forward/backward and the next-token target of every position."""

    input_ids: torch.Tensor  # [R, L]
    position_ids: torch.Tensor  # [R, L]
    targets: torch.Tensor  # [R, L]: the token position i predicts, IGNORE where no loss
    num_tokens: int
    """Real tokens (prompt + completion, no padding)."""

    @property
    def num_targets(self) -> int:
        return int((self.targets != IGNORE).sum().item())

    def to(self, device: torch.device | str) -> MicroBatch:
        return MicroBatch(
            self.input_ids.to(device),
            self.position_ids.to(device),
            self.targets.to(device),
            self.num_tokens,
        )


def _targets(ex: Example) -> list[int]:
    # Position i predicts token i + 1: a target where token i + 1 is a completion token, and
    # none at the last position (nothing of this sequence follows it).
    first = max(ex.prompt_len, 1)
    return [ex.ids[i + 1] if i + 1 >= first else IGNORE for i in range(len(ex.ids) - 1)] + [IGNORE]


def collate_grouped(examples: Sequence[Example], pad_id: int = 0) -> MicroBatch:
    """Rows right-padded to the longest. Position ids run on into the padding, so the model
    sees one causal sequence a row and needs no attention mask: a real token never attends to
    a later position, so the padding after it changes none of its outputs."""
    width = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    targets = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for r, e in enumerate(examples):
        ids[r, : len(e.ids)] = torch.tensor(e.ids)
        targets[r, : len(e.ids)] = torch.tensor(_targets(e))
    positions = torch.arange(width).repeat(len(examples), 1)  # [R, L]
    return MicroBatch(ids, positions, targets, sum(len(e.ids) for e in examples))


def collate_packed(examples: Sequence[Example]) -> MicroBatch:
    """One row of whole sequences back to back, no padding. Position ids restart at 0 for each
    sequence; from them the model (transformers' packed-sequence detection, used only without
    an attention mask and a KV cache) keeps attention within each sequence. No target crosses
    a boundary: a sequence's last position predicts nothing."""
    ids = torch.tensor([t for e in examples for t in e.ids])[None]  # [1, T]
    positions = torch.cat([torch.arange(len(e.ids)) for e in examples])[None]  # [1, T]
    targets = torch.tensor([t for e in examples for t in _targets(e)])[None]  # [1, T]
    return MicroBatch(ids, positions, targets, ids.shape[1])


def plan_grouped(lengths: Sequence[int], budget: int, cut_cost: int) -> list[list[int]]:
    """Indices of rows per micro-batch: rows sorted longest first and cut where a cut saves
    more padding than one more forward/backward costs (`cut_cost` token positions), each
    micro-batch at most `budget` positions (rows x its longest; a longer row alone). The
    dynamic program is the GRPO update's (`r1lab.rollout.batch.micro_batches`)."""
    from r1lab.rollout.batch import micro_batches as cut

    if not lengths:
        return []
    chunks = cut(torch.tensor(lengths), len(lengths), cut_cost, max_tokens=budget)
    return [c.tolist() for c in chunks]


def plan_packed(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Indices of sequences per pack: first-fit decreasing into packs of at most `budget`
    tokens (a sequence longer than the budget alone)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    packs: list[list[int]] = []
    used: list[int] = []
    for i in order:
        for b, u in enumerate(used):
            if u + lengths[i] <= budget:
                packs[b].append(i)
                used[b] += lengths[i]
                break
        else:
            packs.append([i])
            used.append(lengths[i])
    return packs


def micro_batches(
    examples: Sequence[Example], batching: str, budget: int, cut_cost: int = 0, pad_id: int = 0
) -> list[MicroBatch]:
    """An optimisation batch cut into micro-batches of at most `budget` token positions
    (`cut_cost`: see `plan_grouped`; packs are always as full as they can be)."""
    lengths = [len(e.ids) for e in examples]
    if batching == "packed":
        return [collate_packed([examples[i] for i in p]) for p in plan_packed(lengths, budget)]
    if batching == "grouped":
        groups = plan_grouped(lengths, budget, cut_cost)
        return [collate_grouped([examples[i] for i in g], pad_id) for g in groups]
    raise ValueError(f"unknown batching '{batching}'; valid: grouped, packed")


def batch_rows(n: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Indices of the training rows of optimizer step `step`: each epoch is a fresh seeded
    permutation of the n rows, cut into ceil(n / batch_size) batches (the last one smaller).
    A function of (n, batch_size, seed, step) only, so a resumed run trains on exactly the
    batches an uninterrupted one would."""
    per_epoch = -(-n // batch_size)
    epoch, index = divmod(step, per_epoch)
    return list(_epoch_order(n, seed, epoch)[index * batch_size : (index + 1) * batch_size])


@functools.lru_cache(maxsize=2)
def _epoch_order(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    # Cached: a step needs its epoch's order, not a fresh shuffle of every row.
    order = list(range(n))
    random.Random(f"sft/{seed}/{epoch}").shuffle(order)
    return tuple(order)
