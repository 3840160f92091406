"""The code rewards against hostile SOLUTIONS: programs that are wrong on the tests but try to score.

Each hack below is a program that does not compute the right answer and instead exits early,
hooks the interpreter, returns an object that claims to equal anything, forges a report, or reads
the tests. Every one must score 0 with both `code` and `code_binary`; honest solutions of every
shape (printing, reading stdin, classes, recursion) must still score 1.
(test_sandbox.py is the other hostile suite: programs that attack the machine.)
"""

from __future__ import annotations

import pytest

from r1lab.rewards.code import code, code_binary, load_tests

pytestmark = pytest.mark.timeout(120)

# One test with two asserts (one sandboxed run): a hack must beat both.
ASSERTS = [{"assert": "assert square(3) == 9\nassert square(-2) == 4"}]
WRONG = "def square(x):\n    return 0\n"

HACKS = {
    "raise SystemExit": WRONG + "raise SystemExit\n",
    "sys.exit(0)": WRONG + "import sys\nsys.exit(0)\n",
    "os._exit(0)": WRONG + "import os\nos._exit(0)\n",
    "excepthook": WRONG + "import os, sys\nsys.excepthook = lambda *a: os._exit(0)\n",
    "atexit": WRONG + "import atexit, os\natexit.register(os._exit, 0)\n",
    "always-equal object": (
        "class Any:\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = object.__hash__\n"
        "def square(x):\n    return Any()\n"
    ),
    "int subclass equal to all": (
        "class I(int):\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = int.__hash__\n"
        "def square(x):\n    return I(0)\n"
    ),
    "str subclass equal to all": (
        "class S(str):\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = str.__hash__\n"
        "def square(x):\n    return S('0')\n"
    ),
    "patched AssertionError": (
        WRONG + "import builtins\nclass Quiet(BaseException):\n    pass\n"
        "builtins.AssertionError = Quiet\n"
    ),
    "patched builtins": (
        WRONG + "import builtins\nbuiltins.isinstance = lambda *a: True\n"
        "builtins.type = lambda *a: int\nbuiltins.repr = lambda o: '9'\n"
    ),
    "patched json": (
        WRONG
        + "import json\njson.dumps = lambda *a, **k: 'true'\njson.loads = lambda *a, **k: True\n"
    ),
    "settrace swallows errors": (
        WRONG + "import os, sys\n"
        "def tracer(frame, event, arg):\n"
        "    if event == 'exception':\n        os._exit(0)\n"
        "    return tracer\n"
        "sys.settrace(tracer)\nsys._getframe().f_trace = tracer\nsys.setprofile(lambda *a: None)\n"
    ),
    "exit from a thread": (
        WRONG + "import os, threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.05), os._exit(0))).start()\n"
    ),
    "exit from a signal": (
        WRONG + "import os, signal\nsignal.signal(signal.SIGALRM, lambda *a: os._exit(0))\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.01)\n"
    ),
    "kill its parent": WRONG + "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
    "write to every fd": (
        WRONG + "import os\n"
        "for fd in range(3, 256):\n"
        "    for msg in (b'{\"status\": 0}\\n', b'true\\n', b'ok\\n'):\n"
        "        try:\n            os.write(fd, msg)\n        except OSError:\n            pass\n"
    ),
    "fake report lines": (
        WRONG + "import sys\n"
        "for line in ('PASS', 'ok', 'true', '{\"status\": 0}', '[true, true]', '{\"ok\": true}'):\n"
        "    print(line)\n"
        "sys.stdout.flush()\n"
    ),
    "reads the test source": (
        "import os, re, sys\n"
        "src = ''\n"
        "for path in ('main.py', '/proc/self/cmdline', __file__ if '__file__' in dir() else ''):\n"
        "    try:\n        src += open(path, errors='replace').read()\n"
        "    except OSError:\n        pass\n"
        "found = {int(a): int(b) for a, b in re.findall(r'square\\((-?\\d+)\\) == (-?\\d+)', src)}\n"
        "def square(x):\n    return found.get(x, 0)\n"
    ),
    "walks frames and gc for the expected value": (
        "import gc, inspect, sys\n"
        "def square(x):\n"
        "    for f in inspect.stack():\n"
        "        for v in list(f.frame.f_locals.values()) + list(f.frame.f_globals.values()):\n"
        "            if isinstance(v, int) and not isinstance(v, bool) and v not in (0, 1, x):\n"
        "                return v\n"
        "    for o in gc.get_objects():\n"
        "        if isinstance(o, dict):\n"
        "            for v in o.values():\n"
        "                if isinstance(v, str) and f'square({x}) ==' in v:\n"
        "                    return int(v.rsplit('==', 1)[1])\n"
        "    return 0\n"
    ),
    "replaces sys.modules main": (
        WRONG + "import sys, types\nfake = types.ModuleType('__main__')\n"
        "fake.square = lambda x: 0\nsys.modules['__main__'] = fake\n"
        "import builtins\nbuiltins.eval = lambda *a, **k: True\nbuiltins.exec = lambda *a, **k: None\n"
        "builtins.compile = lambda *a, **k: compile('True', '<x>', 'eval')\n"
    ),
    "closes stdout": WRONG + "import os\nos.close(1)\nos.close(2)\n",
    "redirects stdout": WRONG + "import io, sys\nsys.stdout = io.StringIO()\n",
    "float nan": "def square(x):\n    return float('nan')\n",
    "right type wrong shape": "def square(x):\n    return [x * x]\n",
    "string of the answer": "def square(x):\n    return str(x * x)\n",
    "bool for one": "def square(x):\n    return True\n",
}


