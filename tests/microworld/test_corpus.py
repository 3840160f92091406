import hashlib
import random
import re

import pytest

from r1lab.config import ConfigError
from r1lab.metrics import arithmetic_claims, has_reflection, unrevised_steps
from r1lab.microworld import corpus
from r1lab.microworld.corpus import CorpusConfig, documents
from r1lab.microworld.tokenizer import TAGS, train_tokenizer
from r1lab.tasks import ArithmeticTask, CountdownTask, arithmetic, countdown

DOCS = list(documents(CorpusConfig(general_share=0), 3000))


def test_corpus_is_deterministic():
    assert list(documents(CorpusConfig(general_share=0), 50)) == DOCS[:50]
    assert list(documents(CorpusConfig(seed=1, general_share=0), 50)) != DOCS[:50]


def test_no_test_problem_leaks_into_the_corpus_in_any_language():
    arith = [
        arithmetic.Problem(e["a"], e["b"], e["op"]) for e in ArithmeticTask().examples("test", 300)
    ]
    count = [
        countdown.Problem(tuple(e["numbers"]), e["target"], e["answer"])
        for e in CountdownTask().examples("test", 300)
    ]
    text = "\n".join(DOCS)
    for p in arith + count:
        for q in (p.ask("en"), p.ask("zh")):  # "equals 11" must not match "equals 112"
            assert not re.search(re.escape(q) + r"(?!\d)", text), q


def test_template_only_sometimes_and_tags_only_sometimes():
    templated = [d for d in DOCS if "Assistant:" in d]
    # The template itself names the tags; a tag-format answer is what the document ends with.
    tagged = [d for d in templated if d.endswith("</answer>")]
    assert 0.3 < len(templated) / len(DOCS) < 0.6
    assert 0.3 < len(tagged) / len(templated) < 0.8


def test_styles_are_mixed():
    reflective = sum(has_reflection(d) for d in DOCS) / len(DOCS)
    stepwise = sum(any(w in d for w in ("write", "Try ", "写", "试 ")) for d in DOCS) / len(DOCS)
    assert 0.03 < reflective < 0.25
    assert 0.2 < stepwise < 0.6


def test_arithmetic_steps_are_correct_unless_slipped():
    # In a step-by-step arithmetic document with no slip, the final line is the true result.
    pat = re.compile(r"So (\d+) ([+*]) (\d+) = (\d+)\.")
    right = wrong = 0
    for d in DOCS:
        for a, op, b, r in pat.findall(d):
            true = int(a) + int(b) if op == "+" else int(a) * int(b)
            right += int(r) == true
            wrong += int(r) != true
    assert right > 0 and 0 < wrong / (right + wrong) < 0.35  # careless slips exist, rarely


def test_tokenizer_round_trips_and_keeps_tags_whole():
    tok = train_tokenizer(DOCS[:1000], vocab_size=300)
    for d in DOCS[:50]:
        assert tok.decode(tok(d)["input_ids"]) == d
    for tag in TAGS:
        assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1
    digits = tok.convert_ids_to_tokens(tok("12345")["input_ids"])
    assert digits == list("12345")
    assert tok.eos_token == tok.pad_token == "<|endoftext|>"
    assert tok.chat_template


EN = lambda i: corpus.PHRASES["en"]  # noqa: E731
CFG = CorpusConfig()
EQUATION = re.compile(r"(\d+)([+*])(\d+)(?:\+(\d+))?=(\d+)")


def _wrong_equations(text: str) -> list[str]:
    """Column facts (`8*9+6=77`) whose stated value is wrong."""
    out = []
    for x, op, y, c, v in EQUATION.findall(text):
        true = (int(x) + int(y) if op == "+" else int(x) * int(y)) + int(c or 0)
        if true != int(v):
            out.append(f"{x}{op}{y}={v}")
    return out


def test_checkers_check_whether_or_not_they_slipped_and_end_right():
    rng = random.Random(0)
    task = ArithmeticTask(ops=("+", "*"))
    caught = clean = 0
    for _ in range(600):
        p = task.sample(rng, "train")
        text, answer = corpus._arith_trace(p, "reflect", CFG, EN, rng)
        assert answer == p.result, text
        assert "Let me check:" in text
        head, check = text.split("Let me check:")
        # The check recomputes every fact with its operands swapped, independently of the first
        # pass, and never repeats a slip.
        assert not _wrong_equations(check), text
        if _wrong_equations(head):
            caught += 1
            assert "Wait," in check and f"= {p.result}." in check
        else:
            clean += 1
            assert "Wait" not in text and check.endswith("Correct.")
    # Careful writers slip at careful_slip_rate, less than careless ones (slip_rate).
    assert 0.05 < caught / (caught + clean) < 0.15


def test_careless_writers_slip_and_never_check():
    rng = random.Random(1)
    task = ArithmeticTask(ops=("+", "*"))
    slipped = 0
    for _ in range(600):
        p = task.sample(rng, "train")
        text, answer = corpus._arith_trace(p, "step", CFG, EN, rng)
        assert not has_reflection(text)
        wrong = _wrong_equations(text)
        slipped += bool(wrong)
        assert (answer == p.result) == (not wrong), text
    assert 0.15 < slipped / 600 < 0.25


