"""A teacher-forced arithmetic probe of a micro-world model, cheap enough to run while it trains.

A base model's worked arithmetic is three skills, and a pretraining draw can miss one while its
loss looks like every other draw's (docs/microworld.md, "V's recipe, a second pretraining
draw"): reading a column's digits from the operands, the column's fact (`5+8+1=14`), and putting
the written digits back together, last written first, into the total (`So 451 + 335 = 786.`).
The probe writes fresh questions in the R1-Zero template with the corpus's own worked solution
(English, no slip), runs the model once over them, and reports, per operation and skill, the mean
probability the model gives the right digit there: what a temperature-1 sampler gets per digit.

    from r1lab.microworld.probe import arithmetic_probe, probe_items
    items = probe_items()                       # fixed questions (seeded)
    arithmetic_probe(model, tokenizer, items)   # {"+ fact": 0.96, "+ read": 0.90, "+ total": 0.997, ...}

    python -m r1lab.microworld.probe MODEL_DIR...   # a markdown row per model
    python -m r1lab.microworld.probe --curve MODEL_DIR   # the probe during its pretraining
"""

from __future__ import annotations

import random
import re
import sys
import time
from dataclasses import dataclass

import torch

from r1lab.microworld.corpus import PHRASES, _column_pass
from r1lab.tasks import R1_ZERO_TEMPLATE

SKILLS = ("read", "fact", "total")
"""What each probed digit tests: an operand digit a column reads (from the second column on:
whether the first column is written at all is the writer's style), a digit of the column's
fact, a digit of the total put together from the written digits."""

_COLUMN = re.compile(r"(\d)([+*])(\d)(?:\+\d)?=(\d+)")


@dataclass(frozen=True)
class ProbeItem:
    """One question with its worked solution and the character offsets of the digits probed."""

    text: str
    marks: tuple[tuple[int, str], ...]
    """(offset in `text` of a one-digit span, key such as `+ total`)."""


def worked_item(a: int, op: str, b: int) -> ProbeItem:
    """The question `a op b` in the R1-Zero template, answered as the corpus's column writers do."""
    parts, _, result = _column_pass(a, b, op, False, lambda i: PHRASES["en"], random.Random(0))
    prompt = R1_ZERO_TEMPLATE.format(prompt=f"Compute {a} {op} {b}")
    text, marks = prompt + " <think>", []
    for k, part in enumerate(parts[:-1]):  # the columns, right to left
        at = len(text) + 1
        m = _COLUMN.match(part)
        assert m, part  # the corpus's column phrase; a change there must change this probe
        if k > 0:
            marks.append((at + m.start(1), f"{op} read"))
        if op == "+":
            marks.append((at + m.start(3), f"{op} read"))
        marks.extend((at + m.start(4) + j, f"{op} fact") for j in range(len(m.group(4))))
        text += " " + part
    so = parts[-1]
    at = len(text) + 1 + so.rindex(str(result))
    marks.extend((at + j, f"{op} total") for j in range(len(str(result))))
    return ProbeItem(text + " " + so, tuple(marks))


def probe_items(n: int = 64, seed: int = 0) -> list[ProbeItem]:
    """`n` additions (2-3 digits each) and `n` multiplications (2-3 digits by one digit)."""
    rng = random.Random(f"probe/{seed}")
    items = []
    for _ in range(n):
        a, b = rng.randint(10, 999), rng.randint(10, 999)
        items.append(worked_item(a, "+", b))
        items.append(worked_item(rng.randint(10, 999), "*", rng.randint(2, 9)))
    return items


@torch.no_grad()
def arithmetic_probe(model, tokenizer, items: list[ProbeItem], batch_size: int = 32) -> dict:
    """Mean probability of the right digit per `<op> <skill>`, teacher-forced over `items`.

    Puts the model in eval mode for the pass and restores its mode; draws no random numbers, so
    a training run that probes trains the same weights as one that does not."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    sums: dict[str, list[float]] = {}
    try:
        for i in range(0, len(items), batch_size):
            chunk = items[i : i + batch_size]
            enc = [
                tokenizer(it.text, return_offsets_mapping=True, add_special_tokens=False)
                for it in chunk
            ]
            width = max(len(e["input_ids"]) for e in enc)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, e in enumerate(enc):
                ids[row, : len(e["input_ids"])] = torch.tensor(e["input_ids"])
                mask[row, : len(e["input_ids"])] = 1
            logp = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            logp = logp.float().log_softmax(-1).cpu()
            for row, (item, e) in enumerate(zip(chunk, enc, strict=True)):
                token_at = {s: t for t, (s, end) in enumerate(e["offset_mapping"]) if end == s + 1}
                for offset, key in item.marks:
                    t = token_at.get(offset)
                    if t is None or t == 0:  # a digit merged into a longer token: not probed
                        continue
                    p = logp[row, t - 1, ids[row, t]].exp().item()
                    sums.setdefault(key, []).append(p)
    finally:
        model.train(was_training)
    return {key: sum(ps) / len(ps) for key, ps in sorted(sums.items())}


USAGE = """usage: python -m r1lab.microworld.probe MODEL_DIR...    probe finished models
       python -m r1lab.microworld.probe --curve MODEL_DIR [EVERY]   the probe during its
                                                   pretraining (loss.jsonl), every EVERY steps"""


def curve(model_dir: str, every: int = 200) -> str:
    """The probe as pretraining logged it: a markdown row every `every` steps and the last, with
    the mean loss of the 50 steps up to it."""
    import json
    from pathlib import Path

    rows = [json.loads(line) for line in Path(model_dir, "loss.jsonl").read_text().splitlines()]
    probed = [r for r in rows if "probe/+ total" in r]
    keys = [f"{op} {skill}" for op in "+*" for skill in SKILLS]
    out = ["| step | loss | " + " | ".join(f"`{k}`" for k in keys) + " |"]
    out.append("|---:" * (len(keys) + 2) + "|")
    for r in probed:
        if r["step"] % every and r is not probed[-1]:
            continue
        window = [x["loss"] for x in rows if r["step"] - 50 < x["step"] <= r["step"]]
        values = " | ".join(f"{r[f'probe/{k}']:.3f}" for k in keys)
        out.append(f"| {r['step']} | {sum(window) / len(window):.3f} | {values} |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    """`python -m r1lab.microworld.probe MODEL_DIR...`: one markdown row per model;
    `--curve MODEL_DIR [EVERY]`: the probe logged while it was pretrained."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if argv[:1] == ["--curve"] and len(argv) in (2, 3):
        print(curve(argv[1], *(int(a) for a in argv[2:])))
        return 0
    if not argv or argv[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    torch.set_num_threads(2)
    items = probe_items()
    for path in argv:
        model = AutoModelForCausalLM.from_pretrained(path)
        t0 = time.perf_counter()
        result = arithmetic_probe(model, AutoTokenizer.from_pretrained(path), items)
        print(f"{path}: probed in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        if not any(k.startswith("+") for k in result):
            print(f"| {path} | (no single-digit tokens: not a micro-world model) |")
            continue
        keys = [f"{op} {skill}" for op in "+*" for skill in SKILLS]
        print(f"| {path} | " + " | ".join(f"{result[k]:.3f}" for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
