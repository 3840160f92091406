"""The micro-world's internet: the synthetic corpus the micro-world base model is pretrained on.

It is built to make a base model like a real one before RL, honestly so: the corpus never sees a
reward, the held-out test questions, or any signal about which way of answering is rewarded.
What it does contain is the variety of a real corpus, so that R1-Zero's phenomena *can* emerge:

- **Framings.** The R1-Zero template appears only in some documents, some of them with paraphrased
  instructions, and is answered in the tag format only part of the time; other documents are
  Q/A pages, worksheets and bare equations. A base model therefore follows the format sometimes.
- **Solution styles.** Most writers guess (often wrongly, as people on the internet do), some work
  step by step (careless ones slip now and then), and a few check their work and correct
  themselves ("Wait, ..." / "Let me check: ..."). Countdown writers search: try, fail, try again.
- **Noise.** Guessed answers are often wrong; careless step-by-step writers make slips that carry
  through to a wrong final answer.
- **Drill pages.** Times tables and column sums (`8*9+6=78`), the facts column arithmetic is
  made of, with no question attached.

The mix is in `CorpusConfig`; every document is drawn from a seeded RNG, so the corpus is a pure
function of its config.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, fields

from r1lab.tasks import arithmetic, countdown
from r1lab.tasks.base import R1_ZERO_TEMPLATE
from r1lab.tasks.splits import in_split

# Paraphrases of the R1-Zero instruction that a real corpus would hold beside the original.
TEMPLATE_VARIANTS = (
    R1_ZERO_TEMPLATE,
    "A dialogue between a User and an Assistant. The Assistant reasons first and then answers. "
    "The reasoning goes inside <think> </think> and the answer inside <answer> </answer>. "
    "User: {prompt}. Assistant:",
    "The following is a conversation. The user asks a question, and the Assistant solves it, "
    "thinking before answering, with the thoughts in <think> </think> tags and the answer in "
    "<answer> </answer> tags. User: {prompt}. Assistant:",
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. User: {prompt}. Assistant:",
)

# What a guesser writes before answering, and how often: most write nothing at all.
GUESS_OPENERS = ("", "This is easy.", "I know this one.", "Quick mental math.", "Let me think.")
GUESS_OPENER_WEIGHTS = (0.7, 0.1, 0.08, 0.06, 0.06)


@dataclass(frozen=True)
class CorpusConfig:
    """The mix of the micro-world's internet. Shares need not sum to one; they are weights."""

    seed: int = 0
    """Seed of the document RNG; the corpus is a pure function of this config."""
    countdown_share: float = 0.35
    """Share of countdown documents; the rest are arithmetic."""
    template_share: float = 0.45
    """Share of documents framed with the R1-Zero template or one of its paraphrases."""
    exact_template_share: float = 0.6
    """Among templated documents, the share that uses the report's exact wording."""
    tags_given_template: float = 0.5
    """Among templated documents, the share answered in the <think>/<answer> tag format."""
    guess_share: float = 0.7
    """Writers who answer at once."""
    step_share: float = 0.18
    """Writers who work step by step (careless: they slip at `slip_rate`)."""
    reflect_share: float = 0.12
    """Writers who check their work and fix their slips."""
    guess_accuracy: float = 0.3
    """How often a guessed answer is right."""
    slip_rate: float = 0.2
    """Chance that a careless step-by-step writer makes one slip, carried to the answer."""
    max_tries: int = 4
    """Countdown search: at most this many failed tries before the solution."""
    fact_share: float = 0.15
    """Share of drill pages (times tables, column sums): facts without any question."""

    def validate(self) -> None:
        from r1lab.config import ensure

        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in ("seed", "max_tries"):
                ensure(0 <= value <= 1, f.name, "in [0, 1]", value)
        ensure(self.max_tries >= 0, "max_tries", ">= 0", self.max_tries)
        shares = self.guess_share + self.step_share + self.reflect_share
        ensure(shares > 0, "guess_share", "> 0 when step_share and reflect_share are 0", 0)


def _opener(rng: random.Random) -> str:
    return rng.choices(GUESS_OPENERS, GUESS_OPENER_WEIGHTS)[0]