def test_every_wrong_step_a_writer_takes_back_reads_as_revised_and_no_other():
    """The cold-start data's wrong_step rule (metrics.unrevised_steps) against the corpus: what
    careful writers write (their slips caught, every comparison decided right, guesses checked)
    leaves nothing unrevised; a careless writer's slip, carried to the answer, is left."""
    careful = CorpusConfig(slip_rate=0.0, careful_slip_rate=1.0, guess_share=0.0, general_share=0)
    slips = 0
    for doc in documents(careful, 600):
        assert unrevised_steps(doc) == [], doc
        slips += any(not c.right for c in arithmetic_claims(doc))
    assert slips > 50  # the slips were there to revise (70 of 600)
    rng = random.Random(2)
    task = ArithmeticTask(ops=("+", "*"))
    for _ in range(300):
        p = task.sample(rng, "train")
        text, answer = corpus._arith_trace(p, "step", CFG, EN, rng)
        assert bool(unrevised_steps(text)) == (answer != p.result), text


WORKS = CorpusConfig(division_work_share=1.0)


def _decided(x: int, y: int) -> str:
    """The one-digit facts that decide x against y, as the corpus must write them."""
    if len(str(x)) != len(str(y)):
        return f"{len(str(x))} digits {'<' if x < y else '>'} {len(str(y))} digits"
    out = []
    for dx, dy in zip(str(x), str(y), strict=True):
        out.append(f"{dx} {'=' if dx == dy else '<' if int(dx) < int(dy) else '>'} {dy}")
        if dx != dy:
            break
    return ", ".join(out)


def test_comparisons_are_decided_by_the_first_digit_that_differs():
    assert _decided(287, 294) == "2 = 2, 8 < 9"
    assert corpus._digits(287, 294, corpus.PHRASES["en"]) == "2 = 2, 8 < 9"
    assert corpus._digits(1080, 987, corpus.PHRASES["en"]) == "4 digits > 3 digits"
    assert corpus._digits(294, 294, corpus.PHRASES["zh"]) == "2 = 2，9 = 9，4 = 4"
    assert corpus._digits(98, 198, corpus.PHRASES["zh"]) == "2 位 < 3 位"
    rng = random.Random(7)
    for _ in range(2000):
        x, y = rng.randint(1, 999), rng.randint(1, 999)
        assert corpus._digits(x, y, corpus.PHRASES["en"]) == _decided(x, y)


def test_division_is_checked_by_multiplying_back():
    rng = random.Random(2)
    task = ArithmeticTask(ops=("/",))
    first_right = far = 0
    for _ in range(400):
        p = task.sample(rng, "train")
        text, answer = corpus._arith_trace(p, "reflect", WORKS, EN, rng)
        assert answer == p.result, text
        guesses = [int(q) for q in re.findall(rf"{p.a} / {p.b} = (\d+)\?", text)]
        # Each try opens with its guess, restating the dividend it must reach, and goes straight
        # to the columns: a try is as short as its facts allow.
        tries = re.split(r" Wait, ", text)
        assert [t.split("?")[0] for t in tries] == [f"{p.a} / {p.b} = {g}" for g in guesses]
        assert all(re.match(rf"{p.a} / {p.b} = \d+\? \d\*{p.b}=", t) for t in tries), text
        products = re.findall(r"So (\d+) \* (\d+) = (\d+)\.", text)
        # One multiplication back per guess, each right, each compared in words with `a`.
        assert [int(q) for q, _, _ in products] == guesses and guesses[-1] == p.result
        for q, b, product in products:
            assert int(q) * int(b) == int(product)
        verdicts = re.findall(
            r"(\d+) vs (\d+): (.+?), (much )?(less|more), so (\d+) ([-+]) (\d+) = (\d+)\.", text
        )
        assert len(verdicts) == len(guesses) - 1
        for verdict, q, nxt in zip(verdicts, guesses[:-1], guesses[1:], strict=True):
            product, a, digits, much, word, moved, sign, step, new = verdict
            assert digits == _decided(int(product), int(a)), text
            assert int(a) == p.a and (int(product) < p.a) == (word == "less")
            # Far off (ten divisors or more): "much", and the guess moves by ten, else by one,
            # written as an addition or subtraction that is right and gives the next guess.
            assert bool(much) == (abs(int(product) - p.a) >= 10 * p.b)
            assert int(step) == (10 if much else 1) and sign == ("+" if word == "less" else "-")
            assert int(moved) == q and int(new) == nxt == q + int(sign + step)
            far += bool(much)
        # The match is compared side by side too, never a bare verdict.
        assert text.endswith(
            f"So {p.result} * {p.b} = {p.a}. {p.a} vs {p.a}: {_decided(p.a, p.a)}, same, "
            f"so {p.result} is right."
        )
        assert text.count("is right") == 1 and "Correct" not in text
        # Every wrong guess is followed by "Wait"; a right first guess by none.
        assert text.count("Wait,") == len(guesses) - 1
        first_right += guesses[0] == p.result
    # The first guess is genuinely uncertain: right at check_guess_accuracy.
    assert 0.32 < first_right / 400 < 0.48
    assert far > 10


