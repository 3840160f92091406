"""Does checking pay on a base model? The condition for reflection to be selected by RL, measured
before any RL on the samples of an `r1lab eval` run (issue 11, docs/microworld.md).

    r1lab eval model=DIR task.name=arithmetic out=/tmp/probe-arith
    python bench/reflection_probe.py /tmp/probe-arith/eval.json

Reflection can only be selected if completions that check (or search) are right more often than
those that do not, and if the checks themselves are reliable: the values a check computes and
its comparisons with the target must be right far more often than first guesses. Printed per
kind of question (`+`, `*`, `/` for arithmetic; `countdown`):

- accuracy of completions with and without a reflection phrase (and, for countdown, with and
  without a search: a `Try`),
- step reliability: the share of the arithmetic steps written inside those completions
  (`8*9+6=78`, `16 - 3 = 13`, `41 * 7 = 287`) that are right,
- comparison reliability: the share of countdown verdicts ("13 vs 11: no." / "11 vs 11: yes!",
  or candidates B-E's "13 is not 11." / "11 is 11. Yes!") and of division comparisons
  ("287 vs 294: less", or "287 is less than 294") that name the value just computed and the
  question's target, and say the right relation,
- for checkers who find the quotient's tens first by multiples compared with the dividend's
  leading digits (`85 / 9: 8*9=72 vs 85: 7 < 8, less; ...`), those comparisons apart, judged
  against the leading digits,
- first-guess accuracy (division): the share of checking completions whose first stated
  quotient is right, against their final accuracy.
- why the checks cut by the token limit stalled: checking another dividend than the question's
  (from the first try, or drifting to it in a later one), repeating a quotient already tried, or
  still walking towards it (`stall`),
- for `+` and `*`, the completions worked in columns and where each first goes wrong: `read` (a
  column's operand digits), `fact` (its value), `total` (the written digits put together, last
  written first, in `So a + b = total`), `copy` (the question restated wrong), `unfinished`.

A last row, `all`, pools every kind: the demo target "reflective completions at least as
accurate as the others" is read there, with the reflective ones that finished (not cut by the
token limit) beside it, since a cut completion scores 0 whatever its checks found. It also
counts the format failures by what they lack: cut by the token limit, else the first of
`<think>`, `</think>`, `<answer>` missing, else `other` (all there, in the wrong shape).
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from fractions import Fraction
from pathlib import Path

from r1lab.metrics import has_reflection

STEP = re.compile(
    r"(?<![\d.])(-?\d+)\s*([-+*/])\s*(\d+)(?:\s*\+\s*(\d+))?\s*=\s*(-?\d+)(?!\d|\.\d)"
)
VERDICT = re.compile(
    r"(-?\d+) (?:is not|不是) (-?\d+)|(-?\d+) (?:is|就是) (-?\d+)[.。] ?(?:Yes|对)"
    r"|(-?\d+) (?:vs|对比) (-?\d+)[:：] ?(no|yes|不对|对)"
)
COMPARISON = re.compile(
    r"(\d+) (?:vs|对比) (\d+)[:：] ?(?:[^,，]+[,，] ?)*?"
    r"(much less|much more|less|more|same|小很多|大很多|小|大|相等)"
    r"|(\d+) is (?:much )?(less|more) than (\d+)|(\d+) is (\d+)"
)
RELATION = {"小很多": "less", "大很多": "more", "小": "less", "大": "more", "相等": "same"}


def relation(x: int, y: int) -> str:
    return "less" if x < y else "more" if x > y else "same"


def comparisons_right(text: str, target: int) -> list[bool]:
    """Each comparison of a computed value with `target`: right when it names the value just
    computed (the last step before it) and the target, and states their relation."""
    out = []
    for m in COMPARISON.finditer(text):
        # Up to the compared number: W's multiples compare the step's own value (`8*9=72 vs 85`).
        before = STEP.findall(text[: m.end(1) if m.group(1) else m.start()])
        computed = int(before[-1][4]) if before else None
        if m.group(1):
            said, named = int(m.group(1)), int(m.group(2))
            rel = m.group(3).removeprefix("much ")
            rel = RELATION.get(rel, rel)
        elif m.group(4):
            said, rel, named = int(m.group(4)), m.group(5), int(m.group(6))
        else:
            said, named, rel = int(m.group(7)), int(m.group(8)), "same"
        out.append(said == computed and named == target and rel == relation(said, target))
    return out


MOVE = re.compile(
    r"(much less|much more|less|more|小很多|大很多|小|大)"
    r"(?: ?(?:by )?(\d+) = (\d+) \* (\d+))?[,，] ?(?:so|所以) (\d+) ([-+]) (\d+) = (\d+)"
)
# A later try restates the division (`Wait, 294 / 7 = 42?`) or names the guess alone (`Wait, 42?`).
NEXT_GUESS = re.compile(r"(?:Wait|等等)[,，] ?(?:\d+ / \d+ = )?(\d+)[?？]")
PAIR = re.compile(r"(\d+) (?:vs|对比) (\d+)[:：]")


def split_tens(text: str, a: int, b: int) -> tuple[str, str]:
    """(head, body) of a division completion: the head finds the quotient's tens before the
    first guess at `a / b` (`85 / 9: 8*9=72 vs 85: 7 < 8, less; ...`, candidate W's multiples,
    compared with the leading digits `a // 10`, not with `a`); the body guesses and checks."""
    m = re.search(rf"{a} / {b} = \d+", text)
    return (text[: m.start()], text[m.start() :]) if m else ("", text)


def moves_right(text: str) -> list[bool]:
    """Each move of a checker after a comparison ("less, so 78 + 1 = 79."): right when it goes
    the way the comparison says (less: up, more: down), by ten exactly when it says "much", else
    by one or, for a writer who moves by the gap ("less by 18 = 3 * 6, so 25 + 3 = 28."), by the
    gap between the two numbers compared just before, in divisors; with the addition right, and
    the next try guessing the number it arrived at."""
    out = []
    for m in MOVE.finditer(text):
        rel = RELATION.get(m.group(1), m.group(1))
        much = m.group(1).startswith("much") or m.group(1) in ("小很多", "大很多")
        q, sign, step, new = int(m.group(5)), m.group(6), int(m.group(7)), int(m.group(8))
        if m.group(2):  # by the gap: it must be the distance of the pair just compared
            pairs = PAIR.findall(text[: m.start()])
            gap, k, b = (int(m.group(i)) for i in (2, 3, 4))
            x, y = map(int, pairs[-1]) if pairs else (0, -1)
            size_ok = not much and gap == abs(x - y) and k * b == gap and step == k
        else:
            size_ok = step == (10 if much else 1)
        ok = size_ok and sign == ("+" if rel.endswith("less") else "-")
        ok = ok and new == (q + step if sign == "+" else q - step)
        nxt = NEXT_GUESS.search(text, m.end())
        out.append(ok and (nxt is None or int(nxt.group(1)) == new))
    return out


def step_right(x: str, op: str, y: str, c: str, v: str) -> bool:
    a, b = Fraction(int(x)), Fraction(int(y))
    if op == "/" and b == 0:
        return False
    value = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else 0}[op] + int(c or 0)
    return value == int(v)


COLUMN = re.compile(r"(\d)([+*])(\d)(?:\+(\d))?=(\d+)")
SO = re.compile(r"(?:So|所以) (\d+) ([+*]) (\d+) = (\d+)")


def first_error(a: int, op: str, b: int, text: str) -> str | None:
    """Where a worked `a op b` (columns, then `So a op b = total`) first goes wrong: `read` (a
    column's operand digits), `fact` (its value), `total` (the written digits put together, last
    written first), `copy` (the question restated wrong), `unfinished`; None when all are right
    and "" when the text does not work in columns."""
    steps = list(COLUMN.finditer(text))
    if not steps:
        return ""
    width = max(len(str(a)), len(str(b))) if op == "+" else len(str(a))
    digits_a, digits_b = str(a)[::-1].ljust(width, "0"), str(b)[::-1].ljust(width, "0")
    carry, written = 0, []
    for k in range(width):
        if k >= len(steps):
            return "unfinished"
        x, sign, y, c, value = steps[k].groups()
        if (x, sign, y) != (digits_a[k], op, digits_b[k] if op == "+" else str(b)):
            return "read"
        right = int(x) + int(y) + carry if op == "+" else int(x) * b + carry
        if int(value) != right or int(c or 0) != carry:
            return "fact"
        carry = right // 10
        written.append(str(right) if k == width - 1 else str(right % 10))
    so = SO.search(text, steps[width - 1].end())
    if not so:
        return "unfinished"
    if (int(so.group(1)), so.group(2), int(so.group(3))) != (a, op, b):
        return "copy"
    return None if so.group(4) == "".join(reversed(written)) else "total"


def stall(a: int, b: int, text: str) -> str:
    """Why a division check ran out of tokens: a try restates another dividend than the
    question's, so no quotient can match: from the first try (`other dividend`: `354 / 4 = 89?`
    for 88 / 4) or in a later one (`dividend drifts`: `736 / 8 = 85? ... Wait, 746 / 8 = 86?`);
    else it tries a quotient it already tried (`repeats`), else it is still walking (`walk`).
    A check whose later tries name the guess alone (`Wait, 86?`) drifts in its comparisons
    (`688 vs 746`)."""
    asked = [int(x) for x in re.findall(rf"(\d+) / {b} = \d+[?？]", text)]
    compared = [int(y) for _, y in PAIR.findall(split_tens(text, a, b)[1])]
    if set(asked) - {a}:
        return "dividend drifts" if asked[0] == a else "other dividend"
    if set(compared) - {a}:
        return "dividend drifts"
    tried = re.findall(rf"(\d+) \* {b} = \d+", text)  # `So 89 * 4 = 356.`, not `9*4=36`
    return "repeats" if len(set(tried)) < len(tried) else "walk"


def kind_of(question: str) -> str:
    m = re.search(r"\d+ ([-+*/]) \d+", question)
    return m.group(1) if m and ("Compute" in question or "计算" in question) else "countdown"


def main(paths: list[str]) -> None:
    rows: dict[str, list[dict]] = defaultdict(list)
    for path in paths:
        for record in json.loads(Path(path).read_text())["samples"]:
            for s in record["samples"]:
                rows[kind_of(record["question"])].append({**s, "question": record["question"]})
    print(
        "| kind | samples | acc. reflective (n) | acc. other (n) | steps right in reflective "
        "| steps right in other | extra |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")

    def acc(group: list[dict]) -> str:
        if not group:
            return "- (0)"
        return f"{sum(s['correct'] for s in group) / len(group):.1%} ({len(group)})"

    def steps(group: list[dict]) -> str:
        found = [step_right(*m) for s in group for m in STEP.findall(s["text"])]
        return f"{sum(found) / len(found):.1%} of {len(found)}" if found else "-"

    for kind, samples in sorted(rows.items()):
        refl = [s for s in samples if has_reflection(s["text"])]
        other = [s for s in samples if not has_reflection(s["text"])]
        extra = ""
        if kind in ("+", "*"):
            # A base that cannot put the written digits together into the total writes every
            # column right and still answers wrong (V's second pretraining draw).
            errors = defaultdict(int)
            for s in samples:
                a, b = map(int, re.findall(rf"(\d+) \{kind} (\d+)", s["question"])[0])
                errors[first_error(a, kind, b, s["text"])] += 1
            worked = sum(n for e, n in errors.items() if e != "")
            if worked:
                wrong = ", ".join(f"{e} {n}" for e, n in sorted(errors.items(), key=str) if e)
                extra = f"worked in columns {worked}: all right {errors[None]}"
                extra += f", first error: {wrong or 'none'}"
        if kind == "/":
            # A division check is a comparison of a product with the dividend, whether or not
            # the completion says a reflection phrase (a first guess that is right needs none).
            def parts(s: dict) -> tuple[int, int, str, str]:
                a, b = map(int, re.findall(r"(\d+) / (\d+)", s["question"])[0])
                return (a, b, *split_tens(s["text"], a, b))

            split = [(s, *parts(s)) for s in samples]  # (sample, a, b, tens head, body)
            checks = [row for row in split if COMPARISON.search(row[4])]
            checking = [s for s, *_ in checks]
            guessing = [s for s, *_, body in split if not COMPARISON.search(body)]
            moves = [ok for s in checking for ok in moves_right(s["text"])]
            cut = [s["finish"] == "length" for s in checking]
            extra = f"checking acc. {acc(checking)}, not checking {acc(guessing)}"
            if moves:
                extra += f", moves right {sum(moves) / len(moves):.1%} of {len(moves)}"
            if cut:
                extra += f", checks cut by the token limit {sum(cut) / len(cut):.1%}"
                tries = sum(len(COMPARISON.findall(body)) for *_, body in checks) / len(checks)
                extra += f", tries per check {tries:.1f}"
                stalls = Counter(
                    stall(a, b, s["text"]) for s, a, b, *_ in checks if s["finish"] == "length"
                )
                if stalls:
                    extra += " (" + ", ".join(f"{k} {n}" for k, n in sorted(stalls.items())) + ")"
            firsts = []
            for s, a, b, _, _ in checks:
                guess = re.search(rf"{a} / {b} = (\d+)", s["text"])
                if guess:
                    firsts.append(int(guess.group(1)) * b == a)
            if firsts:
                extra += f", first guess right {sum(firsts) / len(firsts):.1%} of {len(firsts)}"
            compared = [ok for _, a, _, _, body in checks for ok in comparisons_right(body, a)]
            if compared:
                extra += (
                    f", comparisons right {sum(compared) / len(compared):.1%} of {len(compared)}"
                )
            # Candidate W's tens: each multiple compared with the leading digits.
            tens = [ok for _, a, _, head, _ in split for ok in comparisons_right(head, a // 10)]
            if tens:
                extra += f", tens comparisons right {sum(tens) / len(tens):.1%} of {len(tens)}"
        if kind == "countdown":
            search = [s for s in samples if re.search(r"Try |试 ", s["text"])]
            plain = [s for s in samples if s not in search]
            verdicts = []
            for s in search:
                target = int(re.findall(r"\d+", s["question"])[-1])
                text = s["text"]
                for m in VERDICT.finditer(text):
                    # A verdict is right when it names the candidate's computed value (the last
                    # step before it) and says "not" exactly when that value misses the target.
                    before = STEP.findall(text[: m.start()])
                    computed = int(before[-1][4]) if before else None
                    if m.group(1):
                        said, hit, name = int(m.group(1)), False, m.group(2)
                    elif m.group(3):
                        said, hit, name = int(m.group(3)), True, m.group(4)
                    else:
                        said, hit, name = int(m.group(5)), m.group(7) in ("yes", "对"), m.group(6)
                    named = int(name) == target
                    verdicts.append(said == computed and named and hit == (computed == target))
            verdict = f"{sum(verdicts) / len(verdicts):.1%} of {len(verdicts)}" if verdicts else "-"
            extra = (
                f"search acc. {acc(search)}, no search {acc(plain)}, "
                f"search steps right {steps(search)}, verdicts right {verdict}"
            )
        print(
            f"| {kind} | {len(samples)} | {acc(refl)} | {acc(other)} | {steps(refl)} "
            f"| {steps(other)} | {extra} |"
        )
    everything = [s for samples in rows.values() for s in samples]
    refl = [s for s in everything if has_reflection(s["text"])]
    other = [s for s in everything if not has_reflection(s["text"])]
    finished = [s for s in refl if s["finish"] != "length"]
    failed = defaultdict(int)  # format failures by their first missing piece
    for s in everything:
        if not s.get("format", True):
            text = s["text"]
            missing = [tag for tag in ("<think>", "</think>", "<answer>") if tag not in text]
            cut = s["finish"] == "length"
            failed["cut" if cut else f"no {missing[0]}" if missing else "other"] += 1
    shape = ", ".join(f"{k} {n}" for k, n in sorted(failed.items()))
    print(
        f"| all | {len(everything)} | {acc(refl)} | {acc(other)} | {steps(refl)} "
        f"| {steps(other)} | reflective that finished: acc. {acc(finished)}, "
        f"cut by the token limit {1 - len(finished) / max(len(refl), 1):.1%}, "
        f"format failures {sum(failed.values())}: {shape or 'none'} |"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