def _perturb(value: int, rng: random.Random) -> int:
    """A plausible wrong answer: off by a carry, a digit, or a small amount."""
    choice = rng.random()
    if choice < 0.4:
        wrong = value + rng.choice([-100, -10, 10, 100])
    elif choice < 0.7:
        wrong = value + rng.choice([-2, -1, 1, 2])
    else:
        digits = list(str(value))
        i = rng.randrange(len(digits))
        digits[i] = str((int(digits[i]) + rng.randint(1, 9)) % 10)
        wrong = int("".join(digits))
    return wrong if wrong != value and wrong >= 0 else value + 1


# ---------------------------------------------------------------------------------------------
# Arithmetic solutions


def _add_steps(a: int, b: int) -> list[tuple[str, int, int]]:
    """Column addition, right to left: (written step, digit written, carry out) per column."""
    da, db = str(a)[::-1], str(b)[::-1]
    steps, carry = [], 0
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        total = x + y + carry
        expr = f"{x}+{y}+{carry}" if carry else f"{x}+{y}"
        steps.append((expr, total, carry))
        carry = total // 10
    return steps


def _mul_steps(a: int, b: int) -> list[tuple[str, int, int]]:
    da = str(a)[::-1]
    steps, carry = [], 0
    for ch in da:
        total = int(ch) * b + carry
        expr = f"{ch}*{b}+{carry}" if carry else f"{ch}*{b}"
        steps.append((expr, total, carry))
        carry = total // 10
    return steps


def _arith_trace(p: arithmetic.Problem, style: str, cfg: CorpusConfig, rng: random.Random):
    """(reasoning text, final answer) for one arithmetic problem in a writer's style."""
    if style == "guess":
        answer = p.result if rng.random() < cfg.guess_accuracy else _perturb(p.result, rng)
        return _opener(rng), answer
    steps = _add_steps(p.a, p.b) if p.op == "+" else _mul_steps(p.a, p.b)
    slip_at = rng.randrange(len(steps)) if rng.random() < cfg.slip_rate else -1
    if style == "reflect" and slip_at < 0 and rng.random() < 0.5:
        slip_at = rng.randrange(len(steps))
    parts, digits = [], []
    last = len(steps) - 1
    for i, (expr, total, _) in enumerate(steps):
        shown = total
        if i == slip_at:
            shown = total + rng.choice([-1, 1]) if total > 0 else total + 1
        written = str(shown) if i == last else str(shown % 10)
        carry_txt = f" carry {shown // 10}" if i != last and shown >= 10 else ""
        parts.append(f"{expr}={shown}, write {written}{carry_txt}.")
        if i == slip_at and style == "reflect":
            # The careful writer notices the slip at once and redoes the column.
            fix_written = str(total) if i == last else str(total % 10)
            fix_carry = f" carry {total // 10}" if i != last and total >= 10 else ""
            parts.append(f"Wait, {expr}={total}, not {shown}. Write {fix_written}{fix_carry}.")
            shown = total
        elif i == slip_at:
            total = shown  # the careless writer carries the slip through
        digits.append(str(total) if i == last else str(total % 10))
    answer = int("".join(reversed(digits)))
    parts.append(f"So {p.a} {p.op} {p.b} = {answer}.")
    if style == "reflect" and rng.random() < 0.5:
        checks = ", ".join(f"{expr}={total}" for expr, total, _ in steps)
        parts.append(f"Let me check: {checks}. Correct.")
    return " ".join(parts), answer


# ---------------------------------------------------------------------------------------------
# Countdown solutions


def _eval_steps(order: list[int], ops: list[str]) -> tuple[str, list[str], int]:
    """Left-to-right evaluation of a candidate: (expression, written steps, value)."""
    expr, value, steps = str(order[0]), order[0], []
    for n, op in zip(order[1:], ops, strict=True):
        new = value + n if op == "+" else value - n if op == "-" else value * n
        steps.append(f"{value} {op} {n} = {new}")
        expr = f"({expr}) {op} {n}" if op == "*" and " " in expr else f"{expr} {op} {n}"
        value = new
    return expr, steps, value


def _random_candidate(numbers: tuple[int, ...], rng: random.Random):
    order = list(numbers)
    rng.shuffle(order)
    ops = [rng.choice("+-*") for _ in order[1:]]
    return _eval_steps(order, ops)