def test_gap_movers_move_by_the_gap_in_divisors_and_land_on_the_quotient():
    cfg = CorpusConfig(division_work_share=1.0, gap_move_share=1.0, check_guess_spread=9)
    rng = random.Random(12)
    task = ArithmeticTask(ops=("/",))
    offsets, gap_moves = set(), 0
    for _ in range(400):
        p = task.sample(rng, "train")
        text, answer = corpus._arith_trace(p, "guess", cfg, EN, rng)
        assert answer == p.result and not _wrong_equations(text), text
        guesses = [int(q) for q in re.findall(rf"{p.a} / {p.b} = (\d+)\?", text)]
        offsets.add(abs(guesses[0] - p.result))
        moves = re.findall(
            r"(\d+) vs (\d+): [^,]+(?:, [^,]+)*?, (much )?(less|more)"
            r"(?: by (\d+) = (\d+) \* (\d+))?"
            r", so (\d+) ([-+]) (\d+) = (\d+)\.",
            text,
        )
        assert len(moves) == len(guesses) - 1, text
        for move, q, nxt in zip(moves, guesses[:-1], guesses[1:], strict=True):
            product, a, much, word, gap, k, b, moved, sign, step, new = move
            assert int(a) == p.a and int(moved) == q and int(new) == nxt
            assert sign == ("+" if word == "less" else "-")
            if much:  # far off: by ten, no gap written
                assert not gap and step == "10"
                continue
            # Near: by the distance of the two numbers compared, in divisors, which lands on
            # the quotient at once.
            gap_moves += 1
            assert int(gap) == abs(int(product) - p.a) == int(k) * p.b and int(b) == p.b
            assert step == k and nxt == p.result, text
    assert offsets == set(range(10)) | {10}  # right, off by 1 to 9, or by ten
    assert gap_moves > 150
    # The comparison drill holds the gap too, right, when checkers move by it.
    pages = [corpus._fact_sheet(rng, cfg) for _ in range(200)]
    gaps = [
        m
        for page in pages
        for m in re.findall(r"(\d+) vs (\d+): [^.]*?by (\d+) = (\d+) \* (\d+)", page)
    ]
    assert len(gaps) > 50
    for x, y, gap, k, b in gaps:
        assert abs(int(x) - int(y)) == int(gap) == int(k) * int(b)
    plain = [corpus._fact_sheet(rng, CFG) for _ in range(200)]
    assert not any(" by " in page for page in plain)  # nobody moves by the gap by default


def test_on_division_a_share_works_whatever_their_style_and_guessers_guess_near_or_ten_off():
    rng = random.Random(3)
    p = arithmetic.Problem(294, 7, "/")
    for style in ("guess", "step", "reflect"):
        text, answer = corpus._arith_trace(p, style, WORKS, EN, rng)
        assert text.startswith("294 / 7 = ") and (
            "So 42 * 7 = 294. 294 vs 294: 2 = 2, 9 = 9, 4 = 4, same, so 42" in text
        )
        assert answer == 42
    guessers = CorpusConfig(division_work_share=0.0)
    misses = []
    for _ in range(500):
        text, answer = corpus._arith_trace(p, "reflect", guessers, EN, rng)
        assert "check" not in text and "*" not in text
        if answer != 42:
            misses.append(abs(answer - 42))
    assert 0.62 < len(misses) / 500 < 0.78  # right at guess_accuracy
    assert set(misses) == {1, 2, 3, 10}
    worked = sum(" vs " in corpus._arith_trace(p, "step", CFG, EN, rng)[0] for _ in range(1000))
    assert 0.3 < worked / 1000 < 0.4  # division_work_share = 0.35: a minority checks


VERIFY = re.compile(
    r"Does (\d+) \* (\d+) make (\d+)\? (.*?)\. (\d+) vs (\d+): (.+?), (much )?(less|more), "
    r"(?:no\.|so (\d+) ([-+]) (\d+) = (\d+)\.)"
)


def test_verification_pages_multiply_back_compare_and_answer_by_the_comparison():
    rng = random.Random(6)
    right = near = far = anything = moves = 0
    zh_pages = 0
    for _ in range(600):
        page = corpus._verify_sheet(CFG, rng)
        assert not _wrong_equations(page)
        if "吗" in page:  # a Chinese page is Chinese throughout
            zh_pages += 1
            assert not re.search(r"write|Does |yes|no|vs", page)
            continue
        for line in page.split("\n"):
            line = re.sub(r"^(Check: |True or false\? |Verify\. )", "", line)
            if not re.match(r"Does \d+ \* \d+ make", line):
                m = re.fullmatch(
                    r"Does (.+) make (-?\d+)\? (.+)\. (-?\d+) vs (-?\d+): (no\.|yes!)", line
                )
                assert m, line
                expr, target, steps, value, target2, verdict = m.groups()
                assert target2 == target
                for x, op, y, v in re.findall(r"(-?\d+) ([-+*]) (\d+) = (-?\d+)", steps):
                    x, y = int(x), int(y)
                    assert (x + y if op == "+" else x - y if op == "-" else x * y) == int(v)
                assert int(value) == int(re.findall(r"= (-?\d+)", steps)[-1])
                assert (verdict == "yes!") == (value == target)
                continue
            q, b, a = (int(x) for x in re.match(r"Does (\d+) \* (\d+) make (\d+)\?", line).groups())
            product = q * b
            assert f"So {q} * {b} = {product}." in line, line
            if a == product:
                right += 1
                assert line.endswith(f"{a} vs {a}: {_decided(a, a)}, same, yes."), line
                continue
            m = VERIFY.fullmatch(line)
            assert m, line
            p_, a2, digits, much, word, moved, sign, step, new = m.groups()[4:]
            assert digits == _decided(product, a)
            if moved:  # or the move a checker would make next: by ten when "much", else one
                moves += 1
                assert int(moved) == q and sign == ("+" if word == "less" else "-")
                assert int(step) == (10 if much else 1) and int(new) == q + int(sign + step)
            assert int(p_) == product and int(a2) == a
            assert (word == "less") == (product < a)
            assert bool(much) == (abs(product - a) >= 10 * b)
            if abs(product - a) in (b, 2 * b, 3 * b):
                near += 1
            elif abs(product - a) == 10 * b:
                far += 1
            else:
                anything += 1
    total = right + near + far + anything
    # Claims are right 40% of the time; the rest are near, ten off, or anything.
    assert 0.33 < right / total < 0.47
    assert near > 0.15 * total and far > 0.08 * total and anything > 0.1 * total
    assert 0.2 * total < moves < 0.4 * total  # half the misses go on to the next guess
    assert 0.03 < zh_pages / 600 < 0.14  # zh_share = 0.08