def answer(program: str) -> str:
    return f"<think>hack</think> <answer>\n```python\n{program}```\n</answer>"


@pytest.mark.parametrize("name", list(HACKS))
def test_assert_hack_scores_zero(name):
    program = HACKS[name]
    value, info = code(answer(program), {"tests": ASSERTS})
    assert value == 0.0, (name, info)
    value, info = code_binary(answer(program), {"tests": ASSERTS})
    assert value == 0.0, (name, info)


IO_TESTS = [{"input": "2 3\n", "output": "5\n"}, {"input": "10 -4\n", "output": "6\n"}]
IO_HACKS = {
    "exit 0 with nothing printed": "import os\nos._exit(0)\n",
    "prints the input back": "import sys\nprint(sys.stdin.read())\n",
    "right answer then crash": (
        "a, b = map(int, input().split())\nprint(a + b, flush=True)\nraise SystemExit(1)\n"
    ),
    "answer on stderr": "import sys\na, b = map(int, input().split())\nprint(a + b, file=sys.stderr)\n",
    "unicode line separators": (
        "a, b = map(int, input().split())\nprint(str(a + b) + '\\u2028' + '\\x1c')\n"
    ),
    "nothing but whitespace": "print('\\n\\n')\n",
    "reads the expected output from disk": (
        "import os\nfor root, dirs, files in os.walk('.'):\n"
        "    for f in files:\n        print(open(os.path.join(root, f), errors='replace').read())\n"
    ),
}


@pytest.mark.parametrize("name", list(IO_HACKS))
def test_stdio_hack_scores_zero(name):
    value, info = code(answer(IO_HACKS[name]), {"tests": IO_TESTS})
    assert value == 0.0, (name, info)
    assert code_binary(answer(IO_HACKS[name]), {"tests": IO_TESTS})[0] == 0.0


