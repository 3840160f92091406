"""The micro-world's internet: the synthetic corpus the micro-world base models are pretrained on.

It is built to make a base model like a real one before RL, honestly so: the corpus never sees a
reward, the held-out test questions, or any signal about which way of answering is rewarded.
What it does contain is the variety of a real corpus, so that R1-Zero's phenomena *can* emerge:

- **Framings.** The R1-Zero template appears only in some documents, some of them with paraphrased
  instructions, and is answered in the tag format only part of the time; other documents are
  Q/A pages, worksheets and bare equations. A base model therefore follows the format sometimes.
- **Writers.** Most guess (often wrongly, as people on the internet do); some work step by step
  and are careless (a slip now and then, carried to the answer); a few check their work, whether
  or not they slipped: they recompute every column afresh after the first pass, and the check
  catches every slip ("Wait, 8*9+6=78, not 77"). They are careful: they slip less.
- **Inverse problems.** This world has no long division: who works on `294 / 7` (35% of the
  writers; the rest guess) guesses the quotient and checks it by multiplying back, which is
  easier than dividing and independent of how the guess was made; compares the product with the
  dividend side by side, a match included ("294 vs 294: 2 = 2, 9 = 9, 4 = 4, same, so 42 is
  right.", the relation decided by one-digit facts from the left); and moves the guess by an
  explicit addition, one up or down, or ten when the product is far off ("less, so 41 + 1 =
  42. Wait, 294 / 7 = 42?"), until the product matches; or, for a share of them
  (`gap_move_share`), near the dividend, by the gap in divisors at once ("less by 14 = 2 * 7, so
  40 + 2 = 42."). A share of checkers (`tens_first_share`) first divides the leading digits,
  a fact with a remainder that gives the quotient's tens ("29 / 7 = 4 r 1."), and guesses the
  units in the middle ("294 / 7 = 45?"), so their walk is at most six tries; some of them
  (`tens_slip_rate`) slip on that fact and recover with one move by ten; or, at
  `tens_by_multiples`, find the tens by the divisor's multiples compared with the leading digits
  ("29 / 7: 4*7=28 < 29, 5*7=35 > 29, so 4."), where a slipped first try is corrected. Each
  try opens by restating the dividend with its guess (or, at `short_retry_share`, a later try
  by the guess alone: "Wait, 42?") and is as short as its facts allow (~60 tokens), so that
  two or three fit in a rollout; the comparison never writes one number twice by rule (a model
  can copy the nearest number and be right whenever "294 is 294" is right, so it learns nothing
  from a match). The first guess is genuinely uncertain (right 40% of the
  time, else off by 1 to 3 or by ten).
- **Verification pages.** Exercises with no question of any task: "Does 41 * 7 make 294?" worked
  by multiplying back and comparing ("287 vs 294: 2 = 2, 8 < 9, less, no.", or the move a
  checker would make next: "less, so 41 + 1 = 42."), and "Does 4 + 12 - 3 make 11?" worked
  step by step, where the claimed number is often far from the computed one,
  so that a reader has to copy it rather than predict it from the product.
- **Search.** Countdown writers who work try candidates one at a time: compute it step by step,
  compare it with the target ("13 vs 11: no." / "11 vs 11: yes!"), back off, try another.
- **Languages.** Some documents are wholly in Chinese (question and worked solution); some writers
  of English documents switch to Chinese mid-solution, as multilingual web text does.
- **General requests.** Conversations with no rule to grade them (greetings, lists, rewrites,
  facts of the micro-world, harmful requests and harmless look-alikes), answered well and badly:
  `r1lab.microworld.general`.
- **Drill pages.** The facts the working is made of, with no question attached: one-digit column
  facts (`8*9+6=78`), the step operations of countdown search (`16 - 3 = 13`), a checker's moves
  (`41 + 1 = 42`) and comparisons of nearby numbers decided digit by digit (`287 vs 294: 2 = 2,
  8 < 9, less`).

The mix is in `CorpusConfig`; every document is drawn from a seeded RNG, so the corpus is a pure
function of its config.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
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

# The words of a worked solution, per language. A mixed writer switches table mid-solution.
PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "column": "{expr}={total}, write {written}{carry}.",
        "carry": " carry {c}",
        "so": "So {a} {op} {b} = {value}.",
        "check": "Let me check:",
        "recheck": "{expr}={total}",
        "sep": ", ",
        "end": ".",
        "caught": "{expr}={total}. Wait, {expr}={total}, not {wrong}",
        "correct": "Correct.",
        "guess_div": "{a} / {b} = {q}?",
        "tens": "{lead} / {b} = {t} r {r}.",
        "tens_by": "{lead} / {b}: {steps}, so {t}.",
        "semi": "; ",
        "cmp_low": "{p} vs {a}: {digits}, less",
        "cmp_high": "{p} vs {a}: {digits}, more",
        "cmp_much_low": "{p} vs {a}: {digits}, much less",
        "cmp_much_high": "{p} vs {a}: {digits}, much more",
        "cmp_same": "{p} vs {a}: {digits}, same",
        "width": "{x} digits {rel} {y} digits",
        "move": ", so {q} {sign} {step} = {new}.",
        "gap": " by {gap} = {step} * {b}",
        "same": ", so {q} is right.",
        "verify": "Does {q} * {b} make {a}?",
        "verify_try": "Does {expr} make {target}?",
        "no": ", no.",
        "yes": ", yes.",
        "wait_div": "Wait, {a} / {b} = {q}?",
        "wait_guess": "Wait, {q}?",
        "answer": "The answer is {answer}.",
        "try": "Try {expr}: {steps}.",
        "miss": "{value} vs {target}: no.",
        "hit": "{value} vs {target}: yes!",
        "lang": "en",
    },
    "zh": {
        "column": "{expr}={total}，写 {written}{carry}。",
        "carry": " 进 {c}",
        "so": "所以 {a} {op} {b} = {value}。",
        "check": "检查一下：",
        "recheck": "{expr}={total}",
        "sep": "，",
        "end": "。",
        "caught": "{expr}={total}。等等，{expr}={total}，不是 {wrong}",
        "correct": "正确。",
        "guess_div": "{a} / {b} = {q}？",
        "tens": "{lead} / {b} = {t} 余 {r}。",
        "tens_by": "{lead} / {b}：{steps}，所以 {t}。",
        "semi": "；",
        "cmp_low": "{p} 对比 {a}：{digits}，小",
        "cmp_high": "{p} 对比 {a}：{digits}，大",
        "cmp_much_low": "{p} 对比 {a}：{digits}，小很多",
        "cmp_much_high": "{p} 对比 {a}：{digits}，大很多",
        "cmp_same": "{p} 对比 {a}：{digits}，相等",
        "width": "{x} 位 {rel} {y} 位",
        "move": "，所以 {q} {sign} {step} = {new}。",
        "gap": " {gap} = {step} * {b}",
        "same": "，所以 {q} 是对的。",
        "verify": "{q} * {b} 等于 {a} 吗？",
        "verify_try": "{expr} 等于 {target} 吗？",
        "no": "，不对。",
        "yes": "，对。",
        "wait_div": "等等，{a} / {b} = {q}？",
        "wait_guess": "等等，{q}？",
        "answer": "答案是 {answer}。",
        "try": "试 {expr}：{steps}。",
        "miss": "{value} 对比 {target}：不对。",
        "hit": "{value} 对比 {target}：对！",
        "lang": "zh",
    },
}

# What a guesser writes before answering, and how often: most write nothing at all.
GUESS_OPENERS = {
    "en": ("", "This is easy.", "I know this one.", "Quick mental math.", "Let me think."),
    "zh": ("", "这很简单。", "我知道。", "心算一下。", "想一想。"),
}
GUESS_OPENER_WEIGHTS = (0.7, 0.1, 0.08, 0.06, 0.06)

Phrases = Callable[[int], dict[str, str]]
"""The phrase table a writer uses for the i-th sentence of a solution."""


@dataclass(frozen=True)
class CorpusConfig:
    """The mix of the micro-world's internet. Shares need not sum to one; they are weights."""

    seed: int = 0
    """Seed of the document RNG; the corpus is a pure function of this config."""
    countdown_share: float = 0.3
    """Share of countdown documents among the task documents; the rest are arithmetic."""
    division_share: float = 0.3
    """Share of division problems among the arithmetic documents (the rest: + and *)."""
    template_share: float = 0.45
    """Share of documents framed with the R1-Zero template or one of its paraphrases."""
    exact_template_share: float = 0.6
    """Among templated documents, the share that uses the report's exact wording."""
    tags_given_template: float = 0.5
    """Among templated documents, the share answered in the <think>/<answer> tag format."""
    tags_given_guess: float | None = None
    """Among templated documents whose writer guesses (no working, at most an opener), the
    share answered in the tag format; None: `tags_given_template`, as for everyone. The format
    asks for the reasoning inside `<think>`; a writer with none to show uses it less."""
    guess_share: float = 0.7
    """Writers who answer at once."""
    step_share: float = 0.25
    """Writers who work step by step (careless: they slip at `slip_rate`). On division, where
    this world has no step-by-step recipe, whoever works guesses the quotient and checks it."""
    reflect_share: float = 0.05
    """Writers who check their work (independently of it) and fix what the check catches."""
    guess_accuracy: float = 0.3
    """How often a guessed answer is right."""
    guess_opener_share: float = 0.3
    """Guessers who write a few words before the answer ("This is easy."); the rest write
    nothing (inside the tag format: an empty `<think> </think>`)."""
    slip_rate: float = 0.2
    """Chance that a careless step-by-step writer makes one slip, carried to the answer."""
    careful_slip_rate: float = 0.1
    """Chance that a checker slips in the first pass (the check always catches it)."""
    check_guess_accuracy: float = 0.4
    """How often a checker's first guess at a quotient is right (else as a guesser misses: off
    by 1 to 3, or by ten)."""
    check_guess_spread: int = 3
    """How far a checker's near miss at a quotient lands: off by 1 to this many."""
    max_tries: int = 4
    """Countdown search: at most this many failed tries before the solution."""
    gap_move_share: float = 0.0
    """Share of division checkers (and of verification items that end with a move) who, when the
    product is near the dividend (under `far_divisors`), move the guess by the gap at once ("375
    vs 365: 3 = 3, 7 > 6, more by 10 = 2 * 5, so 75 - 2 = 73.") instead of one at a time; the
    others step by one. Far off, everyone moves by ten."""
    mid_guess_share: float = 0.0
    """Share of division checkers whose first guess is the middle of the tens they take the
    quotient to be in ("365 / 5 = 75?" for 73): the tens right 90% of the time, else one ten up
    or down; the units always 5, so a walk by ones from it is at most five tries (the others
    guess at `check_guess_accuracy`)."""
    tens_first_share: float = 0.0
    """Share of division checkers who first find the quotient's tens by dividing the dividend's
    leading digits, a fact with a remainder ("29 / 7 = 4 r 1."), and guess the units in the
    middle ("294 / 7 = 45?"), then walk by ones: at most six tries, 3.5 on average, where a
    guess anywhere in the tens and hundreds takes 4-5 and can run past a rollout's budget.
    Drill pages then practise those facts too. The units stay a guess."""
    tens_slip_rate: float = 0.0
    """Chance that a tens-first checker slips on the tens fact, writing the quotient digit one
    off ("73 / 8 = 8 r 1." for 9 r 1; one low three times in four, as candidate R2's trained
    policy did in 56 of its 74 wrong tens facts), and guesses the middle of that wrong ten. Six
    or more divisors off, the product is "much" less or more (with `far_divisors` at 6) and the
    checker recovers with one move by ten, so the ten-move appears where a wrong tens fact
    needs it. The slips are imitated on top of the model's own: at 0.2 (candidate S) the base
    got 41.5% of its tens facts wrong where R2's got 19.5%, so keep the rate low."""
    tens_by_multiples: float = 0.0
    """Share of tens-first checkers who find the tens by the divisor's multiples instead of a
    division fact: from a first try at the digit (slipped at `tens_slip_rate`), each multiple
    compared with the leading digits, up or down until they lie between two ("29 / 7: 4*7=28 <
    29, 5*7=35 > 29, so 4."). Every link is a times-table fact or a two-digit comparison, the
    most practised operations in this world, where the division fact with a remainder is one
    memory per pair (396 of them) that candidate T's trained policy got wrong in 27% of
    its checks, each a walk by ones through a whole ten. A slipped first try is corrected by the
    multiples themselves, so the tens they end on are always right."""
    tens_by_digits: float = 0.0
    """Share of those who compare each multiple with the leading digits digit by digit, as a
    product is compared with the dividend ("85 / 9: 8*9=72 vs 85: 7 < 8, less; 9*9=81 vs 85: 8
    = 8, 1 < 5, less; 10*9=90 vs 85: 9 > 8, more, so 9."), instead of by one sign ("9*9=81 <
    85"): candidate V's trained policy got the sign wrong in 7% of its comparisons, the same
    few over and over ("8*7=56 = 66", "9*9=81 > 85", "8*8=64 = 73"), as if the sign were
    recalled rather than read, and a wrong sign nearly always cost the check."""
    tens_drill_share: float = 0.2
    """Where tens-first checkers exist, the share of the column-fact drill slots given to their
    tens facts (`29 / 7 = 4 r 1`); the moves drill gives them 0.6 of its slots."""
    far_divisors: int = 10
    """A product this many divisors or more from the dividend is "much" less or more, and the
    checker moves the guess by ten. Ten suits a guess off by 1-3 or by ten; six suits
    tens-first checkers, whose middle guess is at most five divisors off when the tens they
    found are right and six or more when they are not, so a wrong tens costs one move instead
    of a walk by ones through a whole ten. At least 6, so that a move by ten never lands six or
    more off on the other side (which would move it back by ten, for ever)."""
    step_product_share: float = 0.0
    """Share of division checkers who, after moving a guess by one, get its product from the
    last one by adding or taking away the divisor ("Wait, 365 / 5 = 74? 375 - 5 = 370.")
    instead of multiplying again; a try then costs ~35 tokens instead of ~60. Drill pages then
    practise these steps too (`287 + 7 = 294`)."""
    short_retry_share: float = 0.0
    """Share of division checkers whose later tries name only the new guess ("Wait, 42?")
    instead of restating the division ("Wait, 294 / 7 = 42?"): the dividend is written once,
    in the first try, and every comparison reads it from there or from the comparison before.
    A restatement is one more copy of the dividend that can go wrong: of the 78 checks that
    ran out of tokens in a trained policy of candidate V (seed 2, step 30), 18 restated a
    drifted dividend in a later try (`736 / 8 = 85? ... Wait, 746 / 8 = 86?`), after which no
    quotient can match."""
    division_work_share: float = 0.35
    """Share of division problems worked out (the quotient guessed and checked by multiplying
    back); the rest are guessed. Kept apart from the forward-arithmetic styles so that checking
    stays a habit of a minority on division questions; `verify_share` holds its practice."""
    fact_share: float = 0.15
    """Share of drill pages: facts without any question."""
    verify_share: float = 0.12
    """Share of verification pages: "Is 41 * 7 = 294?" worked out by multiplying back and
    comparing ("287 vs 294: 2 = 2, 8 < 9, less, no." or the move: "less, so 41 + 1 = 42."), and
  "Does 4 + 12 - 3 make 11?" worked out
    step by step, with claims that are right 40% of the time and otherwise near, ten off or
    anything, so that the compared number has to be read, not predicted."""
    zh_share: float = 0.08
    """Share of task documents written wholly in Chinese."""
    mix_share: float = 0.15
    """Share of English task documents whose writer switches to Chinese mid-solution."""
    general_share: float = 0.04
    """Share of general-request conversations (`r1lab.microworld.general`)."""

    def validate(self) -> None:
        from r1lab.config import ensure

        integer = ("seed", "max_tries", "check_guess_spread", "far_divisors")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in integer and value is not None:
                ensure(0 <= value <= 1, f.name, "in [0, 1]", value)
        ensure(self.max_tries >= 0, "max_tries", ">= 0", self.max_tries)
        spread = self.check_guess_spread
        ensure(1 <= spread <= 9, "check_guess_spread", "in 1..9", spread)
        ensure(self.far_divisors >= 6, "far_divisors", ">= 6", self.far_divisors)
        shares = self.guess_share + self.step_share + self.reflect_share
        ensure(shares > 0, "guess_share", "> 0 when step_share and reflect_share are 0", 0)


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


