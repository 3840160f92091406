"""The micro-world: synthetic tasks' corpus, tokenizer and the tiny base model r1lab ships."""

from pathlib import Path

DEFAULT_BASE = Path(__file__).resolve().parent.parent / "assets" / "base"
"""The shipped base model (made by `r1lab pretrain`, committed in the repo)."""

DEFAULT_STUDENT = Path(__file__).resolve().parent.parent / "assets" / "student"
"""The shipped distillation student (`r1lab pretrain preset=student`): a third of the base
model's parameters, same corpus and tokenizer."""

DEFAULT_ZERO = Path(__file__).resolve().parent.parent / "assets" / "zero-countdown"
"""The shipped R1-Zero (`r1lab zero --config configs/zero-countdown.yaml`, 60 steps from the
base; docs/coldstart.md): `r1lab coldstart`'s default R1-Zero source. Trained on countdown, it
also answers the arithmetic questions, more often in tags than the base does."""
