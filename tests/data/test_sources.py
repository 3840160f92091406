"""Cold-start sources: the shipped exemplars, few-shot and direct prompts, R1-Zero checkpoints and
saved samples, and the errors a bad file gives."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from r1lab import metrics
from r1lab.config import ConfigError
from r1lab.data.filters import row_reason
from r1lab.data.readable import parse_readable
from r1lab.data.sources import (
    DEFAULT_EXEMPLARS,
    DIRECT_INSTRUCTION,
    Exemplar,
    ZeroSource,
    direct_prompt,
    direct_source,
    fewshot_prompt,
    fewshot_source,
    fit_fewshot,
    pick_shots,
    read_exemplars,
    read_zero_samples,
    resolve_zero_model,
    trained_context,
    zero_model_for,
    zero_model_task,
)
from r1lab.microworld import DEFAULT_BASE
from r1lab.tasks import (
    R1_TEMPLATE,
    R1_ZERO_TEMPLATE,
    ArithmeticTask,
    CountdownTask,
    TaskConfig,
    arithmetic,
    countdown,
    make_task,
)
from r1lab.tasks.splits import in_split

ARITH = re.compile(r"^(?:Compute|计算) (\d+) ([-+*/]) (\d+)$")
NUMBERS = re.compile(r"\[([\d, ]+)\].*?(\d+)")


def graded_example(e: Exemplar) -> tuple[dict, object, str]:
    """(example, task, English wording) of an exemplar's question, rebuilt from its text."""
    m = ARITH.match(e.question)
    if m:
        a, op, b = int(m[1]), m[2], int(m[3])
        p = arithmetic.Problem(a, b, op)
        return {"question": e.question, "answer": str(p.result)}, ArithmeticTask(), p.question
    m = NUMBERS.search(e.question)
    nums, target = [int(x) for x in m[1].split(",")], int(m[2])
    english = countdown.QUESTION["en"].format(nums=", ".join(map(str, nums)), target=target)
    return {"question": e.question, "numbers": nums, "target": target}, CountdownTask(), english


# --- the shipped exemplars --------------------------------------------------------------------


def test_the_shipped_exemplars_are_right_readable_worked_and_from_training():
    exemplars = read_exemplars(DEFAULT_EXEMPLARS)
    cells = {(e.task, e.language) for e in exemplars}
    assert cells == {(t, lang) for t in ("arithmetic", "countdown") for lang in ("en", "zh")}
    ops = {ARITH.match(e.question)[2] for e in exemplars if e.task == "arithmetic"}
    assert ops == {"+", "*", "/"}
    for e in exemplars:
        example, task, english = graded_example(e)
        assert task.is_correct(e.completion, example), e.where
        assert in_split(english, "train"), f"{e.where}: a held-out question"
        assert metrics.readability(e.completion, e.language)["readable"], e.where
        assert not metrics.mixed_language(e.completion, e.language), e.where
        claims = metrics.arithmetic_claims(parse_readable(e.completion)[0].reasoning)
        # A wrong guess at a quotient is caught and corrected; nothing else is wrong.
        ok = all(c.right for c in claims) or metrics.self_corrects(e.completion, True)
        assert len(claims) >= 2 and ok, e.where
        # The exemplars pass the rules the data they prompt for is held to.
        is_correct = lambda t, ex=example, task=task: task.is_correct(t, ex)  # noqa: E731
        assert row_reason(e.completion, language=e.language, is_correct=is_correct) is None
        assert metrics.has_reflection(e.completion), f"{e.where}: no check"


def test_trained_context_is_the_pretraining_block_and_fewshot_prompts_keep_to_it(tiny_lm, tmp_path):
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    # A model pretrained on 256-token blocks (v1's base) never trained the positions past them,
    # though its max_position_embeddings is 512; one without an r1lab.json gets the latter, and
    # the shipped base (1,024-token blocks) the smaller of the two.
    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "r1lab.json").write_text(json.dumps({"config": {"block_size": 256}}))
    model = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=512))
    assert trained_context(v1, model) == 256
    assert trained_context(tiny_lm, model) == 512
    assert trained_context(DEFAULT_BASE, model) == 512
    wide = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=4096))
    assert trained_context(DEFAULT_BASE, wide) == 1024

    tok = AutoTokenizer.from_pretrained(DEFAULT_BASE)
    exemplars = read_exemplars(DEFAULT_EXEMPLARS)

    def fits(prompt: str) -> bool:
        return len(tok(prompt)["input_ids"]) + 128 <= 256

    head = R1_ZERO_TEMPLATE.split("User:")[0]
    fitted = {"en": 0, "zh": 0}
    for lang in ("en", "zh"):
        zh = 1.0 if lang == "zh" else 0.0
        for cfg in (TaskConfig("arithmetic", ops="+*", zh_fraction=zh), TaskConfig("countdown")):
            for ex in make_task(cfg).examples("train", 6):
                shots = pick_shots(exemplars, cfg.name, lang, random.Random(ex["id"]))
                assert all(s.language == lang for s in shots)
                fit = fit_fewshot(ex["question"], shots, 2, fits, "r1zero")
                if fit is None:  # no exemplar leaves 128 new tokens of the 256
                    continue
                assert fit[1] == 1 and fits(fit[0])
                # The instruction does not fit beside a shot: the exemplar alone instructs.
                assert not fit[0].startswith(head)
                assert fit[0].endswith(f"User: {ex['question']}. Assistant:")
                fitted[lang] += 1
    assert fitted["en"] > 0


