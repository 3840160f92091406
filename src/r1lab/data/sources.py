"""Where cold-start candidates come from: DeepSeek-R1's collection methods, as prompts and readers.

- `fewshot`: a model continues long-CoT exemplars (`read_exemplars`, `fewshot_prompt`);
- `direct`: a model is asked outright for a detailed answer that reflects and verifies
  (`direct_prompt`);
- `zero`: R1-Zero checkpoints are sampled with the template each was trained with
  (`resolve_zero_model`, `ZeroSource`: a cell asks the one trained on its task), or a `r1lab
  zero` run's saved samples are read (`read_zero_samples`).

The fourth method, post-processing, is `r1lab.data.filters` and `r1lab.data.readable`. Each
sampling source hands the build loop (`r1lab.data.coldstart`) `Candidate`s for the next
questions of a (task, language) cell: `PromptSource` (a prompt per question, n samples each from
a `Generator`, r1lab's sampler behind `ModelGenerator`) or `SamplesSource` (saved samples).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from r1lab.config import ConfigError
from r1lab.data.readable import parse_readable
from r1lab.rewards.language import LANGUAGE_SCRIPTS
from r1lab.tasks.base import CHAT_INSTRUCTION, R1_TEMPLATE, R1_ZERO_TEMPLATE, render_prompt

SOURCES = ("fewshot", "direct", "zero", "zero_samples")

DEFAULT_EXEMPLARS = (
    Path(__file__).resolve().parent.parent / "assets" / "coldstart" / "exemplars.jsonl"
)
"""The micro-world's exemplars: two per task, operation and language, in the readable format."""

DIRECT_INSTRUCTION = {
    "en": "{question}. Work it out step by step, then check the result and correct any mistake "
    "before you answer",
    "zh": "{question}。请一步一步地计算，然后检查结果，改正错误后再回答",
}
"""The `direct` source's request per question language ({question} is the question)."""


# --- Few-shot exemplars -----------------------------------------------------------------------


@dataclass(frozen=True)
class Exemplar:
    question: str
    completion: str
    """A long chain of thought in the readable format."""
    task: str
    """The task it shows (empty: any task)."""
    language: str
    where: str
    """"file, line N", for messages."""


def _text_field(
    row: Mapping[str, Any], name: str, where: str, default: str | None = None, empty: bool = False
) -> str:
    """`row[name]` as stripped text: required unless `default` is given, non-empty unless
    `empty`; else a ConfigError naming where the row is and the field."""
    value = row.get(name)
    value = default if value is None else value  # a null (Parquet's missing) is absent
    if value is None:
        present = ", ".join(map(str, row)) or "none"
        raise ConfigError(f"{where}: missing field '{name}' (fields present: {present})")
    if not isinstance(value, str) or not (value.strip() or empty or default is not None):
        kind = "empty" if isinstance(value, str) else f"a {type(value).__name__}"
        raise ConfigError(f"{where}: field '{name}' must be text, got {kind}")
    return value.strip()


def read_exemplars(path: str | Path) -> list[Exemplar]:
    """The exemplars of a JSONL (or Parquet) file: `question` and `completion` (in the readable
    format) on every row, `task` and `language` ("en" if absent) optional. A bad row is a
    ConfigError naming the file, the line and the field."""
    from r1lab.tasks.files import read_rows

    out = []
    for where, _, row in read_rows(str(path))["train"]:
        question = _text_field(row, "question", where)
        completion = _text_field(row, "completion", where)
        _, why = parse_readable(completion)
        if why:
            raise ConfigError(
                f"{where}: field 'completion' is not in the readable format "
                f"(<think> reasoning </think> summary <answer> answer </answer>): {why}"
            )
        language = _text_field(row, "language", where, "en")
        if language not in LANGUAGE_SCRIPTS:
            raise ConfigError(
                f"{where}: field 'language' must be one of {', '.join(LANGUAGE_SCRIPTS)}, "
                f"got {language!r}"
            )
        task = _text_field(row, "task", where, "")
        out.append(Exemplar(question, completion, task, language, where))
    return out