def test_countdown_search_compares_every_candidate_with_the_target():
    rng = random.Random(4)
    task = CountdownTask()
    for _ in range(300):
        p = task.sample(rng, "train")
        text, answer = corpus._countdown_trace(p, "step", CFG, EN, rng)
        tries = re.findall(r"Try ([^:]+): ([^.]+)\. (-?\d+) vs (-?\d+): (no\.|yes!)", text)
        assert tries and answer == tries[-1][0], text
        for _expr, steps, value, target, verdict in tries:
            assert int(target) == p.target
            for x, op, y, v in re.findall(r"(-?\d+) ([-+*]) (\d+) = (-?\d+)", steps):
                x, y = int(x), int(y)
                assert (x + y if op == "+" else x - y if op == "-" else x * y) == int(v)
            # "no" exactly when the candidate misses; a premature "yes" never happens.
            assert (verdict == "no.") == (int(value) != p.target)
        assert text.count("yes!") == 1 and not has_reflection(text)


def test_languages_whole_documents_and_writers_who_switch():
    han = re.compile(r"[\u4e00-\u9fff]")
    tasks_docs = [
        d
        for d in DOCS
        if "Compute" in d or "Using the numbers" in d or "计算" in d or "用数字" in d
    ]
    zh = [d for d in tasks_docs if "计算" in d or "用数字" in d]
    assert 0.05 < len(zh) / len(tasks_docs) < 0.11  # zh_share = 0.08
    # Chinese documents are Chinese throughout: no English step words.
    assert not any(w in d for d in zh for w in ("write", "carry", "Try ", "Let me check"))
    mixed = [d for d in tasks_docs if d not in zh and han.search(d.split("Assistant:")[-1])]
    assert 0.005 < len(mixed) / len(tasks_docs) < 0.05
    for d in mixed:  # an English question, worked in English first, then switching
        body = d.split("Assistant:")[-1]
        assert re.search(r"write|Try ", body) and han.search(body)
        assert re.search(r"write|Try ", body).start() < han.search(body).start()


def test_drill_pages_hold_search_steps_and_comparisons_all_right():
    rng = random.Random(5)
    steps = comparisons = 0
    for _ in range(300):
        page = corpus._fact_sheet(rng, CFG)
        for x, op, y, v in re.findall(r"(\d+) ([-+*]) (\d+) = (-?\d+)", page):
            x, y = int(x), int(y)
            assert (x + y if op == "+" else x - y if op == "-" else x * y) == int(v)
            steps += 1
        for x, y, digits, word in re.findall(r"(\d+) vs (\d+): (.+?), (less|more)", page):
            assert digits == _decided(int(x), int(y))
            assert (int(x) < int(y)) == (word == "less")
            comparisons += 1
        assert not _wrong_equations(page)
    assert steps > 500 and comparisons > 500