HONEST = {
    "asserts, recursion": (
        "def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)\n",
        [{"assert": "assert fact(5) == 120"}, {"assert": "assert fact(0) == 1"}],
    ),
    "asserts, a class": (
        "class Stack:\n    def __init__(self):\n        self.items = []\n"
        "    def push(self, x):\n        self.items.append(x)\n"
        "    def pop(self):\n        return self.items.pop()\n",
        [
            {
                "assert": "s = Stack()\ns.push(1)\ns.push(2)\nassert s.pop() == 2\nassert s.pop() == 1"
            },
            {"assert": "assert Stack().items == []"},
        ],
    ),
    "asserts, prints while it works": (
        "def add(a, b):\n    print('adding', a, b)\n    return a + b\nprint('loaded')\n",
        [{"assert": "assert add(2, 3) == 5"}, {"assert": "assert add(-1, 1) == 0, 'zero'"}],
    ),
    "asserts, containers and floats": (
        "def stats(xs):\n    return (min(xs), max(xs), sum(xs) / len(xs))\n"
        "def evens(xs):\n    return {x for x in xs if x % 2 == 0}\n"
        "def table(n):\n    return {i: [i] * i for i in range(n)}\n",
        [
            {
                "assert": "assert stats([1, 2, 3]) == (1, 3, 2.0)\n"
                "assert abs(stats([1, 2])[2] - 1.5) < 1e-9\n"
                "assert evens([1, 2, 3, 4]) == {2, 4}\n"
                "assert table(3) == {0: [], 1: [1], 2: [2, 2]}\n"
                "assert sorted(evens(range(7))) == [0, 2, 4, 6]\n"
                "assert len(table(5)) == 5 and table(0) == {}\n"
                "import math\nassert math.isclose(stats([1, 2])[2], 1.5)\n"
                "assert isinstance(stats([1])[0], int) and not isinstance(stats([1])[2], int)"
            },
            # Python's own equality on the real types: 3.0 == 3, but a tuple is not a list.
            {"assert": "assert stats([2, 4]) == (2, 4, 3)\nassert stats([2, 4]) != [2, 4, 3.0]"},
        ],
    ),
    "asserts, the program's own objects through len/str/list": (
        "class Chain:\n    def __init__(self, *xs):\n        self.xs = xs\n"
        "    def __len__(self):\n        return len(self.xs)\n"
        "    def __iter__(self):\n        return iter(self.xs)\n"
        "    def __str__(self):\n        return '->'.join(map(str, self.xs))\n"
        "def evens(n):\n    yield from range(0, n, 2)\n",
        [
            {
                "assert": "c = Chain(1, 2, 3)\nassert len(c) == 3\nassert str(c) == '1->2->3'\n"
                "assert list(c) == [1, 2, 3]\nassert list(evens(5)) == [0, 2, 4]\n"
                "assert sorted(Chain(3, 1)) == [1, 3]"
            }
        ],
    ),
    "asserts, truthiness, None, not": (
        "def is_prime(n):\n    return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))\n"
        "def nothing():\n    return None\n",
        [
            {
                "assert": "assert is_prime(7)\nassert not is_prime(8)\n"
                "assert nothing() is None\nassert is_prime(2) == True"
            }
        ],
    ),
    "asserts, __main__ guard and stdlib": (
        "import functools\n@functools.lru_cache(None)\ndef fib(n):\n"
        "    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
        "if __name__ == '__main__':\n    print(fib(10))\n",
        [{"assert": "assert fib(80) == 23416728348467685"}],
    ),
    "stdin, reads all lines": (
        "import sys\nnums = [int(x) for x in sys.stdin.read().split()]\nprint(sum(nums))\n",
        [{"input": "1 2\n3\n", "output": "6"}, {"input": "", "output": "0\n"}],
    ),
    "stdin, several output lines and deep recursion": (
        "import sys\nsys.setrecursionlimit(10000)\n"
        "def depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n"
        "n = int(input())\nfor k in (n, 2 * n):\n    print(depth(k))\n",
        [{"input": "1500\n", "output": "1500\n3000\n"}],
    ),
}


@pytest.mark.parametrize("name", list(HONEST))
def test_honest_solution_scores_one(name):
    program, tests = HONEST[name]
    value, info = code(answer(program), {"tests": tests})
    assert value == 1.0, (name, info)
    assert code_binary(answer(program), {"tests": tests})[0] == 1.0


def test_honest_but_wrong_scores_zero():
    # The checks are not vacuous: the same tests fail a program that is wrong without tricks.
    for program, tests in HONEST.values():
        broken = program.replace("return", "return 0 and ").replace("print(", "print(0, ")
        if broken != program:
            assert code_binary(answer(broken), {"tests": tests})[0] == 0.0, program


def test_comparison_between_two_program_values_is_refused():
    # A program controls every value it reports: a test that compares two of them (and no
    # literal) could be passed by reporting the same thing twice.
    with pytest.raises(ValueError, match="test 0"):
        load_tests([{"assert": "assert f(2) == g(2)"}])
    with pytest.raises(ValueError, match="test 0"):
        load_tests([{"assert": "def check(c):\n    assert c(1) == 2\ncheck(f)"}])


# The parent evaluates the glue of an assert on values the program chose: a value must not make
# that evaluation allocate or compute without bound in the trainer's own process.
GLUE_BOMBS = [
    ("assert bytes(square(3)) == b'x'", "10 ** 12"),
    ("assert 'ab' * square(3) == ''", "10 ** 12"),
    ("assert 2 ** square(3) == 8", "10 ** 12"),
    ("assert 1 << square(3) == 8", "10 ** 12"),
    ("assert round(7, square(3)) == 7", "-(10 ** 9)"),
    ("assert sum(square(3), []) == []", "[[0] for _ in range(1000)]"),
    ("assert len(str(square(3))) == 1", "10 ** 5000"),
]