def pick_shots(
    exemplars: Sequence[Exemplar], task: str, language: str, rng: random.Random
) -> list[Exemplar]:
    """Every exemplar that may be shown for a question, best first: those of the question's
    task and language, then those of its language and any task; each group shuffled by `rng`.
    Exemplars in another language are never shown: they would teach mixing."""
    same = [e for e in exemplars if e.language == language and e.task == task]
    other = [e for e in exemplars if e.language == language and e.task != task]
    rng.shuffle(same)
    rng.shuffle(other)
    return same + other


# The templates whose text is an instruction followed by a `User: ... Assistant:` turn.
INSTRUCTED = ("r1zero", "prefill", "r1")


def fewshot_prompt(
    question: str,
    shots: Sequence[Exemplar],
    template: str,
    tokenizer: Any = None,
    header: bool = True,
) -> str:
    """The prompt of a question after worked exemplars, in the template's own framing:

    - `r1zero` / `prefill` / `r1`: the template's instruction once (unless `header` is False),
      then `User: q. Assistant: completion` per exemplar, one per line, then the question's
      turn (ending in ` <think>` for prefill);
    - `chat`: a conversation of user turns (the chat instruction) and assistant answers;
    - `raw`: question and completion per exemplar, separated by blank lines.
    """
    if template in INSTRUCTED:
        text = R1_TEMPLATE if template == "r1" else R1_ZERO_TEMPLATE
        head, turn = text.split("User: {prompt}")
        turn = "User: {prompt}" + turn
        shown = "".join(f"{turn.format(prompt=s.question)} {s.completion}\n" for s in shots)
        prompt = (head if header else "") + shown + turn.format(prompt=question)
        return prompt + " <think>" if template == "prefill" else prompt
    if template == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("template 'chat' needs a tokenizer that has a chat template")
        messages = []
        for s in shots:
            messages.append({"role": "user", "content": CHAT_INSTRUCTION.format(prompt=s.question)})
            messages.append({"role": "assistant", "content": s.completion})
        messages.append({"role": "user", "content": CHAT_INSTRUCTION.format(prompt=question)})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if template == "raw":
        return "".join(f"{s.question}\n{s.completion}\n\n" for s in shots) + f"{question}\n"
    raise ValueError(f"unknown template '{template}'")


def fit_fewshot(
    question: str,
    candidates: Sequence[Exemplar],
    shots: int,
    fits: Callable[[str], bool],
    template: str,
    tokenizer: Any = None,
) -> tuple[str, int] | None:
    """(prompt, number of shots) with as many of `candidates` (best first, up to `shots`) as
    `fits` allows: an exemplar that does not fit is passed over for the next. The R1-Zero
    instruction goes first when a shot fits with it; when none does, the exemplars alone
    instruct (the micro-world's 256-token context holds one shot, not the instruction too).
    None when not even one shot fits: a prompt without one is the direct source's business."""
    for header in (True, False):
        chosen: list[Exemplar] = []
        for exemplar in candidates:
            if len(chosen) == shots:
                break
            prompt = fewshot_prompt(question, [*chosen, exemplar], template, tokenizer, header)
            if fits(prompt):
                chosen.append(exemplar)
        if chosen:
            return fewshot_prompt(question, chosen, template, tokenizer, header), len(chosen)
        if template not in INSTRUCTED:
            break  # only the R1 and R1-Zero framings have an instruction to leave out
    return None


def direct_prompt(
    question: str, language: str, instruction: Mapping[str, str], template: str, tokenizer: Any
) -> str:
    """The question inside the request of its language (English's when its language has
    none), in the template."""
    request = instruction.get(language, instruction.get("en", "{question}"))
    return render_prompt(request.format(question=question), template, tokenizer)


def trained_context(path: str | Path, model: Any) -> int:
    """Tokens a prompt and its completion may take together: the sequence length the model was
    pretrained on when its r1lab.json records one (`r1lab pretrain`'s block_size: v1's
    micro-world models were trained on 256-token blocks, so positions past 256 were never
    trained though max_position_embeddings is 512), else max_position_embeddings."""
    from r1lab.run.checkpoints import checkpoint_meta

    config = checkpoint_meta(path).get("config")
    block = config.get("block_size") if isinstance(config, dict) else None
    limit = getattr(model.config, "max_position_embeddings", None) or 1 << 30
    return min(int(block), limit) if isinstance(block, int) and block > 0 else limit


