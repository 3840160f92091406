"""A trained reward model as a scorer of (question, completion): what the last RL stage of
DeepSeek-R1 gives general prompts in place of a rule.

    scorer = RewardModelScorer("runs/rm-helpful", part="final")
    scorer.score(["Name two fruits."], ["<think> ... </think> apple, pear"])   # [1.73]

A reward model is read exactly as it was trained: its checkpoint's r1lab.json records the
template and the text around prompt and response (`prompt_format`, `response_format`; the
micro-world's pairs are dialogues, `User: {prompt}\\nAssistant:` then ` {response}`), so a
question and a completion are rendered into the very sequence shape the model learned to
score. `part` chooses what of a completion it sees: `full` (everything: DeepSeek-R1's
harmlessness model reads reasoning and summary), or `final` (what follows the last `</think>`,
tags removed: its helpfulness model reads the final summary only, so reasoning cannot sway it).
Sequences are scored in length-grouped batches of at most `batch_tokens` positions, under
no_grad; a completion longer than the model's context is cut from the left of the response
(its end, where the reward is read, is kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from r1lab.config import ConfigError

PARTS = ("full", "final")
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def response_part(completion: str, part: str) -> str:
    """What of a completion the reward model reads (module docstring)."""
    if part == "full":
        return completion.strip()
    if part != "final":
        raise ValueError(f"unknown part '{part}'; valid: {', '.join(PARTS)}")
    close = completion.rfind("</think>")
    text = completion[close + len("</think>") :] if close >= 0 else completion
    for tag in _TAGS:
        text = text.replace(tag, " ")
    return " ".join(text.split())


class RewardModelScorer:
    """Scores (question, completion) pairs with an `r1lab rm` checkpoint (or a run's last)."""

    def __init__(
        self,
        path: str | Path,
        *,
        part: str = "full",
        device: str = "auto",
        dtype: str = "auto",
        batch_tokens: int = 8192,
    ) -> None:
        from r1lab.rm.model import load_reward_model
        from r1lab.run.checkpoints import checkpoint_meta
        from r1lab.run.model import context_length, resolve_model_dir

        if part not in PARTS:
            raise ConfigError(f"reward model part must be one of {', '.join(PARTS)}, got {part!r}")
        self.path = resolve_model_dir(path)
        meta = checkpoint_meta(self.path)
        if meta.get("command") != "r1lab rm":
            raise ConfigError(
                f"{self.path} is not an r1lab rm checkpoint (its r1lab.json does not say so); "
                "train one with `r1lab rm`"
            )
        self.template = meta.get("template", "raw")
        self.prompt_format = meta.get("prompt_format", "{prompt}")
        self.response_format = meta.get("response_format", "{response}")
        self.part, self.batch_tokens = part, batch_tokens
        self.model, self.tokenizer, _ = load_reward_model(self.path, device, dtype)
        self.context = context_length(self.path)
        self.device = next(self.model.parameters()).device

    def sequences(self, questions: Sequence[str], completions: Sequence[str]) -> list[list[int]]:
        """The token ids each pair is scored on, rendered as the reward model's training pairs
        were (`r1lab.sft.data.render`, the recorded template and formats); a response that does
        not fit the context is cut from its left."""
        from r1lab.rm.data import encode
        from r1lab.sft.data import Fields, render

        texts = []
        for q, c in zip(questions, completions, strict=True):
            row = {
                "p": self.prompt_format.format(prompt=q),
                "c": self.response_format.format(response=response_part(c, self.part)),
            }
            texts.append(
                render(row, "scorer", self.template, self.tokenizer, Fields("p", "c"), True)
            )
        out = []
        for p, r in encode(
            [t[0] for t in texts], [t[1] for t in texts], self.template, self.tokenizer
        ):
            room = max(self.context - len(p), 0)
            out.append(p + (r[len(r) - room :] if room else []))
        return out

    @torch.no_grad()
    def score(self, questions: Sequence[str], completions: Sequence[str]) -> list[float]:
        """The reward of each (question, completion), in input order."""
        from r1lab.rm.data import collate_sequences
        from r1lab.rm.model import sequence_rewards

        if len(questions) != len(completions):
            raise ValueError(f"{len(questions)} questions but {len(completions)} completions")
        seqs = self.sequences(questions, completions)
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        out = [0.0] * len(seqs)
        pad = self.tokenizer.pad_token_id or 0
        start = 0
        while start < len(order):
            rows = max(1, self.batch_tokens // max(len(seqs[order[start]]), 1))
            chunk = order[start : start + rows]
            mb = collate_sequences([seqs[i] for i in chunk], pad).to(self.device)
            rewards = sequence_rewards(self.model, mb.input_ids, mb.position_ids, mb.last)
            for i, r in zip(chunk, rewards.tolist(), strict=True):
                out[i] = r
            start += len(chunk)
        return out