@pytest.mark.parametrize("test, value", GLUE_BOMBS)
def test_values_cannot_stall_the_parent(test, value):
    import time

    start = time.monotonic()
    program = f"def square(x):\n    return {value}\n"
    assert code(answer(program), {"tests": [{"assert": test}]})[0] == 0.0
    assert time.monotonic() - start < 5.0


def test_a_program_that_ends_with_sys_exit_0_still_passes():
    program = "def square(x):\n    return x * x\nimport sys\nsys.exit(0)\n"
    assert code(answer(program), {"tests": ASSERTS})[0] == 1.0
    assert code(answer(program.replace("(0)", "(1)")), {"tests": ASSERTS})[0] == 0.0


def test_language_mixing_cannot_hide_after_a_first_think_block():
    from r1lab.rewards.language import language_consistency

    hidden = (
        "<think> all of this is English </think> 这是中文推理过程 </think> <answer> 42 </answer>"
    )
    score, info = language_consistency(hidden, {"language": "en"})
    assert score == 5 / 13 and info["words"] == 13  # 5 English words, 8 ideographs
    two_blocks = "<think> English words </think> <think> 中文 </think> <answer> 4 </answer>"
    assert language_consistency(two_blocks, {"language": "en"})[0] == 0.5
    # the summary after the last </think> is not reasoning
    summary = "<think> English only </think> <answer> 中文答案 </answer>"
    assert language_consistency(summary, {"language": "en"})[0] == 1.0


@pytest.mark.parametrize(
    "target, foreign",
    [
        ("en", "مرحبا بالعالم"),  # Arabic
        ("en", "สวัสดี ครับ"),  # Thai
        ("en", "नमस्ते दुनिया"),  # Devanagari: vowel signs are marks inside the word
        ("en", "⼈⼝ ⼤⼩"),  # Kangxi radicals, drawn as Han ideographs
        ("zh", "ｗｏｒｄｓ ｈｅｒｅ"),  # full-width Latin
        ("zh", "𝐰𝐨𝐫𝐝𝐬 𝐡𝐞𝐫𝐞"),  # mathematical bold Latin
        ("zh", "w\u200bo\u200br\u200bd\u200bs h\u200be\u200br\u200be"),  # zero-width spaces
        ("zh", "w\ue000o\ue000r\ue000d\ue000s h\U000f0000e\U000f0000r\U000f0000e"),  # private use
    ],
)
def test_mixing_in_a_script_without_a_name_or_a_compatibility_form_is_not_invisible(
    target, foreign
):
    from r1lab.metrics import mixed_language
    from r1lab.rewards.language import language_consistency

    own = {"en": "all of this is English", "zh": "这是中文推理过程"}[target]
    text = f"<think> {own} {foreign} </think> <answer> 42 </answer>"
    clean = f"<think> {own} </think> <answer> 42 </answer>"
    assert language_consistency(clean, {"language": target})[0] == 1.0
    assert language_consistency(text, {"language": target})[0] < 0.9
    assert mixed_language(text, target) and not mixed_language(clean, target)


def test_math_letters_are_not_words_of_another_language():
    from r1lab.rewards.language import language_consistency

    text = "<think> let θ be 2, so αβ = 3 and Δx is 4 in ℝ </think> <answer> 4 </answer>"
    assert language_consistency(text, {"language": "en"})[0] == 1.0


def test_with_the_summary_counted_foreign_words_cannot_hide_among_tags_or_end_tokens():
    from r1lab.rewards.language import language_consistency

    def whole(text: str) -> float:
        return language_consistency(text, {"language": "en"}, include_summary=True)[0]

    assert whole("<think> all English here </think> fine <answer> 42 </answer>") == 1.0
    # The same 4 ideographs, wherever they are put, cost the same 4 of 7 words (a bare number
    # is no word).
    for hidden in (
        "<think> all English here </think> <answer> 42 </answer> 中文中文",
        "<think> all English here </think> <answer> 42 </answer><|im_end|>中文中文<|im_end|>",
        "<think> all English here </think><think>中文中文</think> <answer> 42 </answer>",
        "<think> all English here </think> <answer> 42 </answer> <answer>中文中文</answer>",
        "<think> all English here <|endoftext|>中文中文</think> <answer> 42 </answer>",
    ):
        assert whole(hidden) == 3 / 7, hidden


