"""`r1lab reject`: rejection sampling from a checkpoint into an SFT dataset (DeepSeek-R1's
stage 3: about 600k reasoning rows sampled from the RL checkpoint, only the good ones kept).

    r1lab reject model=runs/r1-reasoning                  # micro-world arithmetic, runs/reject.jsonl
    r1lab reject model=runs/zero task.name=countdown n=8 out=data/cd.jsonl
    r1lab reject model=ckpt task.name=file task.path=qa.jsonl judge=http://localhost:8000

For each training question of the task, `n` completions are sampled (r1lab's batched sampler,
the checkpoint's own prompt template) and each is kept only if it passes every rule, in this
order (each drop is counted by its reason in the stats):

- `truncated`: cut by the token limit before it finished;
- `wrong_format`: the task's format reward does not give it full marks (`require_format`);
- `no_answer`, `wrong_answer`: the task's rules find no answer, or a wrong one;
- for questions the rules cannot grade (an example whose `grader` field is `judge`, e.g. a
  free-form reference answer in a data file): `unjudged` without a judge, else the judge's
  verdict, `judge_incorrect` or `judge_unparseable` (anything but exactly CORRECT or
  INCORRECT: a verdict that cannot be read is a reject);
- with `summary=rule`, a graded row's summary is now rewritten from its reasoning by rule (as
  the cold start writes it), and the rules below read the rewritten row;
- the report's filters, each switchable in `filters`: `mixed_language` (a word outside the
  question's language anywhere in the completion), `long_paragraph` (a paragraph over
  `r1lab.metrics.PARAGRAPH_WORDS` words), `code_block` (a ``` fence); and `repetition`
  (runaway repetition, `r1lab.metrics.readability`); beyond the report and off unless listed,
  `wrong_step` (a wrong arithmetic claim or comparison never revised: the cold-start data's
  rule, `r1lab.metrics.unrevised_steps`);
- `duplicate` (the same text, whitespace aside, already kept for the question),
  `near_duplicate` (word-trigram Jaccard similarity >= `near_duplicate` with one kept for it),
  `over_cap` (the question already has `max_per_prompt` rows).

The judge is a generative model given the question, the reference answer and the response's
final answer (the task's extraction, else the response's last `judge_chars` characters, so a
long completion cannot bury an instruction to the judge): a local Hugging Face causal LM, or an
OpenAI-compatible chat endpoint given by URL (vLLM, SGLang), `judge_workers` requests at a
time, with retries and a timeout.

Rows are written as they are kept, a batch of questions at a time, and `<out>.progress.json`
records how far the run got (batches done, rows written, the counts): a run stopped anywhere (a
dead endpoint, Ctrl-C, a crash) continues from its last finished batch when rerun with the same
config, and gives the rows an uninterrupted run gives (each batch's sampling is seeded by the
batch). Rows are `prompt` (the question as the task asks it) and `completion`, which
`r1lab sft` trains on with the same template, plus provenance.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from r1lab import metrics
from r1lab.config import ConfigError, ensure, ensure_sampling
from r1lab.rewards.format import THINK_CLOSE
from r1lab.run.model import DEVICE_RE, DEVICES, DTYPES
from r1lab.run.rundir import move_aside
from r1lab.tasks import TEMPLATES, TaskConfig, make_task

if TYPE_CHECKING:
    from r1lab.data.sources import ModelGenerator

FILTERS = ("mixed_language", "long_paragraph", "code_block", "repetition")
STRICT = ("wrong_step",)
"""Filters beyond the report's, off unless asked for in `filters`."""
DEDUP = ("duplicate", "near_duplicate")
REASONS = ("truncated", "wrong_format", "no_answer", "wrong_answer", "unjudged")
REASONS += ("judge_incorrect", "judge_unparseable", *FILTERS, *STRICT, *DEDUP, "over_cap")
"""Every drop reason, in the order the rules apply."""

