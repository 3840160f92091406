"""`r1lab eval`: pass@1, pass@k, maj@k, format, length, reflection, self-correction, language
and readability of a model on a task (the metrics: r1lab.metrics and docs/metrics.md).

    r1lab eval                                        # shipped base model, arithmetic test split
    r1lab eval model=runs/zero/checkpoints/step-200 task.name=countdown n=16
    r1lab eval task.name=file task.path=data/gsm8k_test.jsonl task.format=gsm8k

Conventions (R1_SYSTEM.md section 3): pass@1 is the mean correctness over n sampled answers per
question (temperature 0.6, top-p 0.95 by default, as in the report), not greedy; pass@k uses the
unbiased estimator; maj@k votes over answers grouped by the task's equivalence checker. Greedy
accuracy is reported beside them. `evaluate()` is the library function the trainer calls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from r1lab.config import ConfigError, ensure, ensure_sampling
from r1lab.microworld import DEFAULT_BASE
from r1lab.run.model import DEVICE_RE, DEVICES, DTYPES, load_model, resolve_device
from r1lab.tasks import TEMPLATES, TaskConfig, encode_prompts, make_task, render_prompt

__all__ = ["EvalConfig", "EvalResult", "evaluate", "load_model", "resolve_device", "run"]


GENERATED_QUESTIONS = 128
"""Questions of a generated task when num_questions is 0 (its splits never run out)."""


@dataclass
class EvalConfig:
    model: str = str(DEFAULT_BASE)
    """Model directory (any Hugging Face causal LM with its tokenizer)."""
    task: TaskConfig = field(default_factory=TaskConfig)
    split: Literal["test", "train", "all"] = "test"
    """Which split to evaluate on (`test` is held out from pretraining and RL); `all`, for a
    file task, is every row of task.path and task.test_path."""
    num_questions: int = 0
    """Questions to evaluate (the first ones of the split, the same for every model); 0 = the
    whole split of a file task, 128 questions of a generated task. A split that holds fewer is
    evaluated whole, with a notice."""
    template: Literal[TEMPLATES] = "r1zero"  # type: ignore[valid-type]
    """Prompt template: `r1zero` (base models), `prefill` (ends in <think>), `chat`, `raw`
    (the question as written), `r1` (the readable format; with task.format_reward=
    format_readable, eval/format grades it)."""
    n: int = 8
    """Samples per question for pass@1, pass@k and maj@k."""
    ks: list[int] = field(default_factory=lambda: [1, 4, 8])
    """The k of pass@k and maj@k (each <= n)."""
    temperature: float = 0.6
    """Sampling temperature (the report's 0.6)."""
    top_p: float = 0.95
    """Nucleus sampling (the report's 0.95)."""
    max_new_tokens: int = 600
    """Completion length cap (600: the shipped micro-world model's division checks run to
    three or four tries; docs/zero.md)."""
    stop: list[str] = field(default_factory=lambda: ["</answer>"])
    """Stop strings: generation of a completion ends right after one of them."""
    greedy: bool = True
    """Also decode each question greedily and report its accuracy."""
    batch_questions: int = 32
    """Questions per generation call (memory vs speed)."""
    reflection_phrases: list[str] = field(default_factory=list)
    """Phrases that count as reflection (empty: r1lab.metrics' default list)."""
    workers: int = 2
    """Reward worker processes (0 scores in this process)."""
    seed: int = 0
    """Sampling seed."""
    out: str = ""
    """Directory for eval.json and eval.md (empty: runs/eval/<model name>-<task>)."""
    device: str = "auto"
    """`auto` (cuda if available), `cpu`, `cuda` or `cuda:N`."""
    dtype: Literal[DTYPES] = "auto"  # type: ignore[valid-type]
    """`auto` (bf16 on GPUs that support it, else fp32), `float32`, `bfloat16`, `float16`
    (GPU only)."""
    threads: int = 2
    """torch CPU threads (0 leaves torch's default)."""
    progress: bool = True
    """A live bar over the questions (`progress=false` for logs and scripts), as in `r1lab zero`."""

    def validate(self) -> None:
        ensure(
            self.num_questions >= 0,
            "num_questions",
            ">= 0 (0 = the whole split of a file, 128 of a generated task)",
            self.num_questions,
        )
        ensure(self.n >= 1, "n", ">= 1", self.n)
        ensure(
            bool(self.ks) and all(1 <= k <= self.n for k in self.ks),
            "ks",
            f"a list of k in [1, n={self.n}]",
            self.ks,
        )
        ensure_sampling(self)
        ensure(self.batch_questions >= 1, "batch_questions", ">= 1", self.batch_questions)
        ensure(
            all(p.strip() for p in self.reflection_phrases),
            "reflection_phrases",
            "non-empty phrases",
            self.reflection_phrases,
        )
        ensure(self.workers >= 0, "workers", ">= 0 (0 = in-process)", self.workers)
        ensure(bool(DEVICE_RE.match(self.device)), "device", DEVICES, self.device)
        ensure(self.threads >= 0, "threads", ">= 0 (0 = torch's default)", self.threads)


@dataclass
class EvalResult:
    metrics: dict[str, float]
    """Namespaced metrics: eval/pass@1, eval/pass@8, eval/maj@8, eval/format, ..."""
    samples: list[dict[str, Any]]
    """Per question: the question, reference, and each sample's text, answer and grades."""


def evaluate(
    model: Any,
    tokenizer: Any,
    task: Any,
    examples: Sequence[Mapping[str, Any]],
    *,
    n: int = 8,
    ks: Sequence[int] = (1, 4, 8),
    temperature: float = 0.6,
    top_p: float = 0.95,
    max_new_tokens: int = 600,
    stop: Sequence[str] = ("</answer>",),
    greedy: bool = True,
    template: str = "r1zero",
    batch_questions: int = 32,
    reflection_phrases: Sequence[str] | None = None,
    pool: Any = None,
    seed: int = 0,
    progress: bool = True,
) -> EvalResult:
    """Sample, grade and summarise. `pool` is an r1lab RewardPool (None: score in-process)."""
    from r1lab import metrics
    from r1lab.rewards import CompositeReward, RewardPool
    from r1lab.rollout import Sampler, SamplingParams

    ks = sorted({k for k in ks if k <= n})
    sampler = Sampler(model, tokenizer)
    prompt_texts = [render_prompt(ex["question"], template, tokenizer) for ex in examples]
    prompts = encode_prompts(prompt_texts, template, tokenizer)  # what the sampler feeds the model
    sampled = SamplingParams(
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        stop=tuple(stop),
        n=n,
    )
    greedy_params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens, stop=tuple(stop))
    groups: list = []
    greedy_groups: list = []
    with _progress(progress, len(prompts)) as advance:
        for start in range(0, len(prompts), batch_questions):
            chunk = prompts[start : start + batch_questions]
            groups.extend(sampler.generate(chunk, sampled, seed=seed + start))
            if greedy:
                greedy_groups.extend(sampler.generate(chunk, greedy_params))
            advance(len(chunk))

    # Grade with the task's own rewards: its accuracy reward decides correctness, its format
    # reward decides compliance, so evaluation and training agree by construction.
    # A task without an accuracy reward (general requests: no rule may train on them) is graded
    # by its own `is_correct`, in-process.
    spec = task.rewards
    parts = {spec.format: 0.0} if not spec.accuracy else {spec.accuracy: 1.0, spec.format: 0.0}
    grader = CompositeReward(parts, {k: dict(v) for k, v in spec.params.items() if k in parts})
    flat = [c for g in groups for c in g] + [c for g in greedy_groups for c in g]
    # Groups are in question order (prompt_index restarts in every generation call).
    flat_examples = []
    for gi, g in enumerate(groups):
        flat_examples.extend([examples[gi]] * len(g))
    for gi, g in enumerate(greedy_groups):
        flat_examples.extend([examples[gi]] * len(g))
    texts = [c.text for c in flat]
    # In-process without a pool, under the same guard: one failed item scores 0, not the run.
    graded = (pool or RewardPool(workers=0)).score(grader, texts, flat_examples)

    def ok(part: float) -> bool:
        return part >= 1 - 1e-9

    if spec.accuracy:
        correct = [ok(r.parts[spec.accuracy]) for r in graded]
    else:
        correct = [_judged(task, t, ex) for t, ex in zip(texts, flat_examples, strict=True)]
    formatted = [ok(r.parts[spec.format]) for r in graded]
    phrases = (
        tuple(reflection_phrases) if reflection_phrases else metrics.DEFAULT_REFLECTION_PHRASES
    )

    num = len(examples) * n
    finished = [c.finish_reason != "length" for c in flat[:num]]
    self_corrected = [
        metrics.self_corrects(t, c, phrases)
        for t, c in zip(texts[:num], correct[:num], strict=True)
    ]
    wrong_summary = [metrics.wrong_summary(t) for t in texts[:num]]
    readable = [
        metrics.readability(t, _language(ex), done)["readable"] if _known(ex) else None
        for t, ex, done in zip(texts[:num], flat_examples[:num], finished, strict=True)
    ]

    samples, pass_k, maj_k = [], {k: [] for k in ks}, {k: [] for k in ks}
    for qi, ex in enumerate(examples):
        rows = range(qi * n, (qi + 1) * n)
        c = sum(correct[i] for i in rows)
        for k in ks:
            pass_k[k].append(metrics.pass_at_k(n, c, k))
        answers = [task.extract_answer(texts[i]) for i in rows]
        for k in ks:
            # maj@k votes over the first k samples, grouped by the task's equivalence.
            grades = [correct[i] for i in rows][:k]
            maj_k[k].append(
                float(
                    metrics.maj_at_k_correct(
                        answers[:k], grades, lambda a, b, ex=ex: task.equivalent(a, b, ex)
                    )
                )
            )
        record = {
            "id": ex.get("id"),
            "question": ex["question"],
            "prompt": prompt_texts[qi],
            "reference": ex.get("answer"),
            "samples": [
                {
                    "text": texts[i],
                    "answer": answers[i - qi * n],
                    "correct": correct[i],
                    "format": formatted[i],
                    "tokens": len(flat[i].token_ids),
                    "finish": flat[i].finish_reason,
                    "self_corrects": self_corrected[i],
                    "readable": readable[i],
                    "wrong_summary": wrong_summary[i],
                }
                for i in rows
            ],
        }
        if greedy:
            gi = len(examples) * n + qi
            record["greedy"] = {"text": texts[gi], "correct": correct[gi]}
        samples.append(record)

    lengths = [len(c.token_ids) for c in flat[:num]]
    length = metrics.length_stats(lengths)
    out: dict[str, float] = {
        "eval/questions": float(len(examples)),
        "eval/samples_per_question": float(n),
        "eval/format": sum(formatted[:num]) / num,
        "eval/reflection_rate": metrics.reflection_rate(texts[:num], phrases),
        "eval/self_correction_rate": sum(self_corrected) / num,
        "eval/truncated": sum(c.finish_reason == "length" for c in flat[:num]) / num,
        "eval/wrong_summary_rate": sum(wrong_summary) / num,
    }
    # Does reflecting pay? Accuracy of the completions with and without a reflection phrase
    # (each key only when such completions exist).
    reflective = [metrics.has_reflection(t, phrases) for t in texts[:num]]
    for key, group in (("reflective", True), ("plain", False)):
        picked = [correct[i] for i in range(num) if reflective[i] == group]
        if picked:
            out[f"eval/accuracy_{key}"] = sum(picked) / len(picked)
    for k in ks:
        out[f"eval/pass@{k}"] = sum(pass_k[k]) / len(examples)
    for k in ks:
        if k > 1:
            out[f"eval/maj@{k}"] = sum(maj_k[k]) / len(examples)
    for key, value in length.items():
        out[f"eval/length_{key}"] = float(value)
    if greedy:
        out["eval/greedy_accuracy"] = sum(correct[num:]) / len(examples)
        out["eval/greedy_format"] = sum(formatted[num:]) / len(examples)
    # Everything below is over the sampled completions, one row per completion.
    rows = flat_examples[:num]
    out.update(_language_metrics(texts[:num], rows, readable))
    out.update(_per_language(rows, correct, formatted, lengths, texts, phrases))
    out.update(_task_metrics(task, texts[:num], rows))
    return EvalResult(out, samples)