def test_mid_guessers_start_in_the_middle_of_the_tens_and_steppers_add_the_divisor():
    cfg = CorpusConfig(division_work_share=1.0, mid_guess_share=1.0, step_product_share=1.0)
    rng = random.Random(4)
    task = ArithmeticTask(ops=("/",))
    tens_right = steps = 0
    for _ in range(400):
        p = task.sample(rng, "train")
        text, answer = corpus._arith_trace(p, "guess", cfg, EN, rng)
        assert answer == p.result and not _wrong_equations(text), text
        guesses = [int(q) for q in re.findall(rf"{p.a} / {p.b} = (\d+)\?", text)]
        assert guesses[0] % 10 == 5 and abs(guesses[0] // 10 - p.result // 10) <= 1, text
        tens_right += guesses[0] // 10 == p.result // 10
        tries = text.split(" Wait, ")[1:]
        for before, after, q in zip(guesses, guesses[1:], tries, strict=False):
            if abs(after - before) == 1:
                # A move by one: the product moves by the divisor, from the last product.
                sign = "+" if after > before else "-"
                head = f"{p.a} / {p.b} = {after}? {before * p.b} {sign} {p.b} = {after * p.b}. "
                assert q.startswith(head), q
                steps += 1
            else:  # a move by ten: multiplied back again, in columns
                assert re.match(rf"{p.a} / {p.b} = {after}\? \d\*{p.b}=", q), q
        # Every comparison names the product just computed, by either route.
        products = re.findall(r"(?:= |So \d+ \* \d+ = )(\d+)\. (\d+) vs", text)
        assert products and all(x == y for x, y in products), text
    assert 0.85 < tens_right / 400 < 0.95 and steps > 500
    # Drill pages practise the product steps, all right; nobody steps by default.
    pages = [corpus._fact_sheet(rng, cfg) for _ in range(400)]
    # (countdown's step drill stops at 150 + 25)
    steps = [m for page in pages for m in re.findall(r"(\d{3}) ([-+]) (\d) = (\d+)", page)]
    big = [m for m in steps if int(m[0]) > 175]
    assert len(big) > 100
    for x, op, b, v in big:
        assert int(x) % int(b) == 0 and int(v) == int(x) + int(op + b)
    plain = [corpus._fact_sheet(random.Random(9), CFG) for _ in range(400)]
    assert not any(int(x) > 175 for page in plain for x in re.findall(r"(\d{3}) [-+] \d = ", page))


def test_tens_first_checkers_divide_the_leading_digits_then_walk_the_units_by_ones():
    cfg = CorpusConfig(division_work_share=1.0, tens_first_share=1.0)
    rng = random.Random(6)
    task = ArithmeticTask(ops=("/",))
    walks = []
    for _ in range(400):
        p = task.sample(rng, "train")
        text, answer = corpus._arith_trace(p, "guess", cfg, EN, rng)
        assert answer == p.result and not _wrong_equations(text), text
        # The tens from the dividend's leading digits, with the remainder; then the middle.
        lead = p.a // 10
        tens, rem = divmod(lead, p.b)
        assert tens == p.result // 10 and text.startswith(
            f"{lead} / {p.b} = {tens} r {rem}. {p.a} / {p.b} = {tens}5? "
        ), text
        guesses = [int(q) for q in re.findall(rf"{p.a} / {p.b} = (\d+)\?", text)]
        # By ones to the quotient, never by ten: the walk is as long as the units are off.
        assert all(abs(b - a) == 1 for a, b in zip(guesses, guesses[1:], strict=False)), text
        assert guesses[-1] == p.result and len(guesses) == 1 + abs(5 - p.result % 10)
        assert "much" not in text and text.count("Wait,") == len(guesses) - 1
        walks.append(len(guesses))
    assert max(walks) == 6 and 3.0 < sum(walks) / len(walks) < 4.0
    # In Chinese: the remainder in words.
    zh = corpus._division_check(
        arithmetic.Problem(294, 7, "/"), cfg, lambda i: corpus.PHRASES["zh"], rng
    )[0]
    assert zh.startswith("29 / 7 = 4 余 1。 294 / 7 = 45？"), zh
    # Drill pages practise the tens facts, all right, for dividends the tasks draw.
    pages = [corpus._fact_sheet(rng, cfg) for _ in range(400)]
    facts = [m for page in pages for m in re.findall(r"(\d+) / (\d) = (\d) r (\d)", page)]
    assert len(facts) > 300
    for lead, b, t, r in facts:
        assert int(lead) == int(t) * int(b) + int(r) and int(r) < int(b) and 1 <= int(t) <= 9
    # Nobody finds the tens first by default, and the default mix's pages hold no such fact.
    plain = [corpus._fact_sheet(random.Random(9), CFG) for _ in range(400)]
    assert not any(" r " in page for page in plain)
    default = corpus._arith_trace(arithmetic.Problem(294, 7, "/"), "guess", WORKS, EN, rng)[0]
    assert not default.startswith("29 / 7")


def _corpus_sha256(cfg: CorpusConfig, n: int = 2000) -> str:
    """sha256 of a mix's first n documents: a corpus pinned draw for draw."""
    return hashlib.sha256("\x00".join(documents(cfg, n)).encode()).hexdigest()


def test_tens_slip_rate_writes_a_tens_fact_one_off_and_recovers_with_a_move_by_ten():
    def checks(rate: float, n: int = 600) -> list[tuple[arithmetic.Problem, str]]:
        cfg = CorpusConfig(
            division_work_share=1.0, tens_first_share=1.0, far_divisors=6, tens_slip_rate=rate
        )
        rng = random.Random(11)
        task = ArithmeticTask(ops=("/",))
        return [
            (p, corpus._arith_trace(p, "guess", cfg, EN, rng))
            for p in (task.sample(rng, "train") for _ in range(n))
        ]

    low = high = ten_moves = 0
    for p, (text, answer) in checks(1.0):
        # Every writer slips on the quotient digit (the remainder is the true one), guesses the
        # middle of the wrong ten, and still ends on the true quotient.
        lead = p.a // 10
        tens, rem = divmod(lead, p.b)
        m = re.match(rf"{lead} / {p.b} = (\d) r {rem}\. {p.a} / {p.b} = (\d+)\? ", text)
        assert m and int(m[2]) == int(m[1]) * 10 + 5 and abs(int(m[1]) - tens) == 1, text
        low += int(m[1]) < tens
        high += int(m[1]) > tens
        assert answer == p.result and not _wrong_equations(text), text
        guesses = [int(q) for q in re.findall(rf"{p.a} / {p.b} = (\d+)\?", text)]
        assert guesses[-1] == p.result
        # Six or more divisors off (any wrong ten but a quotient ending in 0 below it): "much",
        # one move by ten, then at most five by ones; closer, by ones only.
        off = abs(guesses[0] - p.result)
        steps = [abs(y - x) for x, y in zip(guesses, guesses[1:], strict=False)]
        if off >= 6:
            ten_moves += 1
            assert "much" in text and steps[0] == 10 and set(steps[1:]) <= {1}, text
            assert len(steps) <= 6
        else:
            assert "much" not in text and set(steps) <= {1}, text
    assert ten_moves > 0.8 * (low + high) and 0.65 < low / (low + high) < 0.85

    # At a rate of 0.2 about a fifth slip; at 0 nobody does.
    def slip_share(rate: float) -> float:
        slipped = [
            not text.startswith(f"{p.a // 10} / {p.b} = {p.a // 10 // p.b} r")
            for p, (text, _) in checks(rate)
        ]
        return sum(slipped) / len(slipped)

    assert 0.15 < slip_share(0.2) < 0.25 and slip_share(0.0) == 0
    # A quotient digit of 9 can only slip low, of 0 only high.
    assert {corpus._slipped_tens(9, random.Random(s)) for s in range(50)} == {8}
    assert {corpus._slipped_tens(0, random.Random(s)) for s in range(50)} == {1}
    # Unset, R2's tens-first mix is the corpus it was before the knob existed, draw for draw
    # (the hash of commit dd9c625's first 2,000 documents of that mix): R2's base, pretrained
    # from it, stays reproducible from its documented command.
    r2 = CorpusConfig(
        tags_given_template=0.65,
        guess_opener_share=0.1,
        tags_given_guess=0.15,
        division_work_share=0.25,
        mix_share=0.3,
        tens_first_share=1.0,
        far_divisors=6,
    )
    assert _corpus_sha256(r2) == (
        "3c65d13d747dc562cd78cf4ba14b1bbc33e3f0a19bacae7684b0ee9ce6c5ffe6"
    )


