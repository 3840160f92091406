"""Reward-model data: preference rows in, pairs of token sequences and micro-batches out.

    rows (JSONL, Parquet, hf:NAME, microworld:helpful|harmless|overall)
      -> (prompt, chosen, rejected) texts, the prompt rendered as `r1lab sft` renders it
      -> Pair: the token ids of prompt + chosen and of prompt + rejected
      -> micro-batches of whole pairs (rows chosen, rejected, chosen, ...), right-padded

A row is `prompt`, `chosen` and `rejected` as text (column names configurable), or `chosen` and
`rejected` as chat conversations [{role, content}, ...] ending in the assistant's turn, with an
optional `prompt` conversation before both (the two "conversational" forms TRL reads). A
sequence is the rendered prompt's tokens (exactly as eval and RL encode a prompt) then the
response's, with no end-of-text token added, so the reward is read at the response's last token
and a Hugging Face sequence classifier reads it at the same place (`r1lab.rm.model`).

Errors are `ConfigError`s naming the file, the line (JSONL, 1-based) or row (Parquet/dataset,
0-based) and the field, as the task and SFT loaders report them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from r1lab.config import ConfigError
from r1lab.sft.data import Fields, plan_grouped, render, split_held_out
from r1lab.tasks import encode_prompts
from r1lab.tasks.files import read_rows, row_field

MICROWORLD = "microworld:"
MICROWORLD_PROMPT = "User: {prompt}\nAssistant:"
MICROWORLD_RESPONSE = " {response}"
"""How the micro-world's pairs are written: as its corpus writes a dialogue."""
HELD_OUT_PAIRS = 400
"""Held-out pairs of a microworld source: pairs of test requests, labelled by the hidden rule."""


@dataclass(frozen=True)
class PairFields:
    """Which columns hold what."""

    prompt: str = "prompt"
    chosen: str = "chosen"
    rejected: str = "rejected"


@dataclass(frozen=True)
class Pair:
    """One preference: the token ids of prompt + chosen and of prompt + rejected."""

    chosen: tuple[int, ...]
    rejected: tuple[int, ...]
    where: str
    """Where the row came from ("prefs.jsonl, line 3"), for messages about it."""
    kind: str = ""
    """The row's `kind` when it has one (the micro-world's request kinds), for per-kind
    accuracy."""

    @property
    def width(self) -> int:
        return max(len(self.chosen), len(self.rejected))


@dataclass
class RMData:
    """Tokenized training and held-out pairs."""

    train: list[Pair]
    eval: list[Pair]
    dropped: int = 0
    """Pairs left out for a side longer than max_length (train and held out)."""
    identical: int = 0
    """Pairs left out because chosen and rejected are the same text (nothing to learn)."""
    eval_source: str = ""


# ---------------------------------------------------------------------------------------------
# Rows -> (prompt, chosen, rejected) texts

# (where, prompt text, chosen text, rejected text, kind)
Rendered = tuple[str, str, str, str, str]