# --- exemplar files ---------------------------------------------------------------------------


def write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


GOOD = {
    "question": "Compute 1 + 2",
    "completion": "<think> 1+2=3 </think> So 1 + 2 = 3. <answer> 3 </answer>",
    "task": "arithmetic",
}


def test_an_exemplar_file_reads_with_defaults(tmp_path):
    (e,) = read_exemplars(write(tmp_path / "ex.jsonl", [GOOD]))
    assert (e.task, e.language, e.where) == ("arithmetic", "en", f"{tmp_path}/ex.jsonl, line 1")
    (e,) = read_exemplars(write(tmp_path / "ex.jsonl", [{**GOOD, "task": None}]))
    assert e.task == ""


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"question": "q"}, "line 2: missing field 'completion'"),
        ({**GOOD, "question": "  "}, "line 2: field 'question' must be text, got empty"),
        ({**GOOD, "question": 3}, "line 2: field 'question' must be text, got a int"),
        (
            {**GOOD, "completion": "<think> 1+2=3 </think> <answer> 3 </answer>"},
            "line 2: field 'completion' is not in the readable format .*empty summary",
        ),
        ({**GOOD, "language": "fr"}, "line 2: field 'language' must be one of en, zh"),
        ("{not json", "line 2: invalid JSON"),
    ],
)
def test_a_bad_exemplar_names_the_file_line_and_field(tmp_path, bad, message):
    path = write(tmp_path / "ex.jsonl", [GOOD, bad])
    with pytest.raises(ConfigError, match=f"{re.escape(str(path))}, {message}"):
        read_exemplars(path)


def test_a_missing_exemplar_file_says_so(tmp_path):
    with pytest.raises(ConfigError, match="does not exist|not found|no such"):
        read_exemplars(tmp_path / "none.jsonl")


# --- prompts ----------------------------------------------------------------------------------


def ex(question: str, task: str = "arithmetic", language: str = "en") -> Exemplar:
    completion = f"<think> {question} work </think> So. <answer> 1 </answer>"
    return Exemplar(question, completion, task, language, "x")


def test_shots_of_the_question_task_and_language_come_first_and_no_other_language():
    pool = [ex("a1"), ex("c1", "countdown"), ex("z1", "arithmetic", "zh"), ex("a2")]
    shots = pick_shots(pool, "arithmetic", "en", random.Random(0))
    assert {s.question for s in shots[:2]} == {"a1", "a2"}
    assert [s.question for s in shots[2:]] == ["c1"]
    assert [s.question for s in pick_shots(pool, "countdown", "zh", random.Random(0))] == ["z1"]


def test_the_r1zero_fewshot_prompt_states_the_instruction_once_and_ends_in_the_question():
    prompt = fewshot_prompt("Compute 5 + 6", [ex("Compute 1 + 2"), ex("Compute 3 + 4")], "r1zero")
    head = R1_ZERO_TEMPLATE.split("User:")[0]
    assert prompt.startswith(head) and prompt.count(head) == 1
    assert "User: Compute 1 + 2. Assistant: <think> Compute 1 + 2 work </think>" in prompt
    assert prompt.index("Compute 1 + 2") < prompt.index("Compute 3 + 4")
    assert prompt.endswith("User: Compute 5 + 6. Assistant:")
    assert fewshot_prompt("q", [ex("a")], "prefill").endswith("User: q. Assistant: <think>")
    assert fewshot_prompt("q", [ex("a")], "raw") == f"a\n{ex('a').completion}\n\nq\n"
    # a cold-start model is shown its own template's instruction
    r1 = fewshot_prompt("q", [ex("a")], "r1")
    assert r1.startswith(R1_TEMPLATE.split("User:")[0]) and r1.endswith("User: q. Assistant:")
    assert fit_fewshot("q", [ex("a")], 1, lambda p: "summary" not in p, "r1")[0].startswith("User")