# --- R1-Zero outputs --------------------------------------------------------------------------


def resolve_zero_model(path: str) -> Path:
    """The model directory of `zero_model`: a model directory as it is, or the last checkpoint
    of a `r1lab zero` / `r1lab demo` run directory (`runs/demo`)."""
    from r1lab.run.model import check_model_dir

    if not Path(path).exists():
        raise ConfigError(
            f"zero_model={path} does not exist; give a `r1lab zero` run directory (its last "
            "checkpoint is sampled; `r1lab demo` writes runs/demo) or a model directory"
        )
    return check_model_dir(path)


def zero_model_task(given: str | Path, checkpoint: Path) -> str:
    """The task an R1-Zero model was trained on: `task.name` of its run's config.yaml (the run
    directory given, or the run a checkpoint sits in, RUN/checkpoints/step-N), else the `task`
    its r1lab.json records (a checkpoint copied out of its run); "" when neither says."""
    from r1lab.rl.config import ZeroConfig
    from r1lab.run.checkpoints import checkpoint_meta
    from r1lab.run.rundir import CONFIG_FILE, saved_config

    for run in (Path(given), checkpoint.parent.parent):
        if (run / CONFIG_FILE).is_file() and (run / "checkpoints").is_dir():
            return saved_config(ZeroConfig, run).task.name
    return str(checkpoint_meta(checkpoint).get("task", ""))


@dataclass(frozen=True)
class ZeroSample:
    question: str
    completion: str
    prompt: str
    """The exact text the R1-Zero policy continued (empty when the file does not say)."""
    example: dict[str, Any]
    """The training example the question is, from the run's task."""
    where: str


def _run_of(path: Path) -> tuple[Path, list[Path]]:
    """(run directory, sample files) of `zero_samples`: a run, its samples/, or one file."""
    if path.is_file():
        return path.parent.parent, [path]
    run = path.parent if path.name == "samples" else path
    files = sorted((run / "samples").glob("*.jsonl")) if (run / "samples").is_dir() else []
    if not files:
        raise ConfigError(f"zero_samples={path}: no samples/*.jsonl (written by `r1lab zero`)")
    return run, files


def read_zero_samples(path: str | Path) -> tuple[list[ZeroSample], str]:
    """The completions a `r1lab zero` run saved (samples/step-*.jsonl), each with the training
    example it answered, and the run's task name.

    The samples say only the question; the run's config.yaml names the task, whose training
    pool (`train_pool` questions, as the trainer draws them) gives each question's example. A
    missing file, a bad row or a question that is not in the pool is a ConfigError naming the
    file, the line and the field."""
    from r1lab.rl.config import ZeroConfig
    from r1lab.run.rundir import CONFIG_FILE, saved_config
    from r1lab.tasks import make_task
    from r1lab.tasks.files import read_rows

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"zero_samples={path} does not exist; give a `r1lab zero` run directory")
    run, files = _run_of(p)
    if not (run / CONFIG_FILE).is_file():
        raise ConfigError(
            f"zero_samples={path}: no {CONFIG_FILE} in the run directory {run}; the samples "
            "alone do not say which task graded them"
        )
    cfg = saved_config(ZeroConfig, run)
    task = make_task(cfg.task)
    # The trainer's pool: generated tasks draw train_pool questions, a file task has its rows.
    n = cfg.train_pool if task.name in ("arithmetic", "countdown") else None
    pool = {ex["question"]: ex for ex in task.examples("train", n)}
    out = []
    for file in files:
        for where, _, row in read_rows(str(file))["train"]:
            question = _text_field(row, "question", where)
            completion = _text_field(row, "completion", where, empty=True)
            example = pool.get(question)
            if example is None:
                raise ConfigError(
                    f"{where}: field 'question' ({question[:60]!r}) is not a training question of "
                    f"the run's task ({cfg.task.name}, {len(pool)} questions)"
                )
            prompt = row.get("prompt") if isinstance(row.get("prompt"), str) else ""
            out.append(ZeroSample(question, completion, prompt, dict(example), where))
    return out, task.name