def _is_conversation(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def render_pair(
    row: Mapping[str, Any],
    where: str,
    template: str,
    tokenizer: Any,
    fields: PairFields = PairFields(),
) -> tuple[str, str, str]:
    """(prompt text, chosen text, rejected text) of one row, as the module docstring says."""
    chosen = row_field(row, fields.chosen, where)
    rejected = row_field(row, fields.rejected, where)
    prompt = row.get(fields.prompt)
    if _is_conversation(chosen) or _is_conversation(rejected):
        for name, value in ((fields.chosen, chosen), (fields.rejected, rejected)):
            if not _is_conversation(value):
                raise ConfigError(
                    f"{where}: field '{name}' must be a conversation like the other response "
                    f"(a list of {{role, content}}), got {type(value).__name__}"
                )
        if prompt is not None and not _is_conversation(prompt):
            raise ConfigError(
                f"{where}: field '{fields.prompt}' must be a conversation when the responses "
                f"are conversations, got {type(prompt).__name__}"
            )
        before = list(prompt or [])
        texts = []
        for name, value in ((fields.chosen, chosen), (fields.rejected, rejected)):
            texts.append(
                render(
                    {name: before + list(value)}, where, template, tokenizer, Fields(messages=name)
                )
            )
        (p_chosen, c), (p_rejected, r) = texts
        if p_chosen != p_rejected:
            raise ConfigError(
                f"{where}: '{fields.chosen}' and '{fields.rejected}' answer different prompts "
                "(their turns before the last differ)"
            )
        return p_chosen, c, r
    if prompt is None:
        raise ConfigError(
            f"{where}: missing field '{fields.prompt}' (text responses need a text prompt; "
            f"fields present: {', '.join(map(str, row)) or 'none'})"
        )
    out = []
    for name, value in ((fields.chosen, chosen), (fields.rejected, rejected)):
        text_row = {"p": prompt, "c": value}
        try:
            out.append(render(text_row, where, template, tokenizer, Fields("p", "c")))
        except ConfigError as e:  # name the row's own fields, not the ones used here
            msg = str(e).replace("'p'", f"'{fields.prompt}'").replace("'c'", f"'{name}'")
            raise ConfigError(msg) from None
    (p, c), (_, r) = out
    return p, c, r


def _microworld(source: str, pairs: int, noise: float) -> dict[str, list[Rendered]]:
    """The micro-world's preference pairs, written as its corpus writes a dialogue."""
    from r1lab.microworld.general import ASPECTS, preference_pairs

    aspect = source.removeprefix(MICROWORLD)
    if aspect not in ASPECTS:
        valid = ", ".join(MICROWORLD + a for a in ASPECTS)
        raise ConfigError(f"data={source}: unknown micro-world preference set; valid: {valid}")
    out = {}
    for split, n, share in (("train", pairs, noise), ("test", HELD_OUT_PAIRS, 0.0)):
        rows = preference_pairs(n, seed=0, noise=share, split=split, aspect=aspect)
        out[split] = [
            (
                f"{source} ({split}), pair {i}",
                MICROWORLD_PROMPT.format(prompt=r["prompt"]),
                MICROWORLD_RESPONSE.format(response=r["chosen"]),
                MICROWORLD_RESPONSE.format(response=r["rejected"]),
                r["kind"],
            )
            for i, r in enumerate(rows)
        ]
    return out


def read_rendered(
    source: str,
    template: str,
    tokenizer: Any,
    fields: PairFields = PairFields(),
    pairs: int = 2000,
    noise: float = 0.0,
) -> dict[str, list[Rendered]]:
    """Every row of a source rendered, by split ("train", and "test" when the source has one).
    A micro-world source is rendered as written (its prompts are the corpus's dialogue form)."""
    if source.startswith(MICROWORLD):
        return _microworld(source, pairs, noise)
    out = {}
    for split, rows in read_rows(source).items():
        out[split] = []
        for where, _, row in rows:
            kind = row.get("kind")
            rendered = render_pair(row, where, template, tokenizer, fields)
            out[split].append((where, *rendered, kind if isinstance(kind, str) else ""))
    return out


def formats(source: str) -> tuple[str, str]:
    """The text around a source's prompts and responses (`prompt_format`, `response_format`),
    recorded with a reward model so that a scorer writes its input the same way."""
    if source.startswith(MICROWORLD):
        return MICROWORLD_PROMPT, MICROWORLD_RESPONSE
    return "{prompt}", "{response}"


def encode(
    prompts: Sequence[str], responses: Sequence[str], template: str, tokenizer: Any
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, response ids) of rendered texts: the prompt as eval and RL encode it, the
    response without special tokens, nothing appended."""
    p_ids = encode_prompts(list(prompts), template, tokenizer)
    r_ids = tokenizer(list(responses), add_special_tokens=False)["input_ids"] if responses else []
    return [(list(p), list(r)) for p, r in zip(p_ids, r_ids, strict=True)]


def tokenize(rows: Sequence[Rendered], template: str, tokenizer: Any) -> list[Pair]:
    """Token ids of rendered pairs: prompt then response (`encode`)."""
    if not rows:
        return []
    chosen = encode([r[1] for r in rows], [r[2] for r in rows], template, tokenizer)
    rejected = encode([r[1] for r in rows], [r[3] for r in rows], template, tokenizer)
    out = []
    for row, (p, c), (_, r) in zip(rows, chosen, rejected, strict=True):
        for name, ids in (("chosen", c), ("rejected", r)):
            if not ids:
                raise ConfigError(f"{row[0]}: the {name} response encodes to no tokens")
        out.append(Pair(tuple(p + c), tuple(p + r), row[0], row[4]))
    return out


def load_pairs(
    data: str,
    template: str,
    tokenizer: Any,
    max_length: int,
    *,
    eval_data: str = "",
    eval_size: float = 0.0,
    seed: int = 0,
    fields: PairFields = PairFields(),
    pairs: int = 2000,
    noise: float = 0.0,
) -> RMData:
    """Training and held-out pairs: `eval_data` if given, else the source's test split if it
    has one, else `eval_size` of `data` held out by a seeded hash of the rendered prompt (a
    repeated prompt stays on one side). Pairs with a side longer than `max_length` tokens, and
    pairs whose two responses are the same text, are dropped and counted."""
    train, held_out, eval_source = split_held_out(
        data,
        lambda source: read_rendered(source, template, tokenizer, fields, pairs, noise),
        eval_data,
        eval_size,
        seed,
    )
    same = [r for r in train + held_out if r[2] == r[3]]
    train = [r for r in train if r[2] != r[3]]
    held_out = [r for r in held_out if r[2] != r[3]]
    if not train:
        raise ConfigError(
            f"{data}: no training pairs (after holding out eval_size={eval_size} and dropping "
            f"{len(same)} whose responses are identical)"
        )
    train_p = tokenize(train, template, tokenizer)
    eval_p = tokenize(held_out, template, tokenizer)
    fits_train = [p for p in train_p if p.width <= max_length]
    fits_eval = [p for p in eval_p if p.width <= max_length]
    if not fits_train:
        shortest = min(train_p, key=lambda p: p.width)
        raise ConfigError(
            f"{data}: every training pair is longer than max_length={max_length} tokens (the "
            f"shortest, {shortest.where}, has {shortest.width}); raise max_length"
        )
    dropped = len(train_p) - len(fits_train) + len(eval_p) - len(fits_eval)
    return RMData(fits_train, fits_eval, dropped, len(same), eval_source)


# ---------------------------------------------------------------------------------------------
# Pairs -> micro-batches


@dataclass
class PairBatch:
    """Model inputs of one forward/backward: row 2i is pair i's chosen sequence, row 2i + 1 its
    rejected one, right-padded; `last` is the position of each row's last real token."""

    input_ids: torch.Tensor  # [2P, L]
    position_ids: torch.Tensor  # [2P, L]
    last: torch.Tensor  # [2P]
    num_tokens: int

    def to(self, device: torch.device | str) -> PairBatch:
        return PairBatch(
            self.input_ids.to(device),
            self.position_ids.to(device),
            self.last.to(device),
            self.num_tokens,
        )


def collate(pairs: Sequence[Pair], pad_id: int = 0) -> PairBatch:
    """Chosen and rejected rows interleaved (`collate_sequences`)."""
    return collate_sequences([s for p in pairs for s in (p.chosen, p.rejected)], pad_id)


def collate_sequences(seqs: Sequence[Sequence[int]], pad_id: int = 0) -> PairBatch:
    """Sequences right-padded to the longest, with each one's last position. No attention
    mask is needed: a real token never attends to a later position, so the padding after a
    sequence changes none of its outputs (as `r1lab sft`'s grouped batches)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s)
    last = torch.tensor([len(s) - 1 for s in seqs])
    positions = torch.arange(width).repeat(len(seqs), 1)
    return PairBatch(ids, positions, last, sum(len(s) for s in seqs))


def plan(pairs: Sequence[Pair], budget: int, cut_cost: int = 0) -> list[list[int]]:
    """Indices of the pairs of each micro-batch: at most `budget` token positions (both
    sequences of a pair in one micro-batch, which the pair's loss needs; a wider pair alone),
    pairs of similar width together, cut where that saves more padding than one more
    micro-batch costs (`cut_cost` positions)."""
    return plan_grouped([p.width for p in pairs], max(budget // 2, 1), cut_cost // 2)


def micro_batches(
    pairs: Sequence[Pair], budget: int, cut_cost: int = 0, pad_id: int = 0
) -> list[PairBatch]:
    """The pairs collated in the micro-batches of `plan`."""
    return [collate([pairs[i] for i in g], pad_id) for g in plan(pairs, budget, cut_cost)]