JUDGE_PROMPT = (
    "You grade answers. Compare the response's final answer with the reference answer.\n\n"
    "Question: {question}\n\nReference answer: {reference}\n\n"
    "Response's final answer (between the markers):\n<<<\n{response}\n>>>\n\n"
    "Is the response's final answer equivalent to the reference answer? Reply with exactly one "
    "word: CORRECT or INCORRECT."
)
"""What the judge is asked; placeholders {question}, {reference}, {response}."""

_VERDICT = re.compile(r"^\s*(CORRECT|INCORRECT)\.?\s*$")


@dataclass
class RejectConfig:
    """`r1lab reject`: sample a checkpoint, keep the good completions, write an SFT dataset."""

    model: str = ""
    """The checkpoint to sample: a Hugging Face model directory, or a run directory (its last
    checkpoint)."""
    template: Literal[("", *TEMPLATES)] = ""  # type: ignore[valid-type]
    """Prompt template; empty = the one the checkpoint records (r1lab.json), else r1zero."""
    task: TaskConfig = field(default_factory=lambda: TaskConfig(ops="+*/", zh_fraction=0.2))
    """The questions (their training split) and the rules that grade completions."""
    prompts: int = 256
    """Training questions to sample (the first ones of the task's train split)."""
    n: int = 4
    """Completions sampled per question."""
    temperature: float = 0.7
    """Sampling temperature."""
    top_p: float = 0.95
    """Nucleus sampling."""
    max_new_tokens: int = 600
    """Longest completion; a completion cut by it is dropped (`truncated`). Prompt and
    completion must fit the context the model was trained on (the shipped micro-world model's:
    1,024 tokens, of which the R1-Zero prompt takes about 90)."""
    stop: list[str] = field(default_factory=lambda: ["</answer>"])
    """Strings that end a completion (kept in it)."""
    batch_prompts: int = 32
    """Questions sampled together; rows and progress are written after each batch."""
    require_format: bool = True
    """Drop completions the task's format reward does not give full marks."""
    summary: Literal["keep", "rule"] = "keep"
    """A graded completion's summary (the readable format's text between `</think>` and
    `<answer>`, what a user reads): `keep` the model's; `rule`: rewrite it from the
    completion's own reasoning as the cold start does (`r1lab.data.readable.summarize`: the
    equation that gives the answer and the one that checks it, each a right claim of the
    reasoning, else the answer in words), so no row's summary states a wrong equation. Done
    before the filters and de-duplication, which then read the rewritten row; a completion not
    in the readable format is left as it is. Opt-in: on the micro-world pipeline it kept fewer
    divisions and the model trained on the rows wrote no truer summaries (docs/r1.md)."""
    filters: list[str] = field(default_factory=lambda: [*FILTERS, *DEDUP])
    """Which of the report's filters and the de-duplication rules apply: mixed_language,
    long_paragraph, code_block, repetition, duplicate, near_duplicate; and, off by default,
    wrong_step (the cold-start data's rule: a wrong step never revised)."""
    near_duplicate: float = 0.8
    """Word-trigram Jaccard similarity at or above which a completion is a near duplicate of
    one already kept for the same question."""
    max_per_prompt: int = 2
    """Most rows kept per question (0 = no cap)."""
    judge: str = ""
    """For questions the rules cannot grade (`grader: judge`): empty (they are dropped as
    `unjudged`), an http(s) URL of an OpenAI-compatible chat server, or a local model dir."""
    judge_model: str = ""
    """The `model` field sent to a judge endpoint (empty: none sent)."""
    judge_prompt: str = JUDGE_PROMPT
    """The judge's request ({question}, {reference}, {response})."""
    judge_chars: int = 400
    """Characters of a response the judge sees when the task extracts no final answer (the
    last ones)."""
    judge_timeout: float = 60.0
    """Seconds each blocking step of a judge request may take."""
    judge_retries: int = 3
    """Extra tries of a judge request that failed in a way that may pass."""
    judge_workers: int = 8
    """Judge requests in flight at once (endpoint)."""
    judge_api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the endpoint's API key (unset: none sent)."""
    out: str = "runs/reject.jsonl"
    """The dataset (.jsonl), written incrementally; stats and progress beside it."""
    overwrite: bool = False
    """Start afresh even if `out` holds a run of another config (its files are moved aside to
    <name>.old-<time>, never deleted)."""
    seed: int = 0
    """Seed of the sampling (each batch's draw is seeded by it and the batch's index)."""
    device: str = "auto"
    """`auto` (cuda if available), `cpu`, `cuda` or `cuda:N`; the local judge's too."""
    dtype: Literal[DTYPES] = "auto"  # type: ignore[valid-type]
    """`auto` (bf16 on GPUs that support it, fp32 on CPU), `float32`, `bfloat16`, `float16`."""
    threads: int = 2
    """torch CPU threads (0 leaves torch's default)."""
    progress: bool = True
    """A line per batch on stderr."""

    def validate(self) -> None:
        ensure(bool(self.model.strip()), "model", "a checkpoint or run directory", self.model)
        self.task.validate()
        ensure(self.prompts >= 1, "prompts", ">= 1", self.prompts)
        ensure(self.n >= 1, "n", ">= 1", self.n)
        ensure_sampling(self)
        ensure(self.temperature > 0, "temperature", "> 0 (sampling)", self.temperature)
        ensure(self.batch_prompts >= 1, "batch_prompts", ">= 1", self.batch_prompts)
        known = FILTERS + STRICT + DEDUP
        bad = [f for f in self.filters if f not in known]
        ensure(not bad, "filters", f"any of {', '.join(known)}", self.filters)
        ok = 0 < self.near_duplicate <= 1
        ensure(ok, "near_duplicate", "a similarity in (0, 1]", self.near_duplicate)
        ensure(self.max_per_prompt >= 0, "max_per_prompt", ">= 0 (0 = no cap)", self.max_per_prompt)
        for key in ("judge_timeout", "judge_chars"):
            ensure(getattr(self, key) > 0, key, "> 0", getattr(self, key))
        ensure(self.judge_retries >= 0, "judge_retries", ">= 0", self.judge_retries)
        ensure(self.judge_workers >= 1, "judge_workers", ">= 1", self.judge_workers)
        ensure(self.out.endswith(".jsonl"), "out", "a .jsonl file", self.out)
        ensure(bool(DEVICE_RE.match(self.device)), "device", DEVICES, self.device)