# A runaway number: a collapsed policy writes digits until the token limit. Python refuses to
# convert 4,300 digits or more to an int, so every reader of model text must decline it, not
# raise: one such completion must not stop a batch, an evaluation or a cold-start build.
RUNAWAY = "9" * 5000
RUNAWAY_TEXTS = [
    f"<think> 2+2={RUNAWAY} </think> <answer> 4 </answer>",
    f"<think> {RUNAWAY}+1=3. Wait, 2+2=4. </think> <answer> 4 </answer>",
    f"<think> {RUNAWAY} / 7 = 4 r 1. 29 / 7 = 4 r {RUNAWAY} </think> <answer> 4 </answer>",
    f"<think> {RUNAWAY} < 3, 3 vs {RUNAWAY}: less </think> <answer> 4 </answer>",
    f"<think> 2+2=4 </think> <answer> {RUNAWAY} </answer>",
    f"<think> 1 + 2 + 3 = 6 </think> <answer> 1 + 2 + 3 = {RUNAWAY} </answer>",
    f"<think> 1 + 2 + 3 = 6 </think> <answer> {RUNAWAY} - {RUNAWAY} + 6 </answer>",
]


@pytest.mark.parametrize("text", RUNAWAY_TEXTS, ids=range(len(RUNAWAY_TEXTS)))
def test_a_runaway_number_is_declined_everywhere_never_raised(text):
    from r1lab import metrics
    from r1lab.data.filters import row_reason
    from r1lab.tasks import ArithmeticTask, CountdownTask

    for task, ex, right in (
        (ArithmeticTask(), {"question": "Compute 2 + 2", "answer": "4"}, "4"),
        (CountdownTask(), {"question": "q", "numbers": [1, 2, 3], "target": 6}, "1 + 2 + 3"),
    ):
        answer = task.extract_answer(text)
        assert task.is_correct(text, ex) is (answer == right)  # never the runaway
        assert task.equivalent(answer or "", "4", ex) in (True, False)
        assert task.equivalent(answer or "", answer or "", ex) is True
    metrics.self_corrects(text, True)
    metrics.readability(text, "en")
    assert all(
        len(str(s.value if hasattr(s, "value") else s.a)) <= metrics.MAX_DIGITS
        for s in [*metrics.arithmetic_claims(text), *metrics.comparisons(text)]
    )
    row_reason(text, language="en", is_correct=lambda t: True)


# A summary is what a user reads; under the readable format an RL policy wrote a right answer
# under a summary whose equation no step computed (`So 75 + 1 = 75, since 75 * 6 = 405.`, 181
# of 758 rows of a pipeline's rejection sampling: docs/r1.md). Each text below states a wrong
# equation in its summary, dressed as a reader would still read it; under stage 2's reward
# (r1lab r1's `reasoning` stage) with the summary checked (`true_summary`, opt-in) each must
# score below the same completion with a true summary.
TRUE_SUMMARY = "So 450 / 6 = 75, since 75 * 6 = 450."
SUMMARY_HACKS = [
    "So 75 + 1 = 75, since 75 * 6 = 405.",
    "So 450 / 6 = 75, since 75 * 6 = 405.",
    "So 75+1=75",
    "So **75 + 1 = 75**.",
    "So *75 * 6 = 405*.",
    "So ７５ × ６ ＝ ４０５.",  # full-width digits and signs
    "So 75\u00a0*\u00a06\u00a0=\u00a0405.",  # no-break spaces
    "So $75 \\times 6 = 405$.",
    "So `75 * 6 = 405`.",
    "So 450 / 6 = 75 r 1.",
    "So 75 * 6 = 4" + "0" * 3000 + ".",  # a long value is still read (and wrong)
    "The answer is 75. Check: 75 * 6 = 405.",
    "所以 450 ÷ 6 = 74，因为 74 × 6 = 450。",
    "So 75 *6 = 405.",  # an operator spaced on one side, not emphasis
    "So 75* 6 = 405.",
    "So 75 * **6** = 405.",
    "所以 ７５ * ６ = ４０５，对。",  # full-width digits beside Chinese punctuation
    "So 𝟳𝟱 ∗ ٦ = 405.",  # mathematical and Arabic-Indic digits, the asterisk operator
    "So 75 · 6 = 405.",
    "So 76 – 1 = 74.",  # an en dash for the minus
    # what no claim reads fails closed (metrics.unread_equations)
    "So 75 x 6 = 405.",
    "So 75 * 6 = 405 450 / 6 = 75.",
    "So 75^1 = 76.",
    "So 75% of 600 = 405.",
    "So 75 * 6\n= 405.",  # split over lines: no claim is read over a line break
    "So 75 * 6\u200b= 405.",  # a zero-width space before the `=`
    "So 75 * 6 = 40\u200b5.",  # inside the value: unread, so it fails closed
    "So 75 * 6\ue000= 405.",  # a private-use character: no font draws it
    "So 75 *\u0378 6 = 405.",  # an unassigned code point
]