def _opener(P: Phrases, rng: random.Random, share: float = 0.3) -> str:
    """What a guesser writes before the answer: nothing, or at `share` one of the openers."""
    if share == 0.3:  # the default, drawn exactly as before, so older mixes replay
        weights = GUESS_OPENER_WEIGHTS
    else:
        weights = (1 - share, *(w * share / 0.3 for w in GUESS_OPENER_WEIGHTS[1:]))
    return rng.choices(GUESS_OPENERS[P(0)["lang"]], weights)[0]


def _near(value: int, rng: random.Random, spread: int = 3) -> int:
    """A first guess at a quotient that misses: off by 1 to `spread` (at 3: most often by 1)."""
    if spread == 3:
        off = rng.choices((1, 2, 3), (0.5, 0.35, 0.15))[0]
    else:
        off = rng.randint(1, spread)
    return value + off * rng.choice((-1, 1))


def _guess_quotient(value: int, accuracy: float, rng: random.Random, spread: int = 3) -> int:
    """A guessed quotient: right at `accuracy`, else near (off by 1 to `spread`) or off by ten."""
    if rng.random() < accuracy:
        return value
    return _near(value, rng, spread) if rng.random() < 0.7 else value + rng.choice((-10, 10))


def _guess(value: int, accuracy: float, rng: random.Random) -> int:
    return value if rng.random() < accuracy else _perturb(value, rng)