# ---------------------------------------------------------------------------------------------
# The judge


def parse_verdict(reply: str | None) -> bool | None:
    """True for exactly CORRECT, False for exactly INCORRECT (whitespace and a final period
    aside), None for anything else, which the caller rejects."""
    if reply is None:
        return None
    m = _VERDICT.match(reply)
    return None if m is None else m.group(1) == "CORRECT"


class Judge(Protocol):
    name: str

    def judge(self, requests: Sequence[str]) -> list[str | None]:
        """The judge's reply to each request (None: no reply)."""
        ...


class EndpointJudge:
    """A chat endpoint, `workers` requests at a time; a dead endpoint raises (after retries)."""

    def __init__(self, client: Any, workers: int):
        self.client, self.workers = client, workers
        self.name = f"{client.url} ({client.model})" if client.model else client.url

    def check(self) -> None:
        self.client.complete("Reply with OK.", max_tokens=4)

    def judge(self, requests: Sequence[str]) -> list[str | None]:
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(lambda r: self.client.complete(r, max_tokens=8), requests))


class ModelJudge:
    """A local causal LM, greedy (`r1lab.data.rewriter.ModelRewriter` underneath)."""

    def __init__(self, path: str, device: str, dtype: str):
        from r1lab.data.rewriter import ModelRewriter

        self.name = path
        self.model = ModelRewriter(path, device=device, dtype=dtype, max_new_tokens=8)

    def judge(self, requests: Sequence[str]) -> list[str | None]:
        return self.model.complete(requests, stop=("\n",))