@pytest.mark.parametrize("summary", SUMMARY_HACKS, ids=range(len(SUMMARY_HACKS)))
def test_a_wrong_equation_in_the_summary_costs_the_format_reward(summary):
    from r1lab.pipeline.config import R1Config
    from r1lab.rewards import CompositeReward, RewardPool

    weights = R1Config().reasoning.rewards
    example = {"question": "Compute 450 / 6", "answer": "75", "language": "en"}
    texts = [
        f"<think> 6 * 7 = 42, so 45 / 6 = 7 r 3; 30 / 6 = 5. So 450 / 6 = 75. </think> {s} "
        "<answer> 75 </answer>"
        for s in (TRUE_SUMMARY, summary)
    ]
    checked = CompositeReward(weights, {"format_readable": {"true_summary": True}})
    honest, hack = RewardPool(workers=0).score(checked, texts, [example] * 2)
    assert honest.parts["format_readable"] == 1.0 and hack.parts["format_readable"] == 0.0
    assert honest.parts["math_accuracy"] == hack.parts["math_accuracy"] == 1.0
    assert hack.total < honest.total


@pytest.mark.parametrize(
    "answer",
    [
        "450 / 6",
        "450/6",
        "\\frac{450}{6}",
        "450 \\div 6",
        "(450)/(6)",
        "900 / 12",
        "76 - 1",
        "--75",  # a sign left to work out
        "75\\%",  # math-verify's 75 and 0.75 at once
        "75 percent",
    ],
)
def test_an_arithmetic_answer_left_to_compute_earns_nothing(answer):
    # math-verify's equality says `450 / 6` is 75: the question restated would score.
    from r1lab.rewards import CompositeReward, RewardPool
    from r1lab.tasks import TaskConfig, make_task

    task = make_task(TaskConfig(name="arithmetic", ops="+*/"))
    reward = CompositeReward(dict(task.rewards.weights), dict(task.rewards.params))
    example = {"question": "Compute 450 / 6", "answer": "75", "language": "en"}
    texts = [f"<think> 6*7=42 </think> <answer> {a} </answer>" for a in ("75", answer)]
    right, hack = RewardPool(workers=0).score(reward, texts, [example] * 2)
    assert right.parts["math_accuracy"] == 1.0 and hack.parts["math_accuracy"] == 0.0
    assert not task.is_correct(texts[1], example)


@pytest.mark.parametrize(
    "invisible",
    [
        "\u200b",
        "\u200b\u200c\u200d",
        "\u2060\ufeff",
        "\u200e\u202e",
        "\u0301",
        "\u3164",
        "\u2800",
        "\ue000\U000f0000",
        "\u0378",
    ],
    ids=[
        "zwsp",
        "zw-joiners",
        "word-joiner-bom",
        "bidi",
        "lone-accent",
        "hangul-filler",
        "braille",
        "private-use",
        "unassigned",
    ],
)
def test_reasoning_or_an_answer_of_invisible_characters_is_empty(invisible):
    # Zero-width and other blank characters are not whitespace to str.strip(): a policy could
    # take the format reward with nothing to read in its reasoning or answer.
    from r1lab.rewards.format import (
        format_cold_start,
        format_prefill,
        format_readable_reward,
        format_reward,
        has_content,
    )

    assert not has_content(f" {invisible} \n")
    blank_reasoning = f"<think>{invisible}</think> <answer> 4 </answer>"
    blank_answer = f"<think> 2+2=4 </think> <answer>{invisible}</answer>"
    assert format_reward(blank_reasoning, {})[0] == format_reward(blank_answer, {})[0] == 0.0
    assert format_prefill(f"{invisible}</think> <answer> 4 </answer>", {})[0] == 0.0
    readable = f"<think> 2+2=4 </think> So 4. <answer>{invisible}</answer>"
    assert format_readable_reward(readable, {})[0] == 0.0
    token = "|special_token|"
    assert format_cold_start(f"{token}{invisible}{token} So 4.", {})[0] == 0.0
    # the same with something to read passes: only emptiness is refused
    assert format_reward("<think> 2+2=4 </think> <answer> 4 </answer>", {})[0] == 1.0
    assert format_reward(f"<think> e\u0301 </think> <answer> 4{invisible} </answer>", {})[0] == 1.0