def _countdown_trace(p: countdown.Problem, style: str, cfg: CorpusConfig, rng: random.Random):
    if style == "guess":
        if rng.random() < cfg.guess_accuracy:
            return _opener(rng), p.solution
        expr, _, value = _random_candidate(p.numbers, rng)
        return _opener(rng), expr
    parts = []
    for _ in range(rng.randint(0, cfg.max_tries)):
        expr, steps, value = _random_candidate(p.numbers, rng)
        if value == p.target:
            break
        parts.append(f"Try {expr}: {', '.join(steps)}, not {p.target}.")
    solution_expr, steps, _ = _eval_steps(*_solution_order(p))
    if style == "reflect" and rng.random() < 0.5 and parts:
        # A premature "yes" caught on re-checking.
        wrong = parts.pop()
        claimed = wrong.replace(f", not {p.target}.", f". Yes, {p.target}!")
        value = wrong.split(", not")[0].rsplit("= ", 1)[-1]
        parts.append(f"{claimed} Wait, that gives {value}, not {p.target}.")
    parts.append(f"Try {solution_expr}: {', '.join(steps)}. Yes, {p.target}!")
    if style == "reflect":
        parts.append(f"Let me check: {', '.join(steps)}. Correct.")
    return " ".join(parts), solution_expr


def _solution_order(p: countdown.Problem) -> tuple[list[int], list[str]]:
    """Recover the construction's number order and operators from its written expression."""
    tokens = p.solution.replace("(", "").replace(")", "").split()
    return [int(t) for t in tokens[::2]], tokens[1::2]


# ---------------------------------------------------------------------------------------------
# Documents


def _frame(question: str, reasoning: str, answer: str, cfg: CorpusConfig, rng: random.Random):
    """Wrap a solution in one of the corpus's framings."""
    if rng.random() < cfg.template_share:
        exact = rng.random() < cfg.exact_template_share
        template = TEMPLATE_VARIANTS[0] if exact else rng.choice(TEMPLATE_VARIANTS[1:])
        head = template.format(prompt=question)
        if rng.random() < cfg.tags_given_template:
            think = f"<think> {reasoning} </think>" if reasoning else "<think> </think>"
            return f"{head} {think} <answer> {answer} </answer>"
        tail = f"{reasoning} The answer is {answer}." if reasoning else f"The answer is {answer}."
        return f"{head} {tail}"
    kind = rng.random()
    lead = f"{reasoning} " if reasoning else ""
    if kind < 0.4:
        return f"Q: {question}?\nA: {lead}The answer is {answer}."
    if kind < 0.75:
        return f"Problem: {question}.\nSolution: {lead}\nAnswer: {answer}"
    return f"{question}. {lead}Answer: {answer}."


def _style(cfg: CorpusConfig, rng: random.Random) -> str:
    return rng.choices(
        ("guess", "step", "reflect"), (cfg.guess_share, cfg.step_share, cfg.reflect_share)
    )[0]


def _fact_sheet(rng: random.Random, n: int = 16) -> str:
    """A drill page: the one-digit facts that column arithmetic is made of, no questions."""
    facts = []
    for _ in range(n):
        x, y, c = rng.randint(0, 9), rng.randint(2, 9), rng.randint(0, 8)
        kind = rng.random()
        if kind < 0.4:
            facts.append(f"{x}*{y}+{c}={x * y + c}" if c else f"{x}*{y}={x * y}")
        elif kind < 0.6:
            facts.append(f"{x}*{y}={x * y}")
        else:
            c = rng.randint(0, 1)
            facts.append(f"{x}+{y}+{c}={x + y + c}" if c else f"{x}+{y}={x + y}")
    return rng.choice(("Practice: ", "Drill. ", "")) + ", ".join(facts) + "."


def documents(cfg: CorpusConfig, n: int) -> Iterator[str]:
    """`n` corpus documents. Test-split questions of both tasks never appear."""
    rng = random.Random(f"corpus/{cfg.seed}")
    arith = arithmetic.ArithmeticTask()
    count = countdown.CountdownTask()
    for _ in range(n):
        if rng.random() < cfg.fact_share:
            yield _fact_sheet(rng)
            continue
        style = _style(cfg, rng)
        if rng.random() < cfg.countdown_share:
            p = count.sample(rng, "train")
            reasoning, answer = _countdown_trace(p, style, cfg, rng)
        else:
            p = arith.sample(rng, "train")
            reasoning, answer = _arith_trace(p, style, cfg, rng)
        assert in_split(p.question, "train")
        yield _frame(p.question, reasoning, str(answer), cfg, rng)