def make_judge(cfg: RejectConfig) -> Judge | None:
    """The judge `cfg.judge` names (an endpoint is checked with one request), or None."""
    if not cfg.judge:
        return None
    if cfg.judge.startswith(("http://", "https://")):
        from r1lab.data.rewriter import ChatEndpoint

        key = os.environ.get(cfg.judge_api_key_env) if cfg.judge_api_key_env else None
        client = ChatEndpoint(
            cfg.judge,
            cfg.judge_model,
            timeout=cfg.judge_timeout,
            retries=cfg.judge_retries,
            api_key=key,
            role="judge",
        )
        judge = EndpointJudge(client, cfg.judge_workers)
        judge.check()
        return judge
    from r1lab.run.model import check_model_dir

    check_model_dir(cfg.judge)
    return ModelJudge(cfg.judge, cfg.device, cfg.dtype)


def judge_request(
    prompt: str, example: Mapping[str, Any], answer: str | None, text: str, chars: int
) -> str:
    """The judge's request for one completion: its extracted answer, else its last `chars`
    characters, at most `chars` either way, with the block markers (`<<<`, `>>>`) taken out of
    it, so a completion cannot close its quoted block and write instructions after it."""
    response = answer if answer is not None and answer.strip() else text
    response = response[-chars:].replace("<<<", " ").replace(">>>", " ")
    return prompt.format(
        question=example["question"], reference=example.get("answer", ""), response=response
    )


# ---------------------------------------------------------------------------------------------
# The filters


def _shingles(text: str) -> frozenset[tuple[str, ...]]:
    words = text.lower().split()
    if len(words) < 3:
        return frozenset({tuple(words)})
    return frozenset(zip(words, words[1:], words[2:], strict=False))


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of two texts' word trigrams (1.0 for the same words)."""
    sa, sb = _shingles(a), _shingles(b)
    return len(sa & sb) / max(len(sa | sb), 1)


def filter_reason(text: str, language: str, filters: Sequence[str]) -> str | None:
    """The first of `filters` (the report's, then wrong_step) `text` fails (None: it passes)."""
    if "mixed_language" in filters and metrics.mixed_language(
        text.replace(THINK_CLOSE, " "), language
    ):
        return "mixed_language"
    readable = metrics.readability(text, language, finished=True)
    if "long_paragraph" in filters and not readable["paragraphs"]:
        return "long_paragraph"
    if "code_block" in filters and "```" in text:
        return "code_block"
    if "repetition" in filters and not readable["no_repetition"]:
        return "repetition"
    if "wrong_step" in filters and metrics.unrevised_steps(text):
        return "wrong_step"
    return None


@dataclass
class Kept:
    """What has been kept per question, for the de-duplication rules and the cap."""

    texts: dict[str, list[str]] = field(default_factory=dict)

    def reason(self, question: str, text: str, cfg: RejectConfig) -> str | None:
        kept = self.texts.get(question, [])
        norm = " ".join(text.split())
        if "duplicate" in cfg.filters and any(" ".join(k.split()) == norm for k in kept):
            return "duplicate"
        if "near_duplicate" in cfg.filters and any(
            similarity(k, text) >= cfg.near_duplicate for k in kept
        ):
            return "near_duplicate"
        if cfg.max_per_prompt and len(kept) >= cfg.max_per_prompt:
            return "over_cap"
        return None

    def add(self, question: str, text: str) -> None:
        self.texts.setdefault(question, []).append(text)


# ---------------------------------------------------------------------------------------------
# One batch


@dataclass
class Sample:
    example: dict[str, Any]
    index: int
    text: str
    finished: bool