def _language(example: Mapping[str, Any]) -> str:
    return example.get("language", "en")


def _known(example: Mapping[str, Any]) -> bool:
    """Whether the example's language is a natural language r1lab measures (a code dataset's
    `language: python` is not)."""
    from r1lab.rewards.language import LANGUAGE_SCRIPTS

    return _language(example) in LANGUAGE_SCRIPTS


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def _language_metrics(
    texts: Sequence[str], rows: Sequence[Mapping[str, Any]], readable: Sequence[bool | None]
) -> dict[str, float]:
    """Language consistency against each question's language, mixed-language rates per target
    language (`mixed_language_rate` for English, `mixed_language_rate_<lang>` otherwise) and
    the share of readable completions; over completions whose language is known (none: {})."""
    from r1lab import metrics
    from r1lab.rewards.language import language_consistency

    known = [i for i, ex in enumerate(rows) if _known(ex)]
    if not known:
        return {}
    out = {
        "eval/language_consistency": _mean(
            [language_consistency(texts[i], rows[i], language=_language(rows[i]))[0] for i in known]
        )
    }
    for lang in sorted({_language(rows[i]) for i in known}):
        mine = [i for i in known if _language(rows[i]) == lang]
        key = "eval/mixed_language_rate" + ("" if lang == "en" else f"_{lang}")
        out[key] = _mean([metrics.mixed_language(texts[i], lang) for i in mine])
    out["eval/readability"] = _mean([bool(readable[i]) for i in known])
    return out