def test_the_chat_fewshot_prompt_is_a_conversation():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(DEFAULT_BASE)
    prompt = fewshot_prompt("q", [ex("a")], "chat", tok)
    assert prompt.count("<|im_start|>user") == 2 and prompt.count("<|im_start|>assistant") == 2
    assert prompt.endswith("<|im_start|>assistant\n")
    assert ex("a").completion + "<|im_end|>" in prompt


def test_the_instruction_goes_first_when_it_fits_beside_a_shot():
    shot = ex("short")
    with_head = fewshot_prompt("q", [shot], "r1zero")
    without = fewshot_prompt("q", [shot], "r1zero", header=False)
    assert with_head.endswith(without) and len(with_head) > len(without)
    assert fit_fewshot("q", [shot], 2, lambda p: True, "r1zero")[0] == with_head
    fits = lambda p: len(p) <= len(without)  # noqa: E731
    assert fit_fewshot("q", [shot], 2, fits, "r1zero")[0] == without
    assert fit_fewshot("q", [shot], 2, lambda p: len(p) < len(without), "r1zero") is None
    assert fit_fewshot("q", [shot], 2, lambda p: len(p) < 50, "raw") is None


def test_fitting_passes_over_exemplars_that_do_not_fit_and_needs_one():
    long, short = ex("long " * 50), ex("short")
    fits = lambda p: len(p) < 700  # noqa: E731
    prompt, n = fit_fewshot("q", [long, short, ex("other")], 2, fits, "r1zero")
    assert n == 2 and "long long" not in prompt and "short" in prompt and "other" in prompt
    _, n = fit_fewshot("q", [short, ex("other"), ex("third")], 1, fits, "r1zero")
    assert n == 1
    # The long one fits only without the instruction; with too little room, nothing fits.
    prompt, n = fit_fewshot("q", [long], 2, fits, "r1zero")
    assert n == 1 and not prompt.startswith("A conversation")
    assert fit_fewshot("q", [long], 2, lambda p: len(p) < 300, "r1zero") is None


def test_the_direct_request_is_in_the_question_language():
    zh = direct_prompt("计算 294 / 7", "zh", DIRECT_INSTRUCTION, "r1zero", None)
    assert "User: 计算 294 / 7。请一步一步地计算" in zh
    en = direct_prompt("Compute 294 / 7", "en", DIRECT_INSTRUCTION, "raw", None)
    assert en == DIRECT_INSTRUCTION["en"].format(question="Compute 294 / 7")
    ja = direct_prompt("q", "ja", {"en": "{question}!"}, "raw", None)
    assert ja == "q!"


# --- R1-Zero runs -----------------------------------------------------------------------------


def zero_run(tmp_path: Path, rows: list, task: str = "arithmetic") -> Path:
    from r1lab.rl.config import ZeroConfig
    from r1lab.run.rundir import save_run_config

    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    cfg = ZeroConfig(task=TaskConfig(task), train_pool=64, out=str(run))
    save_run_config(cfg, run)
    write(run / "samples" / "step-000000.jsonl", rows)
    return run


def test_a_zero_run_samples_are_matched_to_their_training_examples(tmp_path):
    pool = ArithmeticTask().examples("train", 64)
    rows = [
        {"question": pool[5]["question"], "prompt": "P", "completion": "c", "reward": 1.0},
        {"question": pool[63]["question"], "completion": ""},
    ]
    run = zero_run(tmp_path, rows)
    for path in (run, run / "samples", run / "samples" / "step-000000.jsonl"):
        samples, task = read_zero_samples(path)
        assert task == "arithmetic"
        assert [s.example for s in samples] == [pool[5], pool[63]]
        assert [(s.prompt, s.completion) for s in samples] == [("P", "c"), ("", "")]
        assert samples[1].where.endswith("step-000000.jsonl, line 2")


def test_a_zero_sample_that_is_not_a_training_question_names_its_line(tmp_path):
    rows = [{"question": ArithmeticTask().examples("train", 1)[0]["question"], "completion": ""}]
    rows.append({"question": "Compute 1 + 1", "completion": "x"})
    run = zero_run(tmp_path, rows)
    with pytest.raises(ConfigError, match=r"step-000000.jsonl, line 2: field 'question'"):
        read_zero_samples(run)
    write(run / "samples" / "step-000000.jsonl", [{"question": rows[0]["question"]}])
    with pytest.raises(ConfigError, match="line 1: missing field 'completion'"):
        read_zero_samples(run)