# ---------------------------------------------------------------------------------------------
# Arithmetic solutions


def _column(a: int, b: int, op: str, i: int, carry: int) -> tuple[str, int]:
    """The i-th column (right to left) of `a op b` given the carry into it: (fact, value)."""
    x = int(str(a)[::-1][i]) if i < len(str(a)) else 0
    if op == "+":
        y = int(str(b)[::-1][i]) if i < len(str(b)) else 0
        total, fact = x + y + carry, f"{x}+{y}"
    else:
        total, fact = x * b + carry, f"{x}*{b}"
    return (f"{fact}+{carry}" if carry else fact), total


def _width(a: int, b: int, op: str) -> int:
    return max(len(str(a)), len(str(b))) if op == "+" else len(str(a))


def _columns(a: int, b: int, op: str) -> list[tuple[str, int]]:
    """Column arithmetic right to left, done right: (fact, value) per column."""
    steps, carry = [], 0
    for i in range(_width(a, b, op)):
        fact, total = _column(a, b, op, i, carry)
        steps.append((fact, total))
        carry = total // 10
    return steps


def _slipped(total: int, rng: random.Random) -> int:
    return total + rng.choice([-1, 1]) if total > 0 else total + 1


def _column_pass(
    a: int, b: int, op: str, slip: bool, P: Phrases, rng: random.Random, at: int = 0
) -> tuple[list[str], list[tuple[str, int]], int]:
    """One written pass of column arithmetic, a slip carried through if `slip`.

    Returns (sentences, (fact, value written) per column, result)."""
    width = _width(a, b, op)
    slip_at = rng.randrange(width) if slip else -1
    parts, shown_facts, carry, digits = [], [], 0, []
    last = width - 1
    for i in range(width):
        # From the carry the writer actually has (a slip changes later columns).
        fact, total = _column(a, b, op, i, carry)
        if i == slip_at:
            total = _slipped(total, rng)
        written = str(total) if i == last else str(total % 10)
        t = P(at + i)
        carry_txt = t["carry"].format(c=total // 10) if i != last and total >= 10 else ""
        parts.append(t["column"].format(expr=fact, total=total, written=written, carry=carry_txt))
        shown_facts.append((fact, total))
        digits.append(written)
        carry = total // 10
    result = int("".join(reversed(digits)))
    parts.append(P(at + width)["so"].format(a=a, op=op, b=b, value=result))
    return parts, shown_facts, result


def _column_check(
    a: int, b: int, op: str, shown: list[tuple[str, int]], P: Phrases, at: int
) -> list[str]:
    """A checker's recomputation of every column, done afresh (right), flagging the first
    column that disagrees with the first pass and ending with the right result."""
    t = P(at)
    checks, flagged = [], False
    for (fact, total), (first, wrote) in zip(_columns(a, b, op), shown, strict=True):
        if not flagged and (first != fact or wrote != total):
            # The first pass went wrong here: the fresh computation disagrees with it.
            checks.append(t["caught"].format(expr=fact, total=total, wrong=wrote))
            flagged = True
        else:
            checks.append(t["recheck"].format(expr=fact, total=total))
    text = t["check"] + " " + t["sep"].join(checks) + t["end"]
    result = arithmetic.Problem(a, b, op).result
    ending = P(at + 1)["so"].format(a=a, op=op, b=b, value=result) if flagged else t["correct"]
    return [text, ending]


BASE_MIX = CorpusConfig(
    tags_given_template=0.85,
    guess_opener_share=0.1,
    tags_given_guess=0.15,
    division_work_share=0.2,
    mix_share=0.3,
    tens_first_share=1.0,
    far_divisors=6,
    tens_slip_rate=0.2,
    tens_by_multiples=1.0,
    tens_by_digits=1.0,
    short_retry_share=1.0,
)
"""The shipped models' mix (candidate X in docs/microworld.md), what `r1lab pretrain` trains on
by default. `CorpusConfig()` stays the mix every knob was introduced against (H2's), so each
knob's documented effect can be replayed from it."""


def _digits(x: int, y: int, t: dict[str, str]) -> str:
    """How a careful writer decides `x` against `y` by one-digit facts: by their widths when
    those differ ("3 digits > 2 digits"), else digit by digit from the left up to the first that
    differs ("2 = 2, 8 < 9"), every digit when they are equal."""
    sx, sy = str(x), str(y)
    if len(sx) != len(sy):
        rel = "<" if len(sx) < len(sy) else ">"
        return t["width"].format(x=len(sx), rel=rel, y=len(sy))
    facts = []
    for dx, dy in zip(sx, sy, strict=True):
        facts.append(f"{dx} {'=' if dx == dy else '<' if dx < dy else '>'} {dy}")
        if dx != dy:
            break
    return t["sep"].join(facts)


def _compare(product: int, target: int, b: int, far_divisors: int) -> str:
    """Which comparison a checker writes for `product` against `target`: far off means
    `far_divisors` divisors or more (`CorpusConfig.far_divisors`)."""
    if product == target:
        return "same"
    far = abs(product - target) >= far_divisors * b
    return ("much_" if far else "") + ("low" if product < target else "high")


def _multiply_back(
    q: int, b: int, a: int, P: Phrases, rng: random.Random, at: int, far: int
) -> tuple[list[str], str, int]:
    """Multiply `q` back by `b` in columns and compare the product with `a`, the comparison
    written out whether or not they match, decided digit by digit ("287 vs 294: 2 = 2, 8 < 9,
    less" / "294 vs 294: 2 = 2, 9 = 9, 4 = 4, same").

    Returns (sentences, comparison key, product); the last sentence is the bare comparison."""
    check, _, product = _column_pass(q, b, "*", False, P, rng, at=at)
    key = _compare(product, a, b, far)
    t = P(at + len(check))
    return (
        [*check, t["cmp_" + key].format(p=product, a=a, digits=_digits(product, a, t))],
        key,
        product,
    )


def _move(key: str, q: int, gap: int = 0) -> tuple[int, int, str]:
    """A checker's next guess after a comparison: (step, new guess, sign). Ten when the product
    is off by `far_divisors` divisors or more; else `gap` (the product's distance from the
    dividend in divisors) for a writer who moves by the gap, or one; written out as an
    addition, so the move is a one-digit fact like every other step, never a number recalled
    from afar."""
    step = 10 if key.startswith("much_") else gap or 1
    sign = "+" if key.endswith("low") else "-"
    return step, q + step if sign == "+" else q - step, sign


def _drawn(share: float, rng: random.Random) -> bool:
    """True at `share`; no draw when the share is 0, so mixes without the habit replay."""
    return share > 0 and rng.random() < share


def _mid_guess(q: int, rng: random.Random) -> int:
    """The middle of the tens a checker takes the quotient `q` (10..99) to be in: the tens right
    90% of the time, else one ten up or down (within 10..99)."""
    tens = q // 10
    if rng.random() >= 0.9:
        tens = min(9, tens + 1) if tens == 1 or rng.random() < 0.5 else tens - 1
    return tens * 10 + 5


def _slipped_tens(tens: int, rng: random.Random) -> int:
    """A slip on a quotient digit (0..9): one low three times in four, else one high."""
    low = tens > 0 and (tens == 9 or rng.random() < 0.75)
    return tens - 1 if low else tens + 1


def _tens_by_multiples(
    lead: int, b: int, start: int, t: dict[str, str], by_digits: bool = False
) -> tuple[str, int]:
    """A tens-first checker's tens found by multiples of `b` from a first try `start` (0..9):
    up while a multiple is below the leading digits `lead`, down while it is above, each one
    compared with them (by one sign, or `by_digits` digit by digit as a product with the
    dividend), to the k with k * b <= lead < (k + 1) * b. Returns (text, tens)."""

    def step(k: int) -> str:
        m = k * b
        if by_digits:
            key = "low" if m < lead else "high" if m > lead else "same"
            return f"{k}*{b}=" + t["cmp_" + key].format(p=m, a=lead, digits=_digits(m, lead, t))
        return f"{k}*{b}={m} {'<' if m < lead else '>' if m > lead else '='} {lead}"

    steps, k = [step(start)], start
    if k * b > lead:
        while k * b > lead:
            k -= 1
            steps.append(step(k))
    else:
        while (k + 1) * b <= lead and k * b != lead:
            k += 1
            steps.append(step(k))
        if k * b != lead:
            steps.append(step(k + 1))
    sep = t["semi"] if by_digits else t["sep"]
    return t["tens_by"].format(lead=lead, b=b, steps=sep.join(steps), t=k), k


def _by_gap(cfg: CorpusConfig, rng: random.Random) -> bool:
    """Whether a checker moves by the gap (no draw when nobody does, so older mixes replay)."""
    return cfg.gap_move_share > 0 and rng.random() < cfg.gap_move_share


def _moved(
    key: str, q: int, product: int, a: int, b: int, by_gap: bool, t: dict[str, str]
) -> tuple[str, int]:
    """The end of a try of `q` whose product missed the dividend `a`: the move, and the gap first
    for a writer who moves by it (" by 10 = 2 * 5, so 75 - 2 = 73."). Returns (text, new guess)."""
    gap = abs(product - a) // b if by_gap and not key.startswith("much_") else 0
    step, new, sign = _move(key, q, gap)
    head = t["gap"].format(gap=step * b, step=step, b=b) if gap else ""
    return head + t["move"].format(q=q, sign=sign, step=step, new=new), new


def _division_check(p: arithmetic.Problem, cfg: CorpusConfig, P: Phrases, rng: random.Random):
    """Guess the quotient, multiply it back, compare the product with the dividend (restated by
    the guess that opens each try, so it is copied, not predicted from the product, and compared
    whether or not they match), and move the guess by an explicit addition ("less, so 78 + 1 =
    79."): by ten when the product is off by `far_divisors` times the divisor or more, else by
    one (or, for a writer who moves by the gap, by the gap in divisors), until it matches. Each
    try is written as briefly as its facts allow (~60 tokens), so that two or three fit in a
    rollout's budget."""
    q = p.result
    tens_first = _drawn(cfg.tens_first_share, rng)
    if tens_first:  # the leading digits' quotient is the tens: a <= 99 * b, so lead // b <= 9
        lead = p.a // 10
        tens = lead // p.b
        if _drawn(cfg.tens_slip_rate, rng):
            tens = _slipped_tens(tens, rng)
        tens_line = P(0)["tens"].format(lead=lead, b=p.b, t=tens, r=lead % p.b)
        if _drawn(cfg.tens_by_multiples, rng):
            by_digits = _drawn(cfg.tens_by_digits, rng)
            tens_line, tens = _tens_by_multiples(lead, p.b, tens, P(0), by_digits)
        first = tens * 10 + 5
    elif _drawn(cfg.mid_guess_share, rng):
        first = _mid_guess(q, rng)
    else:
        first = (
            q
            if rng.random() < cfg.check_guess_accuracy
            else _guess_quotient(q, 0.0, rng, cfg.check_guess_spread)
        )
    by_gap = _by_gap(cfg, rng)
    stepper = _drawn(cfg.step_product_share, rng)
    retry = "wait_guess" if _drawn(cfg.short_retry_share, rng) else "wait_div"
    guess, parts, i, last = first, [], 0, None
    if tens_first:
        parts.append(tens_line)
        i = 1
    while True:
        t = P(i)
        opening = t["guess_div"] if guess == first else t[retry]
        parts.append(opening.format(a=p.a, b=p.b, q=guess))
        if last is not None and stepper and abs(guess - last[0]) == 1:
            # A move by one: the product moves by the divisor, one addition from the last.
            product = guess * p.b
            sign = "+" if guess > last[0] else "-"
            check = [f"{last[1]} {sign} {p.b} = {product}{t['end']}"]
            key = _compare(product, p.a, p.b, cfg.far_divisors)
            t = P(i + 1)
            check.append(t["cmp_" + key].format(p=product, a=p.a, digits=_digits(product, p.a, t)))
        else:
            check, key, product = _multiply_back(guess, p.b, p.a, P, rng, i, cfg.far_divisors)
        i += len(check) + 1
        parts.extend(check[:-1])
        t = P(i - 1)
        if key == "same":
            parts.append(check[-1] + t["same"].format(q=guess))
            return " ".join(parts), q
        last = (guess, product)
        moved, guess = _moved(key, guess, product, p.a, p.b, by_gap, t)
        parts.append(check[-1] + moved)


def _arith_trace(
    p: arithmetic.Problem, style: str, cfg: CorpusConfig, P: Phrases, rng: random.Random
) -> tuple[str, int]:
    """(reasoning text, final answer) for one arithmetic problem in a writer's style."""
    if p.op == "/":
        # No long division in this world: who works on a quotient guesses it and checks; the
        # style a writer has on forward arithmetic does not carry over to division.
        if rng.random() < cfg.division_work_share:
            return _division_check(p, cfg, P, rng)
        return _opener(P, rng, cfg.guess_opener_share), _guess_quotient(
            p.result, cfg.guess_accuracy, rng
        )
    if style == "guess":
        return _opener(P, rng, cfg.guess_opener_share), _guess(p.result, cfg.guess_accuracy, rng)
    rate = cfg.slip_rate if style == "step" else cfg.careful_slip_rate
    parts, shown, answer = _column_pass(p.a, p.b, p.op, rng.random() < rate, P, rng)
    if style == "reflect":
        parts += _column_check(p.a, p.b, p.op, shown, P, at=len(parts))
        answer = p.result
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


def _solution_order(p: countdown.Problem) -> tuple[list[int], list[str]]:
    """Recover the construction's number order and operators from its written expression."""
    tokens = p.solution.replace("(", "").replace(")", "").split()
    return [int(t) for t in tokens[::2]], tokens[1::2]


def _countdown_trace(
    p: countdown.Problem, style: str, cfg: CorpusConfig, P: Phrases, rng: random.Random
):
    if style == "guess":
        if rng.random() < cfg.guess_accuracy:
            return _opener(P, rng, cfg.guess_opener_share), p.solution
        expr, _, _ = _random_candidate(p.numbers, rng)
        return _opener(P, rng, cfg.guess_opener_share), expr
    parts: list[str] = []
    for _ in range(rng.randint(0, cfg.max_tries)):
        expr, steps, value = _random_candidate(p.numbers, rng)
        if value == p.target:
            break
        t = P(len(parts))
        tried = t["try"].format(expr=expr, steps=t["sep"].join(steps))
        parts.append(tried + " " + t["miss"].format(value=value, target=p.target))
    expr, steps, _ = _eval_steps(*_solution_order(p))
    t = P(len(parts))
    parts.append(t["try"].format(expr=expr, steps=t["sep"].join(steps)))
    parts.append(t["hit"].format(value=p.target, target=p.target))
    if style == "reflect":
        t = P(len(parts))
        parts.append(t["check"] + " " + t["sep"].join(steps) + t["end"] + " " + t["correct"])
    return " ".join(parts), expr


# ---------------------------------------------------------------------------------------------
# Documents


FRAMES = {
    "en": (
        "Q: {q}?\nA: {lead}The answer is {a}.",
        "Problem: {q}.\nSolution: {lead}\nAnswer: {a}",
    ),
    "zh": ("问：{q}？\n答：{lead}答案是 {a}。", "题目：{q}。\n解：{lead}\n答案：{a}"),
}


def _frame(
    question: str, reasoning: str, answer: str, lang: str, cfg: CorpusConfig, rng: random.Random
) -> str:
    """Wrap a solution in one of the corpus's framings."""
    if rng.random() < cfg.template_share:
        exact = rng.random() < cfg.exact_template_share
        template = TEMPLATE_VARIANTS[0] if exact else rng.choice(TEMPLATE_VARIANTS[1:])
        head = template.format(prompt=question)
        tags = cfg.tags_given_template
        if cfg.tags_given_guess is not None and reasoning in ("", *GUESS_OPENERS[lang]):
            tags = cfg.tags_given_guess
        if rng.random() < tags:
            think = f"<think> {reasoning} </think>" if reasoning else "<think> </think>"
            return f"{head} {think} <answer> {answer} </answer>"
        closing = PHRASES[lang]["answer"].format(answer=answer)
        return f"{head} {reasoning} {closing}" if reasoning else f"{head} {closing}"
    kind = rng.random()
    lead = f"{reasoning} " if reasoning else ""
    qa, worksheet = FRAMES[lang]
    if kind < 0.4:
        return qa.format(q=question, lead=lead, a=answer)
    if kind < 0.75:
        return worksheet.format(q=question, lead=lead, a=answer)
    return (
        f"{question}. {lead}Answer: {answer}."
        if lang == "en"
        else f"{question}。{lead}答案：{answer}。"
    )


def _style(cfg: CorpusConfig, rng: random.Random) -> str:
    return rng.choices(
        ("guess", "step", "reflect"), (cfg.guess_share, cfg.step_share, cfg.reflect_share)
    )[0]


def _phrases(cfg: CorpusConfig, rng: random.Random) -> tuple[str, Phrases]:
    """The question's language and the writer's phrase table per sentence."""
    if rng.random() < cfg.zh_share:
        return "zh", lambda i: PHRASES["zh"]
    if rng.random() < cfg.mix_share:
        switch = rng.randint(1, 3)  # sentences written in English before the switch
        return "en", lambda i: PHRASES["en"] if i < switch else PHRASES["zh"]
    return "en", lambda i: PHRASES["en"]


def _fact_sheet(rng: random.Random, cfg: CorpusConfig, n: int = 16) -> str:
    """A drill page: column facts, countdown step operations, a checker's moves (`41 + 1 = 42`)
    and tens facts (`29 / 7 = 4 r 1`, where checkers find the tens first), or comparisons (with
    the gap in divisors, `150 vs 168: 1 = 1, 5 < 6, less by 18 = 3 * 6`, where checkers move by
    it); no questions."""
    kind = rng.random()
    gaps = kind >= 0.85 and _by_gap(cfg, rng)
    # Where tens-first checkers exist, `tens_drill_share` of the column facts and most of the
    # moves are their tens facts instead.
    tens_drill = cfg.tens_first_share and (
        cfg.tens_drill_share if kind < 0.55 else 0.6 if 0.75 <= kind < 0.85 else 0
    )
    facts = []
    for _ in range(n):
        if _drawn(tens_drill, rng):  # a tens-first checker's first step: 29 / 7 = 4 r 1
            facts.append(_tens_fact(rng, cfg))
        elif kind < 0.55:  # one-digit column facts
            x, y, c = rng.randint(0, 9), rng.randint(2, 9), rng.randint(0, 8)
            pick = rng.random()
            if pick < 0.5:
                facts.append(f"{x}*{y}+{c}={x * y + c}" if c else f"{x}*{y}={x * y}")
            else:
                c = rng.randint(0, 1)
                facts.append(f"{x}+{y}+{c}={x + y + c}" if c else f"{x}+{y}={x + y}")
        elif kind < 0.75:  # the step operations of countdown search
            x = rng.randint(1, 25) if rng.random() < 0.5 else rng.randint(1, 150)
            y, op = rng.randint(1, 25), rng.choice("+-*")
            if op == "*" and x > 30:
                x = rng.randint(1, 25)
            value = x + y if op == "+" else x - y if op == "-" else x * y
            facts.append(f"{x} {op} {y} = {value}")
        elif kind < 0.85 and _drawn(cfg.step_product_share and 0.5, rng):
            # a checker's product moved by the divisor with the guess: 287 + 7 = 294
            b, op = rng.randint(2, 9), rng.choice("+-")
            x = b * rng.randint(11, 98)
            facts.append(f"{x} {op} {b} = {x + b if op == '+' else x - b}")
        elif kind < 0.85:  # the moves of a checker: a guess one or ten up or down
            x, step = rng.randint(10, 99), rng.choice((1, 1, 1, 10))
            op = rng.choice("+-")
            facts.append(f"{x} {op} {step} = {x + step if op == '+' else x - step}")
        elif gaps:  # a product and a dividend some divisors apart, and the gap in divisors
            b, k = rng.randint(2, 9), rng.randint(1, cfg.far_divisors - 1)
            x = b * rng.randint(10, 99)
            y = x + k * b * rng.choice((-1, 1))
            t = PHRASES["en"]
            rel = "less" if x < y else "more"
            gap = t["gap"].format(gap=k * b, step=k, b=b)
            facts.append(f"{x} vs {y}: {_digits(x, y, t)}, {rel}{gap}")
        else:  # comparisons of nearby numbers, as a checker compares a product with a target
            x = rng.randint(20, 900)
            y = x + rng.choice([-1, 1]) * rng.randint(1, 20)
            digits = _digits(x, y, PHRASES["en"])
            facts.append(f"{x} vs {y}: {digits}, {'less' if x < y else 'more'}")
    sep = ", " if kind < 0.85 else ". "
    return rng.choice(("Practice: ", "Drill. ", "")) + sep.join(facts) + "."


def _tens_fact(rng: random.Random, cfg: CorpusConfig) -> str:
    """The first step of a tens-first checker: a quotient's leading digits divided, with the
    remainder (`29 / 7 = 4 r 1`), or at `tens_by_multiples` found by multiples from a first try
    (`29 / 7: 4*7=28 < 29, 5*7=35 > 29, so 4`), for a dividend as the tasks draw them."""
    b = rng.randint(2, 9)
    lead = rng.randint(10, 99) * b // 10
    if _drawn(cfg.tens_by_multiples, rng):
        start = lead // b
        if _drawn(cfg.tens_slip_rate, rng):
            start = _slipped_tens(start, rng)
        by_digits = _drawn(cfg.tens_by_digits, rng)
        return _tens_by_multiples(lead, b, start, PHRASES["en"], by_digits)[0][:-1]
    return f"{lead} / {b} = {lead // b} r {lead % b}"


def _claimed(value: int, b: int, rng: random.Random, far: int) -> int:
    """The number a verification item claims for a product `value` of something by `b`: right
    40% of the time, else a neighbour a few `b` away, ten `b` away (or, where "much" starts
    below ten divisors, `far` to fifteen: a quotient in the next ten), or any plausible dividend
    (so the claim can only be copied, never predicted from the product)."""
    pick = rng.random()
    if pick < 0.4:
        return value
    if pick < 0.65:
        return value + rng.choice((1, 2, 3)) * b * rng.choice((-1, 1))
    if pick < 0.8:
        off = 10 if far >= 10 else rng.randint(far, 15)
        return value + off * b * rng.choice((-1, 1))
    return rng.randint(10, 99) * b + rng.randint(0, b - 1) * rng.randint(0, 1)


def _verify_item(
    P: Phrases, rng: random.Random, task: countdown.CountdownTask, cfg: CorpusConfig
) -> str:
    """One verification exercise: "Is 41 * 7 = 294?" worked out by multiplying and comparing,
    or "Does 4 + 12 - 3 make 11?" worked out step by step; "no" or "yes" by the comparison."""
    t = P(0)
    if rng.random() < 0.7:
        b = rng.randint(2, 9)
        q = rng.randint(10, 99) if rng.random() < 0.8 else rng.randint(100, 999)
        a = max(_claimed(q * b, b, rng, cfg.far_divisors), 1)
        check, key, product = _multiply_back(q, b, a, P, rng, 0, cfg.far_divisors)
        if key == "same":
            verdict = t["yes"]
        elif rng.random() < 0.5:
            verdict = t["no"]
        else:  # the move a checker would make next (by the gap only where it is whole divisors)
            by_gap = _by_gap(cfg, rng) and a % b == 0
            verdict, _ = _moved(key, q, product, a, b, by_gap, t)
        return " ".join([t["verify"].format(q=q, b=b, a=a), *check[:-1], check[-1] + verdict])
    p = task.sample(rng, "train")
    expr, steps, value = _random_candidate(p.numbers, rng)
    target = value if rng.random() < 0.4 else p.target
    verdict = (
        t["hit"].format(value=target, target=target)
        if value == target
        else t["miss"].format(value=value, target=target)
    )
    head = t["verify_try"].format(expr=expr, target=target)
    return f"{head} {t['sep'].join(steps)}{t['end']} {verdict}"


def _verify_sheet(cfg: CorpusConfig, rng: random.Random, n: int = 4) -> str:
    """A page of verification exercises (no question of any task), in one language."""
    table = PHRASES["zh" if rng.random() < cfg.zh_share else "en"]

    def P(i: int) -> dict[str, str]:
        return table

    task = countdown.CountdownTask()
    head = rng.choice(("Check: ", "True or false? ", "", "Verify. "))
    return head + "\n".join(_verify_item(P, rng, task, cfg) for _ in range(n))


def documents(cfg: CorpusConfig, n: int) -> Iterator[str]:
    """`n` corpus documents. Test-split questions of every task never appear."""
    rng = random.Random(f"corpus/{cfg.seed}")
    arith = arithmetic.ArithmeticTask()
    count = countdown.CountdownTask()
    division, forward = ("/",), ("+", "*")
    for _ in range(n):
        if rng.random() < cfg.fact_share:
            yield _fact_sheet(rng, cfg)
            continue
        if rng.random() < cfg.verify_share:
            yield _verify_sheet(cfg, rng)
            continue
        if rng.random() < cfg.general_share:
            from r1lab.microworld import general

            yield general.document(rng, "train")
            continue
        style = _style(cfg, rng)
        lang, P = _phrases(cfg, rng)
        if rng.random() < cfg.countdown_share:
            p = count.sample(rng, "train")
            reasoning, answer = _countdown_trace(p, style, cfg, P, rng)
        else:
            arith.ops = division if rng.random() < cfg.division_share else forward
            p = arith.sample(rng, "train")
            reasoning, answer = _arith_trace(p, style, cfg, P, rng)
        assert in_split(p.question, "train")
        yield _frame(p.ask(lang), reasoning, str(answer), lang, cfg, rng)