def grade_batch(
    task: Any,
    samples: Sequence[Sample],
    cfg: RejectConfig,
    judge: Judge | None,
    kept: Kept,
    counts: Counter,
) -> list[dict[str, Any]]:
    """Apply every rule to a batch's samples, in order; count drops in `counts`; return the
    rows kept (and record them in `kept`)."""
    from r1lab.rewards import CompositeReward, RewardPool

    spec = task.rewards
    weights = {spec.accuracy: 1.0, spec.format: 0.0}
    params = {k: dict(v) for k, v in spec.params.items() if k in weights}
    results = RewardPool(workers=0).score(
        CompositeReward(weights, params), [s.text for s in samples], [s.example for s in samples]
    )
    verdicts: dict[int, str] = {}
    judged: list[tuple[int, str]] = []
    answers: dict[int, str | None] = {}
    for i, (s, r) in enumerate(zip(samples, results, strict=True)):
        answers[i] = _extract(task, s.text)
        if not s.finished:
            verdicts[i] = "truncated"
        elif cfg.require_format and r.parts.get(spec.format, 0.0) < 1 - 1e-9:
            verdicts[i] = "wrong_format"
        elif s.example.get("grader") == "judge":
            if judge is None:
                verdicts[i] = "unjudged"
            else:
                request = judge_request(
                    cfg.judge_prompt, s.example, answers[i], s.text, cfg.judge_chars
                )
                judged.append((i, request))
        elif answers[i] is None or not answers[i].strip():
            verdicts[i] = "no_answer"
        elif r.parts.get(spec.accuracy, 0.0) < 1 - 1e-9:
            verdicts[i] = "wrong_answer"
    if judged and judge is not None:
        replies = judge.judge([r for _, r in judged])
        for (i, _), reply in zip(judged, replies, strict=True):
            verdict = parse_verdict(reply)
            if verdict is None:
                verdicts[i] = "judge_unparseable"
            elif not verdict:
                verdicts[i] = "judge_incorrect"
    by_judge = {i for i, _ in judged}
    rows = []
    for i, s in enumerate(samples):
        language = s.example.get("language", "en")
        text, model_summary = s.text, None
        if cfg.summary == "rule" and i not in verdicts:
            text, model_summary = rule_summary(s.text, language)
        reason = verdicts.get(i) or filter_reason(text, language, cfg.filters)
        reason = reason or kept.reason(s.example["question"], text, cfg)
        if reason is not None:
            counts[reason] += 1
            continue
        kept.add(s.example["question"], text)
        if model_summary is not None:
            counts["summary_rewritten"] += 1
        rows.append(
            {
                "prompt": s.example["question"],
                "completion": text,
                "source": "reject",
                "model": cfg.model,
                "example_id": str(s.example.get("id", "")),
                "sample_index": s.index,
                "language": language,
                "answer": answers[i],
                "judged": i in by_judge,
                **({"model_summary": model_summary} if model_summary is not None else {}),
            }
        )
    return rows


def rule_summary(text: str, language: str) -> tuple[str, str | None]:
    """(`text` with its summary rewritten by rule from its reasoning, the model's summary), or
    (`text`, None) when it is not in the readable format or the rule writes the same summary."""
    from r1lab.data.readable import format_readable, parse_readable
    from r1lab.data.readable import summarize as summary_of

    parts, _ = parse_readable(text)
    if parts is None:
        return text, None
    summary = summary_of(parts.reasoning, parts.answer, language)
    if summary == parts.summary:
        return text, None
    return format_readable(parts.reasoning, summary, parts.answer), parts.summary


def _extract(task: Any, text: str) -> str | None:
    try:
        return task.extract_answer(text)
    except Exception:  # noqa: BLE001 - the reward guard's rule: a failure extracts nothing
        return None


# ---------------------------------------------------------------------------------------------
# The run: incremental output and progress