# --- Sampling sources: what the build loop asks for candidates -----------------------------


@dataclass
class Candidate:
    """One sampled (or read) completion of one question, before any rule."""

    source: str
    model: str
    example: dict[str, Any]
    prompt: str
    """The exact text the model continued."""
    sample_index: int
    text: str
    finished: bool
    """False when the token limit cut it."""


class Generator(Protocol):
    """Samples completions of prompt texts (`ModelGenerator`; tests use doubles)."""

    name: str
    template: str

    def fits(self, prompt: str) -> bool: ...

    def generate(
        self, prompts: Sequence[str], n: int, seed: int
    ) -> list[list[tuple[str, bool]]]: ...


class ModelGenerator:
    """A local HF causal LM behind r1lab's sampler: n completions per prompt, (text, finished)."""

    def __init__(
        self,
        name: str,
        model: Any,
        tokenizer: Any,
        template: str,
        *,
        context: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        stop: Sequence[str],
    ):
        from r1lab.rollout import Sampler, SamplingParams

        self.name, self.template, self.tokenizer = name, template, tokenizer
        self.sampler, self.sampling = Sampler(model, tokenizer), SamplingParams
        self.context = context  # prompt + max_new_tokens must fit (`trained_context`)
        self.max_new_tokens = max_new_tokens
        self.params = dict(
            temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, stop=tuple(stop)
        )

    def _ids(self, prompts: Sequence[str]) -> list[list[int]]:
        from r1lab.tasks import encode_prompts

        return encode_prompts(prompts, self.template, self.tokenizer)

    def fits(self, prompt: str) -> bool:
        return len(self._ids([prompt])[0]) + self.max_new_tokens <= self.context

    def generate(self, prompts: Sequence[str], n: int, seed: int) -> list[list[tuple[str, bool]]]:
        groups = self.sampler.generate(self._ids(prompts), self.sampling(n=n, **self.params), seed)
        return [[(c.text, c.finish_reason != "length") for c in g] for g in groups]


class Source(Protocol):
    name: str
    model: str
    notes: Counter
    """Questions passed over, by why (a prompt that does not fit the context, ...)."""

    def serves(self, cell: Any) -> bool: ...

    def model_for(self, cell: Any) -> str:
        """The model that answers `cell` (the stats name it per cell)."""
        ...

    def batch(self, cell: Any, size: int, seed: int) -> list[Candidate] | None:
        """Candidates of the next `size` questions of `cell` (`Cell.take`), or of the cell's
        share of a fixed pool; None when the source has no more."""
        ...


class PromptSource:
    """A sampling source: a prompt per question (None: it does not fit), n samples each."""

    def __init__(
        self,
        name: str,
        generator: Generator,
        prompt: Callable[[dict[str, Any], str], str | None],
        n: int,
        serves: Callable[[Any], bool] = lambda cell: True,
    ):
        self.name, self.generator, self.prompt, self.n = name, generator, prompt, n
        self.model = generator.name
        self._serves = serves
        self.notes: Counter = Counter()

    def serves(self, cell: Any) -> bool:
        return self._serves(cell)

    def model_for(self, cell: Any) -> str:
        return self.model

    def batch(self, cell: Any, size: int, seed: int) -> list[Candidate] | None:
        questions = cell.take(size)
        if not questions:
            return None
        prompts, asked = [], []
        for ex in questions:
            prompt = self.prompt(ex, cell.task_name)
            if prompt is None:
                self.notes["prompt does not fit the context"] += 1
                continue
            prompts.append(prompt)
            asked.append(ex)
        if not prompts:
            return []
        groups = self.generator.generate(prompts, self.n, seed)
        return [
            Candidate(self.name, self.model, ex, prompt, i, text, finished)
            for ex, prompt, group in zip(asked, prompts, groups, strict=True)
            for i, (text, finished) in enumerate(group)
        ]