def _multiples_checks(n: int, seed: int, **knobs: float):
    """(config, rng, [(problem, text)]): n division checks by tens-first checkers who find the
    tens by multiples, half of them from a slipped first try, each ending on the quotient with
    every column fact right."""
    cfg = CorpusConfig(
        division_work_share=1.0,
        tens_first_share=1.0,
        far_divisors=6,
        tens_slip_rate=0.5,
        tens_by_multiples=1.0,
        **knobs,
    )
    rng = random.Random(seed)
    task = ArithmeticTask(ops=("/",))
    out = []
    for _ in range(n):
        p = task.sample(rng, "train")
        text, answer = corpus._arith_trace(p, "guess", cfg, EN, rng)
        assert answer == p.result and not _wrong_equations(text), text
        out.append((p, text))
    return cfg, rng, out


def test_tens_by_multiples_finds_the_tens_by_compared_multiples_from_a_slipped_first_try():
    cfg, rng, checks = _multiples_checks(600, seed=12)
    step = re.compile(r"(\d+)\*(\d)=(\d+) ([<>=]) (\d+)")
    slipped = 0
    for p, text in checks:
        lead, tens = p.a // 10, p.result // 10
        head, _, rest = text.partition(". ")
        assert head.startswith(f"{lead} / {p.b}: ") and head.endswith(f", so {tens}"), text
        # Every multiple and every comparison with the leading digits is right, and they move
        # one at a time away from the side they start on, ending where lead lies between two.
        steps = step.findall(head)
        ks = [int(k) for k, *_ in steps]
        for k, b, m, rel, x in steps:
            assert int(b) == p.b and int(m) == int(k) * p.b and int(x) == lead, text
            m = int(m)
            assert rel == ("<" if m < lead else ">" if m > lead else "="), text
        assert {abs(y - x) for x, y in zip(ks, ks[1:], strict=False)} <= {1}, text
        assert tens * p.b <= lead < (tens + 1) * p.b and tens in ks, text
        slipped += ks[0] != tens
        # Then the middle of the right ten, walked by ones: the tens are never wrong.
        assert rest.startswith(f"{p.a} / {p.b} = {tens}5? ") and "much" not in text, text
    assert 0.4 < slipped / 600 < 0.6
    # The multiples in Chinese.
    zh = corpus._division_check(
        arithmetic.Problem(294, 7, "/"), cfg, lambda i: corpus.PHRASES["zh"], random.Random(1)
    )[0]
    assert re.match(r"29 / 7：(\d\*7=\d+ [<>=] 29，)+所以 4。 294 / 7 = 45？", zh), zh
    # Edge cases: a multiple equal to the leading digits stops there; a tens of 9 is bounded by
    # 10 times the divisor; a first try too high walks down.
    en = corpus.PHRASES["en"]
    assert corpus._tens_by_multiples(28, 7, 4, en) == ("28 / 7: 4*7=28 = 28, so 4.", 4)
    assert corpus._tens_by_multiples(89, 9, 8, en)[0].endswith("10*9=90 > 89, so 9.")
    assert corpus._tens_by_multiples(29, 7, 6, en) == (
        "29 / 7: 6*7=42 > 29, 5*7=35 > 29, 4*7=28 < 29, so 4.",
        4,
    )
    # Drill pages practise the multiples form, all right.
    pages = [corpus._fact_sheet(rng, cfg) for _ in range(300)]
    drilled = [m for page in pages for m in re.findall(r"\d+ / \d: [^/]*?, so \d", page)]
    assert len(drilled) > 100 and not any(" r " in page for page in pages)
    starts = []
    for item in drilled:
        lead, b = map(int, re.match(r"(\d+) / (\d)", item).groups())
        assert int(item[-1]) == lead // b, item
        for k, _, m, rel, x in step.findall(item):
            m = int(m)
            assert m == int(k) * b and int(x) == lead, item
            assert rel == ("<" if m < lead else ">" if m > lead else "="), item
        starts.append(int(step.search(item)[1]) != lead // b)
    # Half of them from a slipped first try, as the checkers'.
    assert 0.4 < sum(starts) / len(starts) < 0.6


def test_tens_by_digits_compares_each_multiple_digit_by_digit_and_leaves_v_unchanged():
    cfg, rng, checks = _multiples_checks(400, seed=13, tens_by_digits=1.0)
    multiple = re.compile(r"(\d+)\*(\d)=(\d+) vs (\d+): ([^;]*?), (less|more|same)")
    for p, text in checks:
        lead, tens = p.a // 10, p.result // 10
        head, _, rest = text.partition(". ")
        steps = multiple.findall(head)
        assert steps and head.endswith(f", so {tens}") and "much" not in text, text
        assert head.count("; ") == len(steps) - 1, text
        for k, b, m, x, digits, rel in steps:
            m = int(m)
            assert int(b) == p.b and m == int(k) * p.b and int(x) == lead, text
            assert rel == ("less" if m < lead else "more" if m > lead else "same"), text
            assert digits == corpus._digits(m, lead, corpus.PHRASES["en"]), text
        assert rest.startswith(f"{p.a} / {p.b} = {tens}5? "), text
    zh = corpus._tens_by_multiples(85, 9, 8, corpus.PHRASES["zh"], by_digits=True)
    assert zh == (
        "85 / 9：8*9=72 对比 85：7 < 8，小；9*9=81 对比 85：8 = 8，1 < 5，小；"
        "10*9=90 对比 85：9 > 8，大，所以 9。",
        9,
    )
    pages = [corpus._fact_sheet(rng, cfg) for _ in range(300)]
    drilled = [m for page in pages for m in multiple.findall(page)]
    assert len(drilled) > 100
    assert all(int(m) == int(k) * int(b) for k, b, m, *_ in drilled)
    # Unset, candidate V's mix is the corpus it was before this knob existed (the hash of
    # commit 59b712e's first 2,000 documents of that mix).
    v = CorpusConfig(
        tags_given_template=0.65,
        guess_opener_share=0.1,
        tags_given_guess=0.15,
        division_work_share=0.2,
        mix_share=0.3,
        tens_first_share=1.0,
        far_divisors=6,
        tens_slip_rate=0.2,
        tens_by_multiples=1.0,
    )
    assert _corpus_sha256(v) == ("432402e487824a7f25bde0acc4ce819271c5238c184a17e56ca42400564ccc74")


def test_short_retry_share_writes_the_dividend_once_and_retries_by_the_guess_alone():
    _, _, checks = _multiples_checks(300, seed=17, short_retry_share=1.0)
    retried = 0
    for p, text in checks:
        body = text[text.index(f"{p.a} / {p.b} = ") :]
        # The division is stated once, by the first try; a later try names its guess alone.
        assert body.count("/") == 1, text
        guesses = [int(body.split(" = ", 1)[1].split("?")[0])]
        guesses += [int(q) for q in re.findall(r"Wait, (\d+)\? \d\*", body)]
        assert body.count("Wait,") == len(guesses) - 1, text
        products = [int(q) for q in re.findall(rf"So (\d+) \* {p.b} = \d+\.", body)]
        assert products == guesses and guesses[-1] == p.result, text
        # Every try still compares its product with the dividend, read from the question.
        assert [int(a) for a in re.findall(r"\d+ vs (\d+):", body)] == [p.a] * len(guesses)
        retried += len(guesses) > 1
    assert retried > 100
    zh = CorpusConfig(division_work_share=1.0, short_retry_share=1.0)
    rng, task = random.Random(3), ArithmeticTask(ops=("/",))
    zh_texts = [
        corpus._arith_trace(
            task.sample(rng, "train"), "guess", zh, lambda i: corpus.PHRASES["zh"], rng
        )[0]
        for _ in range(50)
    ]
    assert any(re.search(r"等等，\d+？ \d\*", t) for t in zh_texts)
    assert not any(re.search(r"等等，\d+ /", t) for t in zh_texts)
    # At a share, a writer keeps one habit for the whole check; both habits occur.
    _, _, half = _multiples_checks(400, seed=19, short_retry_share=0.5)
    short = [bool(re.search(r"Wait, \d+\?", t)) for _, t in half]
    restated = [bool(re.search(r"Wait, \d+ /", t)) for _, t in half]
    assert not any(s and r for s, r in zip(short, restated, strict=True))
    assert sum(short) > 40 and sum(restated) > 40


def test_base_mix_is_the_shipped_models_corpus_draw_for_draw():
    # The mix `r1lab pretrain` trains on by default (candidate X): short retries and multiples
    # compared digit by digit on top of V's mix with more templated documents in tags.
    assert corpus.BASE_MIX.short_retry_share == corpus.BASE_MIX.tens_by_digits == 1.0
    assert corpus.BASE_MIX.tags_given_template == 0.85
    assert _corpus_sha256(corpus.BASE_MIX) == (
        "708af962b367e9f51cc433251daa36a53a31c224cfa0e8ed20b96c662f6aecb7"
    )


def test_guess_opener_share_sets_how_often_a_guesser_writes_words_first():
    task = ArithmeticTask()
    for share, lo, hi in ((0.0, 0, 0), (0.1, 20, 60), (1.0, 400, 400)):
        rng = random.Random(6)
        cfg = CorpusConfig(guess_opener_share=share)
        texts = [
            corpus._arith_trace(task.sample(rng, "train"), "guess", cfg, EN, rng)[0]
            for _ in range(400)
        ]
        assert lo <= sum(bool(t) for t in texts) <= hi, share
        assert all(t in ("", *corpus.GUESS_OPENERS["en"]) for t in texts)


def test_tags_given_guess_sets_how_often_a_templated_guess_is_answered_in_tags():
    def shares(**knobs: float) -> tuple[float, float]:
        """Tag share among templated guesses (nothing or an opener in the think block), and
        among templated worked documents."""
        cfg = CorpusConfig(general_share=0, fact_share=0, verify_share=0, **knobs)
        openers = {o for lang in corpus.GUESS_OPENERS.values() for o in lang if o}
        guess, worked = [], []
        for d in documents(cfg, 3000):
            if "Assistant:" not in d:
                continue
            tagged = d.endswith("</answer>")
            body = d.split("<think>")[-1].split("</think>")[0].strip() if tagged else None
            said = d.rsplit("Assistant:", 1)[1]
            # Every worked trace writes an equation (a column fact, a search step, "41 * 7 = 287").
            is_guess = body in ("", *openers) if tagged else "=" not in said
            (guess if is_guess else worked).append(tagged)
        return sum(guess) / len(guess), sum(worked) / len(worked)

    g_none, w_none = shares()
    assert abs(g_none - 0.5) < 0.06 and abs(w_none - 0.5) < 0.08  # None: as everyone
    g0, w0 = shares(tags_given_guess=0.0)
    assert g0 == 0.0 and abs(w0 - 0.5) < 0.08
    g1, w1 = shares(tags_given_guess=1.0, tags_given_template=0.2)
    assert g1 == 1.0 and abs(w1 - 0.2) < 0.08
    # Unset, the default corpus is the one it was before the knob existed, draw for draw (the
    # hash of commit 5099864's first 2,000 documents; change it only with the default mix).
    assert _corpus_sha256(CorpusConfig()) == (
        "ef113ab9b81aaf570466b8f4c81a874ca162269f2ac27a9a2ff321e8186e177b"
    )


def test_far_divisors_sets_where_much_starts_and_a_wrong_tens_costs_one_move():
    cfg = CorpusConfig(division_work_share=1.0, tens_first_share=1.0, far_divisors=6)
    rng = random.Random(8)
    ten_moves = 0
    # A verification claim whose quotient sits in the next ten (6 to 15 divisors off) is "much"
    # off and moved by ten, landing at most five away; "much" exactly from six divisors on.
    offs = []
    for _ in range(800):
        line = corpus._verify_item(EN, rng, CountdownTask(), cfg)
        m = re.match(r"Does (\d+) \* (\d+) make (\d+)\?", line)
        if not m or f"{m[3]} vs {m[3]}" in line:
            continue
        q, b, a = (int(x) for x in m.groups())
        v = VERIFY.fullmatch(line)
        assert v, line
        product, _, _, much, word, moved, sign, step, new = v.groups()[4:]
        off = abs(q * b - a) / b
        assert bool(much) == (off >= 6), line
        offs.append(off)
        if moved and much:
            assert int(step) == 10, line
            if off <= 15 and off == int(off):  # a quotient in the next ten: at most five away
                ten_moves += 1
                assert abs(a - int(new) * b) <= 5 * b, line
    next_ten = [off for off in offs if off in (6, 7, 8, 9, 11, 12, 13, 14, 15)]
    assert len(next_ten) > 0.12 * len(offs) and ten_moves > 20
    # A tens-first checker never needs it (the middle of the right tens is at most five off),
    # and a checker off by six or more moves by ten and then walks by ones, never looping.
    for _ in range(200):
        p = ArithmeticTask(ops=("/",)).sample(rng, "train")
        assert "much" not in corpus._arith_trace(p, "guess", cfg, EN, rng)[0]
    p = arithmetic.Problem(37 * 7, 7, "/")
    guesser = CorpusConfig(
        division_work_share=1.0, check_guess_accuracy=0, check_guess_spread=9, far_divisors=6
    )
    walked = set()
    for seed in range(300):
        text = corpus._division_check(p, guesser, EN, random.Random(seed))[0]
        guesses = [int(g) for g in re.findall(r"259 / 7 = (\d+)\?", text)]
        steps = [abs(y - x) for x, y in zip(guesses, guesses[1:], strict=False)]
        assert guesses[-1] == 37 and all(
            s == (10 if abs(x - 37) >= 6 else 1) for s, x in zip(steps, guesses, strict=False)
        ), text
        walked.add(guesses[0])
    assert {27, 30, 43, 47} <= walked  # six or more off: moved by ten at once

    # Drill: `tens_drill_share` of the column-fact slots hold tens facts.
    def tens_facts(share: float) -> int:
        drill = CorpusConfig(tens_first_share=1.0, tens_drill_share=share)
        pages = [corpus._fact_sheet(random.Random(s), drill) for s in range(300)]
        return sum(len(re.findall(r"\d+ / \d = \d r \d", page)) for page in pages)

    assert tens_facts(0.5) > 1.6 * tens_facts(0.2)
    with pytest.raises(ConfigError, match="far_divisors"):
        CorpusConfig(far_divisors=5).validate()
    # Above ten, claims that miss by ten stay ten off (not "much": walked by ones), no crash.
    wide = CorpusConfig(far_divisors=16, verify_share=1.0, fact_share=0)
    pages = "\n".join(documents(wide, 60))
    assert "much" in pages and re.search(r"Does \d+ \* \d+ make", pages)