def config_hash(cfg: RejectConfig) -> str:
    """What decides the rows: everything but where they go and how the run is shown."""
    skip = {"out", "overwrite", "threads", "progress", "judge_timeout", "judge_retries"}
    skip |= {"judge_workers", "judge_api_key_env", "device"}
    keyed = {k: v for k, v in asdict(cfg).items() if k not in skip}
    return hashlib.sha1(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()


def progress_path(out: str | Path) -> Path:
    return Path(str(out).removesuffix(".jsonl") + ".progress.json")


def stats_path(out: str | Path) -> Path:
    return Path(str(out).removesuffix(".jsonl") + ".stats.json")


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    os.replace(tmp, path)


@dataclass
class Progress:
    config: str
    batches: int = 0
    rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    seconds: float = 0.0


def open_output(cfg: RejectConfig, digest: str) -> tuple[Progress, Kept]:
    """Where a run starts: afresh, or after the last finished batch of an interrupted (or
    finished) run of the same config, its rows beyond that batch cut off. An `out` left by
    another config is refused unless `overwrite`."""
    out, prog = Path(cfg.out), progress_path(cfg.out)
    fresh = Progress(digest)
    if cfg.overwrite:  # what was there is moved aside, never deleted
        for path in (out, prog, stats_path(cfg.out)):
            if path.exists():
                print(f"--overwrite: moved the previous {path} to {move_aside(path)}")
    if cfg.overwrite or not (out.exists() or prog.exists()):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("")
        return fresh, Kept()
    if not prog.exists():
        raise ConfigError(
            f"out={out} exists and was not written by r1lab reject (no {prog.name}); choose "
            "another out or pass overwrite=true"
        )
    saved = Progress(**json.loads(prog.read_text()))
    if saved.config != digest:
        raise ConfigError(
            f"out={out} holds a run of another config ({prog.name}); rerun with that config to "
            "continue it, or pass overwrite=true to start afresh"
        )
    lines = out.read_text(encoding="utf-8").splitlines() if out.exists() else []
    if len(lines) < saved.rows:
        raise ConfigError(f"{out} has {len(lines)} rows, {prog.name} says {saved.rows}")
    lines = lines[: saved.rows]  # rows of a batch that did not finish are sampled again
    out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    kept = Kept()
    for line in lines:
        row = json.loads(line)
        kept.add(row["prompt"], row["completion"])
    return saved, kept


def make_generator(
    cfg: RejectConfig, path: Path, model: Any, tokenizer: Any, template: str
) -> ModelGenerator:
    """The sampler of `r1lab reject`: the checkpoint's model with the config's sampling, within
    the context the model was trained on."""
    from r1lab.data.sources import ModelGenerator, trained_context

    return ModelGenerator(
        str(path),
        model,
        tokenizer,
        template,
        context=trained_context(path, model),
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        stop=cfg.stop,
    )


def run(cfg: RejectConfig) -> int:
    from r1lab.config import validate
    from r1lab.run.model import load_model, resolve_model_dir, trained_template
    from r1lab.tasks import render_prompt

    validate(cfg)
    path = resolve_model_dir(cfg.model)
    template = cfg.template or trained_template(path)
    task = make_task(cfg.task)
    if not task.rewards.accuracy:
        raise ConfigError(
            f"task.name={cfg.task.name} has no accuracy rule to keep completions by; use a task "
            "with answers (arithmetic, countdown, file)"
        )
    examples = task.examples("train", cfg.prompts)
    digest = config_hash(cfg)
    judge = make_judge(cfg)  # a dead endpoint fails here, before anything is sampled
    progress, kept = open_output(cfg, digest)

    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model, tokenizer = load_model(path, cfg.device, cfg.dtype, template)
    generator = make_generator(cfg, path, model, tokenizer, template)
    first = render_prompt(examples[0]["question"], template, tokenizer)
    if not generator.fits(first):
        raise ConfigError(
            f"max_new_tokens={cfg.max_new_tokens}: a prompt ({len(generator._ids([first])[0])} "
            f"tokens) and its completion do not fit the {generator.context} tokens {path} was "
            "trained on; lower max_new_tokens"
        )
    counts = Counter(progress.counts)
    batches = range(0, len(examples), cfg.batch_prompts)
    if progress.batches and cfg.progress:
        print(f"reject: continuing {cfg.out} after batch {progress.batches} ({progress.rows} rows)")
    for b, start in enumerate(batches):
        if b < progress.batches:
            continue
        t0 = time.perf_counter()
        batch = examples[start : start + cfg.batch_prompts]
        prompts, asked = [], []
        for ex in batch:
            text = render_prompt(ex["question"], template, tokenizer)
            if generator.fits(text):
                prompts.append(text)
                asked.append(ex)
            else:
                counts["prompt_too_long"] += 1
        seed = zlib.crc32(f"reject/{cfg.seed}/{b}".encode())
        groups = generator.generate(prompts, cfg.n, seed) if prompts else []
        samples = [
            Sample(ex, i, text, finished)
            for ex, group in zip(asked, groups, strict=True)
            for i, (text, finished) in enumerate(group)
        ]
        rows = grade_batch(task, samples, cfg, judge, kept, counts)
        with open(cfg.out, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
        progress.batches, progress.rows = b + 1, progress.rows + len(rows)
        progress.samples += len(samples)
        progress.seconds += time.perf_counter() - t0
        progress.counts = dict(counts)
        _write_json(progress_path(cfg.out), asdict(progress))
        if cfg.progress:
            print(
                f"reject: batch {b + 1}/{len(batches)}: kept {len(rows)} of {len(samples)} "
                f"({progress.rows} rows so far)",
                file=sys.stderr,
            )
    stats = summarize(progress, cfg, template, judge)
    _write_json(stats_path(cfg.out), stats)
    print(stats_markdown(stats))
    print(f"wrote {progress.rows} rows to {cfg.out}; stats in {stats_path(cfg.out)}")
    return 0


def summarize(
    progress: Progress, cfg: RejectConfig, template: str, judge: Judge | None
) -> dict[str, Any]:
    rows = [json.loads(line) for line in Path(cfg.out).read_text(encoding="utf-8").splitlines()]
    per_prompt = Counter(r["prompt"] for r in rows)
    lengths = sorted(len(r["completion"]) for r in rows)
    return {
        "rows": progress.rows,
        "samples": progress.samples,
        "yield": progress.rows / max(progress.samples, 1),
        "prompts_with_rows": len(per_prompt),
        "dropped": {k: progress.counts.get(k, 0) for k in (*REASONS, "prompt_too_long")},
        "summaries_rewritten": progress.counts.get("summary_rewritten", 0),
        "completion_chars_median": lengths[len(lengths) // 2] if lengths else 0,
        "seconds": progress.seconds,
        "samples_per_s": progress.samples / max(progress.seconds, 1e-9),
        "template": template,
        "judge": judge.name if judge else "",
        "config": asdict(cfg),
    }


def stats_markdown(stats: Mapping[str, Any]) -> str:
    lines = [
        "| rows | samples | yield | questions with rows | samples/s |",
        "|---:|---:|---:|---:|---:|",
        f"| {stats['rows']} | {stats['samples']} | {stats['yield']:.1%} | "
        f"{stats['prompts_with_rows']} | {stats['samples_per_s']:.1f} |",
        "",
        "| dropped because | samples |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {v} |" for k, v in stats["dropped"].items() if v]
    if stats.get("summaries_rewritten"):
        lines += ["", f"Summaries rewritten by rule (summary=rule): {stats['summaries_rewritten']}"]
    return "\n".join(lines)


def check_rows(stage: str, path: Path, knobs: str) -> None:
    """Stop here, naming `knobs` to raise, when `stage`'s dataset at `path` holds no row, rather
    than in the loader of the SFT that would read it (`r1lab r1`, `r1lab distill`)."""
    with open(path, encoding="utf-8") as f:
        if any(line.strip() for line in f):
            return
    raise ConfigError(
        f"{stage} kept no rows ({path}; its stats beside it say why each sample was dropped); "
        f"raise {knobs}"
    )