def _per_language(
    rows: Sequence[Mapping[str, Any]],
    correct: Sequence[bool],
    formatted: Sequence[bool],
    lengths: Sequence[int],
    texts: Sequence[str],
    phrases: Sequence[str],
) -> dict[str, float]:
    """eval/<lang>/pass@1, format, length_mean and reflection_rate, when the questions are in
    more than one language (else {}: the overall numbers say it all)."""
    from r1lab import metrics

    languages = sorted({str(_language(ex)) for ex in rows})
    if len(languages) < 2:
        return {}
    out: dict[str, float] = {}
    for lang in languages:
        mine = [i for i, ex in enumerate(rows) if str(_language(ex)) == lang]
        out[f"eval/{lang}/pass@1"] = _mean([correct[i] for i in mine])
        out[f"eval/{lang}/format"] = _mean([formatted[i] for i in mine])
        out[f"eval/{lang}/length_mean"] = _mean([lengths[i] for i in mine])
        out[f"eval/{lang}/reflection_rate"] = metrics.reflection_rate(
            [texts[i] for i in mine], phrases
        )
    return out


def _task_metrics(
    task: Any, texts: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> dict[str, float]:
    """What the task measures itself, as eval/<key>.

    - `task.trace_stats(completion) -> {key: float}`: each key averaged over the completions
      that report it (the countdown task's `candidates`).
    - `task.extra_metrics(completions, examples) -> {key: float}`, one example per completion
      (the general task's helpful / harmless / over-refusal rates). Keys already under `eval/`
      are kept as they are.
    """
    out: dict[str, float] = {}
    trace_stats = getattr(task, "trace_stats", None)
    if trace_stats is not None:
        sums: dict[str, list[float]] = {}
        for text in texts:
            for key, value in trace_stats(text).items():
                sums.setdefault(key, []).append(float(value))
        out.update({f"eval/{key}": _mean(values) for key, values in sums.items()})
    extra = getattr(task, "extra_metrics", None)
    if extra is not None:
        for key, value in extra(list(texts), list(rows)).items():
            out[key if key.startswith("eval/") else f"eval/{key}"] = float(value)
    return out


def _judged(task: Any, text: str, example: Mapping[str, Any]) -> bool:
    """`task.is_correct` under the reward guard's rule: an item that raises scores as wrong."""
    try:
        return bool(task.is_correct(text, example))
    except Exception:  # one bad item never stops an evaluation
        return False


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[int], None]]:
    """A rich bar over questions (a no-op when disabled)."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    ) as bar:
        task = bar.add_task("eval", total=total)
        yield lambda n: bar.advance(task, n)


def markdown_table(metrics: Mapping[str, float], title: str = "") -> str:
    """A two-column markdown table of metrics, rates shown as percentages."""
    rows = [f"| {title or 'metric'} | value |", "|---|---|"]
    for key, value in metrics.items():
        name = key.split("/", 1)[-1]
        rates = ("pass@", "maj@", "format", "rate", "accuracy", "trunc", "consistency", "readab")
        is_rate = any(s in name for s in rates)
        if is_rate:
            shown = f"{100 * value:.1f}%"
        elif float(value).is_integer():
            shown = f"{int(value)}"
        else:
            shown = f"{value:.1f}"
        rows.append(f"| {name} | {shown} |")
    return "\n".join(rows)


def eval_examples(task: Any, cfg: EvalConfig) -> tuple[list[dict[str, Any]], str]:
    """The questions `cfg` evaluates, and a line saying how many, of what, from where.

    A file task's split is evaluated whole unless `num_questions` asks for fewer (and when it
    asks for more, the line says so); a test file alone is its test split; `split=all` is every
    row. A generated task has no end, so it takes `num_questions` (default 128) questions.
    """
    n = cfg.num_questions or None
    if not hasattr(task, "source"):  # a generated task: any number of questions per split
        if cfg.split == "all":
            raise ConfigError(
                f"'split' must be test or train for the generated task {task.name}, got 'all'"
            )
        examples = task.examples(cfg.split, n or GENERATED_QUESTIONS)
        return examples, f"the {cfg.split} split of the generated {task.name} task"
    t = cfg.task
    if cfg.split == "all":
        pool = [*task.train, *task.test]
        where = f"every row of {' and '.join(p for p in (t.path, t.test_path) if p)}"
    elif cfg.split == "test" and t.test_path:
        pool, where = task.test, f"the test file {t.test_path}"
    elif cfg.split == "test":
        pool = task.test
        where = (
            f"the test split of {t.path}, the {len(pool)} of its {len(task.train) + len(pool)} "
            "rows a seeded hash holds out from training (split=all, or task.test_path=FILE, "
            "evaluates a whole file)"
        )
    else:
        pool, where = task.train, f"the train split of {t.path}"
    if not pool:
        raise ConfigError(f"{t.path or t.test_path}: the {cfg.split} split is empty")
    examples = [dict(ex) for ex in pool[:n]]
    if n is not None and n > len(pool):
        where += f"; num_questions={n} asked for more, so all {len(pool)} are evaluated"
    elif n is not None and n < len(pool):
        where = f"the first {n} (seeded-hash order) of {where}; num_questions=0 evaluates all"
    else:
        where = f"all of {where}"
    return examples, where


def run(cfg: EvalConfig) -> int:
    import torch
    from rich.console import Console

    from r1lab.config import validate
    from r1lab.rewards import RewardPool

    validate(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    task = make_task(cfg.task)
    out = Path(cfg.out or f"runs/eval/{Path(cfg.model).name}-{task.name}")
    if out.exists() and not out.is_dir():  # found now, not after the evaluation
        raise ConfigError(
            f"out={out} is a file; eval writes eval.json and eval.md into a directory"
        )
    examples, where = eval_examples(task, cfg)
    model, tokenizer = load_model(cfg.model, cfg.device, cfg.dtype, cfg.template)
    print(f"evaluating {len(examples)} questions x {cfg.n} samples: {where}")
    t0 = time.time()
    with RewardPool(workers=cfg.workers) as pool:
        result = evaluate(
            model,
            tokenizer,
            task,
            examples,
            n=cfg.n,
            ks=cfg.ks,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            max_new_tokens=cfg.max_new_tokens,
            stop=cfg.stop,
            greedy=cfg.greedy,
            template=cfg.template,
            batch_questions=cfg.batch_questions,
            reflection_phrases=cfg.reflection_phrases or None,
            pool=pool if cfg.workers > 0 else None,
            seed=cfg.seed,
            progress=cfg.progress,
        )
    elapsed = time.time() - t0
    out.mkdir(parents=True, exist_ok=True)
    title = f"{Path(cfg.model).name} on {task.name}/{cfg.split}"
    table = markdown_table(result.metrics, title)
    payload = {
        "config": asdict(cfg),
        "questions_from": where,
        "metrics": result.metrics,
        "seconds": elapsed,
    }
    (out / "eval.json").write_text(json.dumps({**payload, "samples": result.samples}, indent=1))
    (out / "eval.md").write_text(table + "\n")
    console = Console()
    console.print(table)
    console.print(f"[dim]{elapsed:.1f}s; wrote {out}/eval.json and eval.md[/dim]")
    return 0