class SamplesSource:
    """R1-Zero outputs read from a run's samples: each cell's share, once."""

    name = "zero_samples"

    def __init__(self, samples: Sequence[Any], task_name: str, model: str):
        self.samples, self.task_name, self.model = list(samples), task_name, model
        self.notes: Counter = Counter()
        self._served: set[str] = set()

    def serves(self, cell: Any) -> bool:
        return cell.task_name == self.task_name

    def model_for(self, cell: Any) -> str:
        return self.model

    def batch(self, cell: Any, size: int, seed: int) -> list[Candidate] | None:
        if cell.key in self._served:
            return None
        self._served.add(cell.key)
        return [
            Candidate(self.name, self.model, s.example, s.prompt, i, s.completion, True)
            for i, s in enumerate(self.samples)
            if s.example.get("language", "en") == cell.language
            and (not cell.op or s.example.get("op") == cell.op)
        ]


def fewshot_source(
    generator: Generator,
    exemplars: Sequence[Exemplar],
    shots: int,
    n: int,
    tokenizer: Any,
    seed: int = 0,
) -> PromptSource:
    """`fewshot`: each question after up to `shots` exemplars of its task and language (chosen
    by a seeded draw per question), n samples each; a cell whose language has no exemplar is
    not served."""

    def prompt(ex: dict[str, Any], task_name: str) -> str | None:
        language = ex.get("language", "en")
        rng = random.Random(f"{seed}/fewshot/{ex.get('id')}/{ex['question']}")
        shown = pick_shots(exemplars, task_name, language, rng)
        fit = fit_fewshot(
            ex["question"], shown, shots, generator.fits, generator.template, tokenizer
        )
        return None if fit is None else fit[0]

    def serves(cell: Any) -> bool:
        return any(e.language == cell.language for e in exemplars)

    return PromptSource("fewshot", generator, prompt, n, serves)


def direct_source(
    generator: Generator, instruction: Mapping[str, str], n: int, tokenizer: Any
) -> PromptSource:
    """`direct`: each question inside the request of its language, n samples each."""

    def prompt(ex: dict[str, Any], task_name: str) -> str | None:
        language = ex.get("language", "en")
        text = direct_prompt(ex["question"], language, instruction, generator.template, tokenizer)
        return text if generator.fits(text) else None

    return PromptSource("direct", generator, prompt, n)


class ZeroSource:
    """`zero`: R1-Zero models, each question in the template its model was trained with.

    `models` are (generator, tokenizer, task) in the order given, task being the one the model
    was trained on ("" when unknown: `zero_model_task`). A cell samples the first model trained
    on its task, else the first model given: an R1-Zero trained on one task still answers some
    questions of another, and a model per task (the micro-world trains arithmetic and countdown
    apart) lets every cell sample the model that learned it."""

    name = "zero"

    def __init__(self, models: Sequence[tuple[Generator, Any, str]], n: int):
        if not models:
            raise ValueError("ZeroSource needs at least one model")
        self.notes: Counter = Counter()
        self.by_task: list[tuple[str, PromptSource]] = []
        for generator, tokenizer, task in models:
            source = PromptSource("zero", generator, _plain_prompt(generator, tokenizer), n)
            source.notes = self.notes  # one count for the source, whichever model asked
            self.by_task.append((task, source))
        self.model = ", ".join(s.model for _, s in self.by_task)

    def pick(self, cell: Any) -> PromptSource:
        """The model that samples `cell`."""
        return self.by_task[zero_model_for([task for task, _ in self.by_task], cell.task_name)][1]

    def serves(self, cell: Any) -> bool:
        return True

    def model_for(self, cell: Any) -> str:
        return self.pick(cell).model

    def batch(self, cell: Any, size: int, seed: int) -> list[Candidate] | None:
        return self.pick(cell).batch(cell, size, seed)


def zero_model_for(tasks: Sequence[str], task_name: str) -> int:
    """Which of the zero models (by the tasks they were trained on, in the order given) a cell
    of `task_name` asks: the first trained on it, else the first."""
    return next((i for i, task in enumerate(tasks) if task == task_name), 0)


def _plain_prompt(
    generator: Generator, tokenizer: Any
) -> Callable[[dict[str, Any], str], str | None]:
    def prompt(ex: dict[str, Any], task_name: str) -> str | None:
        text = render_prompt(ex["question"], generator.template, tokenizer)
        return text if generator.fits(text) else None

    return prompt