def test_zero_samples_without_a_run_config_or_samples_say_so(tmp_path):
    (tmp_path / "lone").mkdir()
    lone = write(tmp_path / "lone" / "s.jsonl", [{"question": "q", "completion": "c"}])
    with pytest.raises(ConfigError, match="no config.yaml in the run directory"):
        read_zero_samples(lone)
    with pytest.raises(ConfigError, match=r"no samples/\*\.jsonl"):
        read_zero_samples(tmp_path / "lone")
    with pytest.raises(ConfigError, match="does not exist"):
        read_zero_samples(tmp_path / "nothing")


def test_zero_model_is_a_model_directory_or_a_run_s_last_checkpoint(tmp_path, tiny_lm):
    assert resolve_zero_model(str(tiny_lm)) == Path(tiny_lm)
    run = tmp_path / "demo"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no complete checkpoint yet"):
        resolve_zero_model(str(run))
    for step in (10, 40):
        ckpt = run / "checkpoints" / f"step-{step:06d}"
        ckpt.mkdir()
        for f in Path(tiny_lm).iterdir():
            (ckpt / f.name).symlink_to(f)
        (ckpt / "trainer_state.pt").write_bytes(b"")
    (run / "checkpoints" / ".step-000050.tmp-1").mkdir()  # a half-written one is never used
    assert resolve_zero_model(str(run)) == run / "checkpoints" / "step-000040"
    with pytest.raises(ConfigError, match="zero_model=.* does not exist.*r1lab demo"):
        resolve_zero_model(str(tmp_path / "runs" / "missing"))


def test_a_zero_model_s_task_is_what_its_run_trained_on(tmp_path, tiny_lm):
    from r1lab.rl.config import ZeroConfig
    from r1lab.run.rundir import save_run_config

    run = tmp_path / "zero-countdown"
    ckpt = run / "checkpoints" / "step-000030"
    ckpt.mkdir(parents=True)
    save_run_config(ZeroConfig(task=TaskConfig("countdown"), out=str(run)), run)
    assert zero_model_task(str(run), ckpt) == "countdown"  # the run given
    assert zero_model_task(str(ckpt), ckpt) == "countdown"  # a checkpoint of it
    assert zero_model_task(str(tiny_lm), Path(tiny_lm)) == ""  # a bare model says nothing
    # A checkpoint copied out of its run says it in its r1lab.json; a run's config comes first.
    copy = tmp_path / "shipped"
    copy.mkdir()
    (copy / "r1lab.json").write_text('{"task": "countdown"}')
    assert zero_model_task(str(copy), copy) == "countdown"
    (ckpt / "r1lab.json").write_text('{"task": "arithmetic"}')
    assert zero_model_task(str(ckpt), ckpt) == "countdown"


# --- sampling sources -------------------------------------------------------------------------


class FakeGenerator:
    """Fits prompts under `limit` characters; every sample is the prompt's length as text."""

    name, template = "fake", "r1zero"

    def __init__(self, limit: int):
        self.limit = limit
        self.calls: list[tuple[list[str], int, int]] = []

    def fits(self, prompt: str) -> bool:
        return len(prompt) < self.limit

    def generate(self, prompts, n, seed):
        self.calls.append((list(prompts), n, seed))
        return [[(f"sample {i}", i != 1) for i in range(n)] for _ in prompts]


def cell_of(language: str, task: str = "arithmetic"):
    from r1lab.data.coldstart import Cell

    zh = 1.0 if language == "zh" else 0.0
    return Cell(task, language, make_task(TaskConfig(task, zh_fraction=zh)), quota=10)


def test_the_fewshot_source_samples_each_question_after_its_shots():
    exemplars = read_exemplars(DEFAULT_EXEMPLARS)
    gen = FakeGenerator(limit=2000)
    source = fewshot_source(gen, exemplars, shots=2, n=3, tokenizer=None, seed=7)
    cell = cell_of("zh")
    batch = source.batch(cell, 4, seed=11)
    ((prompts, n, seed),) = gen.calls
    assert (n, seed, len(prompts)) == (3, 11, 4)
    assert len(batch) == 12 and [c.sample_index for c in batch[:3]] == [0, 1, 2]
    assert [c.finished for c in batch[:3]] == [True, False, True]
    for c, prompt in zip(batch[::3], prompts, strict=True):
        assert c.prompt == prompt and prompt.endswith(f"User: {c.example['question']}. Assistant:")
        shown = [e for e in exemplars if e.completion in prompt]
        assert len(shown) == 2 and all(e.language == "zh" for e in shown)
        assert (c.source, c.model, c.text) == ("fewshot", "fake", "sample 0")
    # Seeded per question: the same question gets the same shots again.
    again = fewshot_source(FakeGenerator(2000), exemplars, 2, 3, None, seed=7)
    assert again.batch(cell_of("zh"), 4, seed=11)[0].prompt == batch[0].prompt
    other = fewshot_source(FakeGenerator(2000), exemplars, 2, 3, None, seed=8)
    prompts_other = [c.prompt for c in other.batch(cell_of("zh"), 4, seed=11)[::3]]
    assert prompts_other != prompts
    assert source.serves(cell_of("en")) and not fewshot_source(
        gen, exemplars[:1], 2, 3, None
    ).serves(cell_of("zh"))


def test_questions_whose_prompt_does_not_fit_are_passed_over_and_counted():
    gen = FakeGenerator(limit=10)
    source = fewshot_source(gen, read_exemplars(DEFAULT_EXEMPLARS), 2, 2, None)
    assert source.batch(cell_of("en"), 3, 0) == [] and gen.calls == []
    assert source.notes == {"prompt does not fit the context": 3}
    direct = direct_source(FakeGenerator(limit=10), DIRECT_INSTRUCTION, 2, None)
    assert direct.batch(cell_of("en"), 2, 0) == []
    assert direct.notes == {"prompt does not fit the context": 2}


def test_the_zero_source_asks_each_cell_the_model_trained_on_its_task():
    arith, count = FakeGenerator(10_000), FakeGenerator(10_000)
    arith.name, count.name, count.template = "runs/demo", "runs/zero-countdown", "raw"
    source = ZeroSource([(arith, None, "arithmetic"), (count, None, "countdown")], n=2)
    countdown, division = cell_of("en", "countdown"), cell_of("zh")
    cd, ar = source.batch(countdown, 1, 5), source.batch(division, 1, 6)
    # Each model is asked its own cells' questions, in the template it was trained with.
    assert [c.model for c in cd] == ["runs/zero-countdown"] * 2 and len(count.calls) == 1
    assert count.calls[0][0] == [cd[0].example["question"]] == [cd[0].prompt]
    assert [c.model for c in ar] == ["runs/demo"] * 2 and len(arith.calls) == 1
    assert ar[0].prompt == R1_ZERO_TEMPLATE.format(prompt=ar[0].example["question"])
    assert ar[0].example["language"] == "zh" and {c.source for c in cd + ar} == {"zero"}
    assert source.model_for(countdown) == "runs/zero-countdown"
    assert source.model_for(division) == "runs/demo" and source.serves(countdown)
    # A cell no model was trained on asks the first given; the order decides between two of
    # the same task, and a model of unknown task ("") is never preferred to a matching one.
    first = ZeroSource([(count, None, "countdown"), (arith, None, "")], 1)
    assert first.model_for(division) == "runs/zero-countdown"
    assert first.model_for(countdown) == "runs/zero-countdown"
    late = ZeroSource([(arith, None, ""), (count, None, "countdown")], 1)
    assert (
        late.model_for(countdown) == "runs/zero-countdown"
        and late.model_for(division) == "runs/demo"
    )
    # One count of passed-over questions for the source, whichever model was asked.
    tight = FakeGenerator(limit=10)
    both = ZeroSource(
        [(tight, None, "arithmetic"), (FakeGenerator(limit=10), None, "countdown")], 1
    )
    assert both.batch(division, 2, 0) == [] and both.batch(countdown, 1, 0) == []
    assert both.notes == {"prompt does not fit the context": 3}
    with pytest.raises(ValueError, match="at least one model"):
        ZeroSource([], 1)
    tasks = ["", "countdown", "arithmetic", "countdown"]
    assert [zero_model_for(tasks, t) for t in ("countdown", "arithmetic", "file")] == [1, 2, 0]


def test_the_direct_and_zero_sources_ask_the_plain_question():
    gen = FakeGenerator(limit=10_000)
    cell = cell_of("en", "countdown")
    direct = direct_source(gen, DIRECT_INSTRUCTION, 1, None).batch(cell, 1, 0)
    zero = ZeroSource([(gen, None, "")], 1).batch(cell, 1, 0)
    assert "Work it out step by step" in direct[0].prompt
    assert zero[0].prompt == R1_ZERO_TEMPLATE.format(prompt=zero[0].example["question"])
    assert direct[0].example != zero[0].example  # the cell's next question, not the same one
