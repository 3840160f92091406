"""`r1lab coldstart`: DeepSeek-R1's cold-start data, long chains of thought in a readable format.

    r1lab coldstart                                   # ~1,000 micro-world rows, runs/coldstart.jsonl
    r1lab coldstart zero_model=runs/demo              # R1-Zero's outputs as a third source
    r1lab coldstart out=data/cold.parquet rows=200 sources=direct
    r1lab coldstart model=/models/Qwen2.5-7B task_path=data/gsm8k.jsonl tasks=file template=chat

The report collected a few thousand long-CoT examples four ways; each is a source here, switched
on in `sources` (r1lab.data.sources): few-shot prompting with exemplars, asking a model directly
for a detailed answer with reflection and verification, and R1-Zero's outputs (a checkpoint
sampled, or a run's saved samples). The fourth way, post-processing, applies to all of them: the
task's rewards keep only right answers, rules drop mixed-language, repetitive and unreadable
completions (r1lab.data.filters), and each kept completion is rewritten into the readable format
`<think> reasoning </think> summary <answer> answer </answer>` (r1lab.data.readable), by rule or
by a rewriter model (r1lab.data.rewriter).

Rows are balanced: every task gets the same share, split equally by its (language) cells, or
(operation, language) cells for arithmetic; a cell's quota is shared equally by the
sources that serve it; a source that runs out of budget leaves its share to the others. Sampling
goes on in batches until a cell is full or its sources are spent. The dataset has `prompt` and
`completion` columns (`r1lab sft` trains on them as they are) and each row's provenance; a stats
report beside it counts rows, yields, lengths and every drop by reason. docs/coldstart.md.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from r1lab.config import ConfigError, ensure, ensure_sampling
from r1lab.data.filters import RULES, candidate_reason, row_reason
from r1lab.data.readable import parse_readable, rule_rewrite
from r1lab.data.rewriter import REWRITE_PROMPT, RewriteItem, check_prompt
from r1lab.data.sources import (
    DEFAULT_EXEMPLARS,
    DIRECT_INSTRUCTION,
    SOURCES,
    Candidate,
    ModelGenerator,
    SamplesSource,
    Source,
    ZeroSource,
    direct_source,
    fewshot_source,
    trained_context,
)
from r1lab.microworld import DEFAULT_BASE, DEFAULT_ZERO
from r1lab.run.model import DEVICE_RE, DEVICES, DTYPES
from r1lab.run.rundir import move_aside
from r1lab.tasks import TEMPLATES, TaskConfig, make_task

GENERATED_TASKS = ("arithmetic", "countdown")
FORMATS = (".jsonl", ".parquet")


@dataclass
class ColdStartConfig:
    """`r1lab coldstart`: long-CoT rows from up to four sources, filtered and made readable."""

    model: str = str(DEFAULT_BASE)
    """The model the `fewshot` and `direct` sources prompt (a local HF causal LM directory);
    its tokenizer counts the rows' tokens in the stats."""
    tasks: list[str] = field(default_factory=lambda: list(GENERATED_TASKS))
    """Tasks to build rows for, each given the same share: `arithmetic`, `countdown`, or
    `file` (the questions of task_path)."""
    ops: str = "+*/"
    """For `arithmetic`: its operations, any of `+`, `*` and `/`."""
    balance_ops: bool = True
    """For `arithmetic`: a cell per operation as well as per language, so each operation gets
    the same share of the task's rows. Without it the rows follow what the sources answer right
    and readably: 400 rows from the micro-world's R1-Zero held 40 divisions, though a third of
    its questions divide (docs/r1.md)."""
    refill_ops: bool = True
    """With `balance_ops`: what an operation's cell cannot fill (its sources spent) goes to the
    other operations of its task and language, so each task and language keeps its share when
    the sources answer some operations and not others (the micro-world's models rarely write a
    Chinese division that passes the rules)."""
    languages: list[str] = field(default_factory=lambda: ["en", "zh"])
    """Question languages, each given the same share of every task (the generated tasks ask in
    `en` and `zh`; a file task's rows say theirs in a `language` column, else `en`)."""
    task_seed: int = 0
    """Seed of the generated tasks (train split only: held-out questions never become rows)."""
    task_path: str = ""
    """For `file`: a JSONL/Parquet file or hf:NAME (as task.path of `r1lab zero`)."""
    task_format: Literal["auto", "jsonl", "gsm8k", "math"] = "auto"
    """For `file`: how its questions and answers are read (as task.format)."""
    sources: list[str] = field(default_factory=lambda: ["fewshot", "direct", "zero"])
    """Sources to sample: `fewshot` (exemplars), `direct` (asked for detail, reflection and
    verification), `zero` (the zero_model checkpoints), `zero_samples` (a zero run's saved
    samples). `zero` without zero_model is skipped with a notice."""
    exemplars: str = str(DEFAULT_EXEMPLARS)
    """`fewshot`: JSONL of {question, completion (readable format), task, language}; the
    micro-world's ships with r1lab."""
    shots: int = 2
    """`fewshot`: exemplars per prompt at most (of the question's task and language first),
    fewer when the context leaves no room (see max_new_tokens)."""
    direct_instruction: dict[str, str] = field(default_factory=lambda: dict(DIRECT_INSTRUCTION))
    """`direct`: the request per question language, with a {question} placeholder (a language
    without one uses `en`'s)."""
    zero_model: list[str] = field(default_factory=list)
    """`zero`: R1-Zero models, each a model directory or a `r1lab zero` run (its last
    checkpoint; `r1lab demo` writes runs/demo), sampled with the template recorded in its
    r1lab.json. With one per task (`zero_model=[runs/demo,runs/zero-countdown]`) a cell
    samples the first trained on its task (its run's config.yaml or r1lab.json says), else the
    first given. Empty: the micro-world's shipped R1-Zero when `model` is the micro-world's
    base, else the source is skipped."""
    zero_samples: str = ""
    """`zero_samples`: a `r1lab zero` run directory (or one of its samples/*.jsonl files)."""
    rows: int = 1000
    """Rows to build, shared equally by the tasks, each task's equally by its cells (see
    balance_ops)."""
    samples_per_question: int = 2
    """Candidates sampled per question (the good ones are kept). With one row per question
    (max_per_question) more samples of a question add mostly rows that cannot be kept: the
    countdown R1-Zero (30 steps) built 500 rows from 10,018 candidates at 2, 15,896 at 8."""
    questions_per_batch: int = 128
    """Questions per sampling call (x samples_per_question sequences in one batch)."""
    max_per_question: int = 1
    """Most rows of one question (more would repeat it rather than vary the data)."""
    max_candidates: int = 4096
    """Budget: most candidates one source samples for one cell."""
    candidates_per_row: int = 16
    """Budget per row: a source samples at most this many candidates per row of the cell's
    quota (and at most max_candidates). A cell its sources fill more slowly than that is left
    short, and with refill_ops its shortfall goes to the other operations: 16 lets a 250-row
    countdown cell of the micro-world be sampled 4,000 times, an 83-row Chinese-division cell,
    which its R1-Zero answers right and in Chinese about once in 60 tries, 1,328 times."""
    give_up_after: int = 256
    """A source that has kept no row of a cell after this many candidates stops sampling it
    (and min_relative_yield is first judged after this many)."""
    min_relative_yield: float = 0.25
    """A source whose yield in a cell (candidates that pass every rule), after give_up_after
    candidates, is under this fraction of another source's still sampling the cell stops
    sampling it and leaves its share to the others: a source that the model serves badly does
    not hold half a cell (on the micro-world, few-shot prompting of the base solves countdown
    once in a few hundred candidates, its R1-Zero once in twelve). 0 holds every source to its
    share."""
    template: Literal[TEMPLATES] = "r1zero"  # type: ignore[valid-type]
    """Template of the fewshot and direct prompts: `r1zero`, `prefill`, `chat` (the model's
    chat template), `raw` (the question as written), `r1` (asks for the readable format: a
    cold-start SFT model). The rows' `prompt` is the question, which
    `r1lab sft` renders with its own template."""
    temperature: float = 0.3
    """Sampling temperature of the candidates. 0.3: with one row per question, a candidate
    more likely right is worth more than variety among a question's samples; the micro-world's
    R1-Zero filled the Chinese countdown cell (250 rows) from 3,622 candidates at 0.3 and
    reached 205 rows in its 4,096 at 0.7 (docs/coldstart.md)."""
    top_p: float = 0.95
    """Nucleus sampling of the candidates."""
    max_new_tokens: int = 600
    """Completion length cap; prompt + this must fit `context` (a question whose prompt does
    not is passed over and counted). 600: room for the micro-world R1-Zero's division checks
    (docs/zero.md); a truncated candidate is dropped."""
    context: int = 0
    """Tokens a prompt and its completion may take; 0 = what the model was trained on (the
    micro-world's r1lab.json block_size, 1,024; else max_position_embeddings)."""
    stop: list[str] = field(default_factory=lambda: ["</answer>"])
    """Stop strings (kept in the completion)."""
    filters: list[str] = field(default_factory=lambda: list(RULES))
    """Drop rules applied (r1lab.data.filters, docs/coldstart.md); leave one out to switch it
    off."""
    min_claims: int = 2
    """`short_reasoning`: fewest arithmetic claims a reasoning must state."""
    rewriter: str = "rules"
    """How kept completions become readable rows: `rules`, `none` (kept as sampled), a local HF
    model directory, or the URL of an OpenAI-compatible chat endpoint; a model's rewrite that
    fails a row rule falls back to the rule rewrite."""
    rewriter_model: str = ""
    """Endpoint rewriter: the `model` field of the requests."""
    rewriter_prompt: str = REWRITE_PROMPT
    """Rewriter request; placeholders {question}, {completion}, {answer}, {language}."""
    rewriter_timeout: float = 60.0
    """Endpoint rewriter: seconds a connection or read may block."""
    rewriter_retries: int = 3
    """Endpoint rewriter: extra tries after a failure worth retrying (exponential back-off)."""
    rewriter_workers: int = 4
    """Endpoint rewriter: requests in flight at once."""
    rewriter_api_key_env: str = "OPENAI_API_KEY"
    """Endpoint rewriter: environment variable holding the bearer token (unset: none sent)."""
    out: str = "runs/coldstart.jsonl"
    """The dataset (`.jsonl` or `.parquet`); the stats go beside it as <name>.stats.json and
    <name>.stats.md."""
    overwrite: bool = False
    """Replace existing output files (the old ones are moved aside to <name>.old-<time>)."""
    seed: int = 0
    """Seed of sampling and of exemplar choice."""
    device: str = "auto"
    """`auto` (cuda if available), `cpu`, `cuda` or `cuda:N`."""
    dtype: Literal[DTYPES] = "auto"  # type: ignore[valid-type]
    """`auto` (bf16 on GPUs that support it, else fp32), `float32`, `bfloat16`, `float16`."""
    threads: int = 2
    """torch CPU threads (0 leaves torch's default)."""
    progress: bool = True
    """Print a line per source and cell as they finish."""

    def validate(self) -> None:
        from r1lab.rewards.language import LANGUAGE_SCRIPTS

        valid_tasks = (*GENERATED_TASKS, "file")
        ensure(
            bool(self.tasks) and all(t in valid_tasks for t in self.tasks),
            "tasks",
            f"a list of {', '.join(valid_tasks)}",
            self.tasks,
        )
        ensure(len(set(self.tasks)) == len(self.tasks), "tasks", "distinct tasks", self.tasks)
        ok = bool(self.ops) and set(self.ops) <= set("+*/") and len(set(self.ops)) == len(self.ops)
        ensure(ok, "ops", "distinct characters of +, * and /", self.ops)
        langs = ("en", "zh") if "file" not in self.tasks else tuple(LANGUAGE_SCRIPTS)
        ensure(
            bool(self.languages)
            and len(set(self.languages)) == len(self.languages)
            and all(lang in langs for lang in self.languages),
            "languages",
            f"distinct languages of {', '.join(langs)}",
            self.languages,
        )
        ensure(
            ("file" in self.tasks) == bool(self.task_path),
            "task_path",
            "a file (or hf:NAME) exactly when tasks holds `file`",
            self.task_path,
        )
        ensure(
            bool(self.sources) and all(s in SOURCES for s in self.sources),
            "sources",
            f"a list of {', '.join(SOURCES)}",
            self.sources,
        )
        ensure(
            "zero_samples" not in self.sources or bool(self.zero_samples),
            "zero_samples",
            "a `r1lab zero` run directory when sources holds zero_samples",
            self.zero_samples,
        )
        ensure(bool(self.exemplars), "exemplars", "a JSONL file", self.exemplars)
        ensure(self.shots >= 1, "shots", ">= 1", self.shots)
        for lang, text in self.direct_instruction.items():
            ensure(
                "{question}" in text,
                f"direct_instruction.{lang}",
                "a request holding {question}",
                text,
            )
        ensure(self.rows >= 1, "rows", ">= 1", self.rows)
        for key in ("samples_per_question", "questions_per_batch", "max_per_question"):
            ensure(getattr(self, key) >= 1, key, ">= 1", getattr(self, key))
        ensure(self.max_candidates >= 1, "max_candidates", ">= 1", self.max_candidates)
        ensure(self.give_up_after >= 1, "give_up_after", ">= 1", self.give_up_after)
        ensure(self.candidates_per_row >= 1, "candidates_per_row", ">= 1", self.candidates_per_row)
        ratio = self.min_relative_yield
        ensure(0 <= ratio <= 1, "min_relative_yield", "in [0, 1]", ratio)
        ensure_sampling(self)
        ensure(self.context >= 0, "context", ">= 0 (0 = the model's trained context)", self.context)
        ensure(
            all(f in RULES for f in self.filters),
            "filters",
            f"a list of {', '.join(RULES)}",
            self.filters,
        )
        ensure(self.min_claims >= 0, "min_claims", ">= 0", self.min_claims)
        ensure(bool(self.rewriter), "rewriter", "rules, none, a model directory or a URL", "")
        try:
            check_prompt(self.rewriter_prompt)
        except ValueError as e:
            raise ConfigError(f"'rewriter_prompt': {e}") from None
        ensure(
            math.isfinite(self.rewriter_timeout) and self.rewriter_timeout > 0,
            "rewriter_timeout",
            "> 0 seconds",
            self.rewriter_timeout,
        )
        ensure(self.rewriter_retries >= 0, "rewriter_retries", ">= 0", self.rewriter_retries)
        ensure(self.rewriter_workers >= 1, "rewriter_workers", ">= 1", self.rewriter_workers)
        ensure(
            Path(self.out).suffix in FORMATS,
            "out",
            "a file ending in .jsonl or .parquet",
            self.out,
        )
        ensure(bool(DEVICE_RE.match(self.device)), "device", DEVICES, self.device)
        ensure(self.threads >= 0, "threads", ">= 0 (0 = torch's default)", self.threads)


# --- Candidates and where they come from ------------------------------------------------------


@dataclass
class Cell:
    """One (task, language) share of the rows, or (task, operation, language), with its
    questions."""

    task_name: str
    language: str
    task: Any
    quota: int
    cursor: int = 0
    pool: list[dict[str, Any]] = field(default_factory=list)
    finite: bool = False
    """A file task: its questions can run out."""
    op: str = ""
    """The one operation of an arithmetic cell (`balance_ops`); empty: all of `ops`."""
    moved: int = 0
    """Rows of quota received from (> 0) or given to (< 0) the other operations of its task and
    language, when a cell's sources could not fill it (`Builder.build`)."""
    closed: bool = False
    """Its sources are spent short of its quota: it takes no more rows."""

    @property
    def key(self) -> str:
        op = f"[{self.op}]" if self.op else ""
        return f"{self.task_name}{op}/{self.language}"

    def take(self, n: int) -> list[dict[str, Any]]:
        """The next n training questions of this cell (fewer when a file runs out)."""
        if not self.finite and self.cursor + n > len(self.pool):
            self.pool = self.task.examples("train", max(2 * len(self.pool), self.cursor + n))
        out = self.pool[self.cursor : self.cursor + n]
        self.cursor += len(out)
        return out


# --- Post-processing: rules, rewrite, balance -------------------------------------------------


@dataclass
class _Passed:
    """A candidate that passed every rule, with its row as the rules wrote it."""

    cand: Candidate
    row: str
    answer: str
    scores: dict[str, float]
    language: str


@dataclass
class Tally:
    """What became of one source's candidates in one cell."""

    questions: int = 0
    candidates: int = 0
    batches: int = 0
    kept: int = 0
    reserve: list[_Passed] = field(default_factory=list)
    """Candidates that passed every rule, waiting for room (a full share or question)."""
    dropped: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    done: str = ""
    """Why the source stopped sampling this cell (empty: it filled its share)."""
    model: str = ""
    """The model that answered (a zero source's differs by cell)."""

    @property
    def surplus(self) -> int:
        """Good rows never needed: the source's share or their question's was full."""
        return len(self.reserve)

    @property
    def passed(self) -> int:
        """Candidates that passed every rule (rows, and good rows in reserve)."""
        return self.kept + self.surplus


class Builder:
    """Turns candidates into rows, cell by cell (the post-processing source of the report)."""

    def __init__(
        self, cfg: ColdStartConfig, rewriter: Any = None, log: Callable[[str], None] = print
    ):
        self.cfg, self.rewriter, self.log = cfg, rewriter, log
        self.rules = frozenset(cfg.filters)
        self.rows: list[dict[str, Any]] = []
        self.tallies: dict[tuple[str, str], Tally] = {}
        self.rewriter_fallbacks: Counter = Counter()
        self.rewriter_used = 0
        self._seen: set[tuple[str, str]] = set()
        self._per_question: Counter = Counter()
        self.kept: Counter = Counter()
        """Rows per cell key."""

    # -- one batch ---------------------------------------------------------------------------

    def grade(self, cell: Cell, candidates: Sequence[Candidate]) -> list[dict[str, float]]:
        """Each candidate's reward parts under the task's rewards (accuracy, format) and
        language consistency, in-process under the reward guard."""
        from r1lab.rewards import CompositeReward, RewardPool

        spec = cell.task.rewards
        weights = {spec.accuracy: 1.0, spec.format: 0.0, "language_consistency": 0.0}
        params = {k: dict(v) for k, v in spec.params.items() if k in weights}
        params["language_consistency"] = {"language": cell.language}
        grader = CompositeReward(weights, params)
        results = RewardPool(workers=0).score(
            grader, [c.text for c in candidates], [c.example for c in candidates]
        )
        return [dict(r.parts) for r in results]

    def is_correct(self, cell: Cell, example: Mapping[str, Any]) -> Callable[[str], bool]:
        def check(text: str) -> bool:
            try:
                return bool(cell.task.is_correct(text, example))
            except Exception:  # noqa: BLE001 - the reward guard's rule: a failure is wrong
                return False

        return check

    def add(self, cell: Cell, t: Tally, candidates: Sequence[Candidate]) -> None:
        """Apply every rule to a batch: drops are counted in `t`, rows that pass wait in its
        reserve until the cell has room for them (`take`)."""
        parts = self.grade(cell, candidates) if candidates else []
        accuracy = cell.task.rewards.accuracy
        for cand, scores in zip(candidates, parts, strict=True):
            item = self._check(cell, cand, scores, scores.get(accuracy, 0.0) >= 1 - 1e-9)
            if isinstance(item, str):
                t.dropped[item] += 1
            else:
                t.reserve.append(item)

    def _open(self, item: _Passed) -> bool:
        return self._per_question[item.cand.example["question"]] < self.cfg.max_per_question

    def take(self, cell: Cell, t: Tally, room: int) -> int:
        """Move up to `room` rows from `t`'s reserve into the dataset, in the order they were
        sampled, at most max_per_question per question; rewrite them; return how many."""
        kept: list[_Passed] = []
        left: list[_Passed] = []
        for item in t.reserve:
            if len(kept) < room and self._open(item):
                self._per_question[item.cand.example["question"]] += 1
                kept.append(item)
            else:
                left.append(item)
        t.reserve = left
        for item, (text, by) in zip(kept, self._rewrite(cell, kept), strict=True):
            self.rows.append(self._row(cell, item, text, by))
        t.kept += len(kept)
        self.kept[cell.key] += len(kept)
        return len(kept)

    def _check(
        self, cell: Cell, cand: Candidate, scores: dict[str, float], correct: bool
    ) -> _Passed | str:
        """The candidate's row by rule, or the first rule it fails."""
        language = cell.language  # every question of a cell is asked in its language
        answer = cell.task.extract_answer(cand.text)
        reason = candidate_reason(
            cand.text,
            finished=cand.finished,
            answer=answer,
            correct=correct,
            language=language,
            rules=self.rules,
        )
        if reason is not None:
            return reason
        answer = (answer or "").strip()
        if self.cfg.rewriter == "none":
            row = cand.text.strip()
        else:
            row = rule_rewrite(cand.text, answer, language)
        reason = row_reason(
            row,
            language=language,
            is_correct=self.is_correct(cell, cand.example),
            min_claims=self.cfg.min_claims,
            rules=self.rules,
        )
        if reason is not None:
            return reason
        key = (cand.example["question"], row)
        if "duplicate" in self.rules and key in self._seen:
            return "duplicate"
        self._seen.add(key)
        return _Passed(cand, row, answer, scores, language)

    def _rewrite(self, cell: Cell, kept: Sequence[_Passed]) -> list[tuple[str, str]]:
        """(text, who wrote it) per row: the rewriter model's text where it is in the readable
        format and passes every row rule, else the rule rewrite (the reason counted)."""
        by_rules = [(item.row, self.cfg.rewriter) for item in kept]
        if self.rewriter is None or not kept:
            return by_rules
        items = [
            RewriteItem(k.cand.example["question"], k.cand.text, k.answer, k.language) for k in kept
        ]
        out = list(by_rules)
        for i, (text, item) in enumerate(zip(self.rewriter.rewrite(items), kept, strict=True)):
            if text is None:
                why = "no answer"
            elif parse_readable(text)[0] is None:
                why = "not the readable format"
            else:
                text = text.strip()
                why = row_reason(
                    text,
                    language=item.language,
                    is_correct=self.is_correct(cell, item.cand.example),
                    min_claims=self.cfg.min_claims,
                    rules=self.rules | {"wrong_answer"},  # a model never decides what is right
                )
            if why:
                self.rewriter_fallbacks[why] += 1
            else:
                out[i] = (text, self.rewriter.name)
                self.rewriter_used += 1
        return out

    def _row(self, cell: Cell, item: _Passed, text: str, by: str) -> dict[str, Any]:
        ex, cand = item.cand.example, item.cand
        return {
            # The question as written: `r1lab sft` renders it with its template, exactly as
            # `r1lab eval` and `r1lab zero` render a question, so training and use agree.
            "prompt": ex["question"],
            "completion": text,
            "answer": str(ex.get("answer", "")),
            "id": str(ex.get("id", "")),
            "task": cell.task_name,
            "language": item.language,
            "cell": cell.key,
            "source": cand.source,
            "model": cand.model,
            "source_prompt": cand.prompt,
            "sample_index": cand.sample_index,
            "rewards": item.scores,
            "raw_completion": cand.text,
            "rewriter": by,
        }

    # -- all cells ---------------------------------------------------------------------------

    def build(self, cells: Sequence[Cell], sources: Sequence[Source]) -> None:
        """Fill every cell in turn; then what an arithmetic operation's cell could not fill goes
        to the other operations of its task and language.

        The task and language shares are the balance asked for; the split by operation
        (`balance_ops`) holds as far as the sources can answer each operation. A cell whose
        sources are spent short of its quota keeps what it has and its shortfall is shared
        equally by its full siblings, which sample again; a sibling that then falls short
        passes its part on, until every cell is full or closed."""
        for cell in cells:
            self.fill(cell, sources)
        groups: dict[tuple[str, str], list[Cell]] = {}
        for cell in cells:
            if cell.op and self.cfg.refill_ops:
                groups.setdefault((cell.task_name, cell.language), []).append(cell)
        for group in groups.values():
            while True:
                for cell in group:
                    if self.kept[cell.key] < cell.quota:
                        cell.closed = True
                short = sum(c.quota - self.kept[c.key] for c in group if c.closed)
                takers = [c for c in group if not c.closed]
                if not short or not takers:
                    break
                for cell in group:
                    if cell.closed and self.kept[cell.key] < cell.quota:
                        cell.moved -= cell.quota - self.kept[cell.key]
                        cell.quota = self.kept[cell.key]
                for cell, part in zip(takers, _split(short, len(takers)), strict=True):
                    cell.quota += part
                    cell.moved += part
                    self.log(f"{cell.key}: {part} more rows, for its operations' short cells")
                    self.fill(cell, sources)

    # -- one cell ----------------------------------------------------------------------------

    def _batch_size(self, t: Tally, room: int, budget: int) -> int:
        """Questions for a source's next batch: a full batch until its yield is known, then
        enough for half again the rows still wanted, so a nearly full cell samples little;
        never more than the budget left allows (at samples_per_question a question)."""
        cfg = self.cfg
        left = max(1, math.ceil((budget - t.candidates) / cfg.samples_per_question))
        full = min(cfg.questions_per_batch, left)
        if not t.questions or not t.passed:
            return full
        per_question = min(t.passed / t.questions, cfg.max_per_question)
        return max(1, min(full, math.ceil(1.5 * room / per_question)))

    def fill(self, cell: Cell, sources: Sequence[Source]) -> None:
        """Sample from `sources` until `cell` holds its quota or they are spent.

        Each source's share is the quota left by the spent sources, split equally among those
        still live; a source is spent when it is done sampling (budget, give-up, no more
        questions) and has no good row in reserve, and leaves its share to the others. A source
        takes from its reserve before it samples more."""
        cfg = self.cfg
        serving = [s for s in sources if s.serves(cell)]
        tallies = {s.name: self.tallies.setdefault((cell.key, s.name), Tally()) for s in serving}
        for s in serving:
            tallies[s.name].model = s.model_for(cell)
        kept = self.kept[cell.key]
        budget = min(cfg.max_candidates, cfg.candidates_per_row * cell.quota)
        while kept < cell.quota:
            live = [s for s in serving if self._live(tallies[s.name])]
            if not live:
                break
            spent = sum(tallies[s.name].kept for s in serving if s not in live)
            share = math.ceil((cell.quota - spent) / len(live))
            moved = False
            for s in live:
                t = tallies[s.name]
                room = min(share - t.kept, cell.quota - kept)
                if room <= 0:
                    continue
                n = self.take(cell, t, room)
                kept, room, moved = kept + n, room - n, moved or n > 0
                if room <= 0 or t.done:
                    continue
                seed = zlib.crc32(f"{cfg.seed}/{cell.key}/{s.name}/{t.batches}".encode())
                t.batches += 1
                start = time.perf_counter()
                batch = s.batch(cell, self._batch_size(t, room, budget), seed)
                moved = True
                if batch is None:
                    t.done = "no more questions"
                    continue
                self.add(cell, t, batch)
                t.seconds += time.perf_counter() - start
                t.questions += len({c.example["question"] for c in batch})
                t.candidates += len(batch)
                kept += self.take(cell, t, room)
                if t.kept == 0 and not t.reserve and t.candidates >= cfg.give_up_after:
                    t.done = f"gave up: no row from its first {t.candidates} candidates"
                elif t.candidates >= budget:
                    t.done = f"budget spent ({t.candidates} candidates)"
                elif t.candidates >= cfg.give_up_after:
                    t.done = self._outpaced(s.name, tallies)
            if not moved:
                break
        for s in serving:
            t = tallies[s.name]
            why = f", {t.done}" if t.done else ""
            self.log(
                f"  {cell.key:<16} {s.name:<12} {t.kept:>4} rows from {t.candidates:>5} "
                f"candidates ({_pct(t.kept + t.surplus, t.candidates)} pass){why}"
            )
        self.log(f"{cell.key}: {kept} of {cell.quota} rows")

    def _outpaced(self, name: str, tallies: Mapping[str, Tally]) -> str:
        """Why source `name` should leave the cell to a far better one still sampling it ("" if
        it should not)."""
        mine = tallies[name].passed / tallies[name].candidates
        for other, t in tallies.items():
            if other == name or t.done or not t.candidates:
                continue
            theirs = t.passed / t.candidates
            if mine < self.cfg.min_relative_yield * theirs:
                return (
                    f"outpaced: {_pct(tallies[name].passed, tallies[name].candidates)} of its "
                    f"candidates pass, {other}'s {_pct(t.passed, t.candidates)}"
                )
        return ""

    def _live(self, t: Tally) -> bool:
        """Whether a source can still give rows: it samples, or has a usable row in reserve."""
        return not t.done or any(self._open(item) for item in t.reserve)


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}%" if b else "-"


# --- Cells, output, stats ---------------------------------------------------------------------


def make_cells(cfg: ColdStartConfig) -> list[Cell]:
    """The cells and their quotas: cfg.rows shared equally by the tasks, each task's share
    equally by its cells (a language each, times an operation each for arithmetic with
    `balance_ops`); where a share does not divide, the first cells get the rest."""
    shares = _split(cfg.rows, len(cfg.tasks))
    cells = []
    file_task = None
    for name, share in zip(cfg.tasks, shares, strict=True):
        by_op = name == "arithmetic" and cfg.balance_ops and len(cfg.ops) > 1
        ops = list(cfg.ops) if by_op else [""]
        parts = [(op, lang) for op in ops for lang in cfg.languages]
        for (op, lang), quota in zip(parts, _split(share, len(parts)), strict=True):
            if name == "file":
                if file_task is None:
                    file_task = make_task(
                        TaskConfig(
                            name="file",
                            path=cfg.task_path,
                            format=cfg.task_format,
                            seed=cfg.task_seed,
                        )
                    )
                pool = [ex for ex in file_task.train if ex.get("language", "en") == lang]
                cells.append(Cell(name, lang, file_task, quota, pool=pool, finite=True))
                continue
            task = make_task(
                TaskConfig(
                    name=name,
                    ops=op or cfg.ops,
                    zh_fraction=1.0 if lang == "zh" else 0.0,
                    seed=cfg.task_seed,
                )
            )
            cells.append(Cell(name, lang, task, quota, op=op))
    return cells


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


def stats_paths(out: str | Path) -> tuple[Path, Path]:
    p = Path(out)
    return p.with_name(p.stem + ".stats.json"), p.with_name(p.stem + ".stats.md")


def check_outputs(cfg: ColdStartConfig) -> list[Path]:
    """The output files; one that exists is refused unless overwrite (checked before anything
    loads)."""
    paths = [Path(cfg.out), *stats_paths(cfg.out)]
    for p in paths:
        if p.is_dir():
            raise ConfigError(f"out: {p} is a directory; give a .jsonl or .parquet file")
        if p.exists() and not cfg.overwrite:
            raise ConfigError(f"{p} exists; pick another out=, or add --overwrite to move it aside")
    return paths


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        if path.exists():
            print(f"--overwrite: moved the previous {path} to {move_aside(path)}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_rows(rows: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    """The dataset, atomically: JSONL (one object per line) or Parquet, by extension."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        def write(tmp: Path) -> None:
            pq.write_table(pa.Table.from_pylist(list(rows)), tmp)

    else:

        def write(tmp: Path) -> None:
            with tmp.open("w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")

    _write_atomic(path, write)


def summarize_stats(
    builder: Builder,
    cells: Sequence[Cell],
    skipped: Mapping[str, str],
    notes: Mapping[str, Counter],
    count_tokens: Callable[[str], int],
) -> dict[str, Any]:
    """The stats report: rows per source/task/language, yield, drops by reason, lengths."""
    from r1lab import metrics

    rows = builder.rows
    by_source: dict[str, dict[str, Any]] = {}
    for (_, name), t in builder.tallies.items():
        s = by_source.setdefault(
            name, {"candidates": 0, "rows": 0, "surplus": 0, "dropped": Counter(), "seconds": 0.0}
        )
        s["candidates"] += t.candidates
        s["rows"] += t.kept
        s["surplus"] += t.surplus
        s["dropped"].update(t.dropped)
        s["seconds"] += t.seconds
    for s in by_source.values():
        # The share of candidates that pass every rule (rows and surplus alike).
        s["yield"] = (s["rows"] + s["surplus"]) / s["candidates"] if s["candidates"] else 0.0
        s["dropped"] = dict(s["dropped"].most_common())
    dropped: Counter = Counter()
    for t in builder.tallies.values():
        dropped.update(t.dropped)
    by_cell = {}
    for cell in cells:
        mine = {name: t for (key, name), t in builder.tallies.items() if key == cell.key}
        by_cell[cell.key] = {
            "quota": cell.quota,
            "moved": cell.moved,
            "rows": sum(t.kept for t in mine.values()),
            "candidates": sum(t.candidates for t in mine.values()),
            "sources": {
                name: {
                    "rows": t.kept,
                    "candidates": t.candidates,
                    "stopped": t.done,
                    "model": t.model,
                }
                for name, t in mine.items()
            },
        }
    candidates = sum(t.candidates for t in builder.tallies.values())
    surplus = sum(t.surplus for t in builder.tallies.values())
    out: dict[str, Any] = {
        "rows": len(rows),
        "candidates": candidates,
        "surplus": surplus,
        "yield": (len(rows) + surplus) / candidates if candidates else 0.0,
        "rows_by_source": dict(Counter(r["source"] for r in rows)),
        "rows_by_task": dict(Counter(r["task"] for r in rows)),
        "rows_by_language": dict(Counter(r["language"] for r in rows)),
        "cells": by_cell,
        "sources": by_source,
        "dropped": dict(dropped.most_common()),
        "skipped_sources": dict(skipped),
        "passed_over": {k: dict(v) for k, v in notes.items() if v},
        "rewriter": {
            "name": builder.rewriter.name if builder.rewriter else builder.cfg.rewriter,
            "used": builder.rewriter_used,
            "fallbacks": dict(builder.rewriter_fallbacks.most_common()),
        },
    }
    if rows:
        out["completion_tokens"] = metrics.length_stats(
            [count_tokens(r["completion"]) for r in rows]
        )
        out["source_prompt_tokens"] = metrics.length_stats(
            [count_tokens(r["source_prompt"]) for r in rows]
        )
        out["reflection_rate"] = metrics.reflection_rate([r["completion"] for r in rows])
    return out


def stats_markdown(stats: Mapping[str, Any]) -> str:
    """A short markdown report of the stats."""
    lines = [
        f"# cold-start data: {stats['rows']} rows from {stats['candidates']} candidates "
        f"(yield {100 * stats['yield']:.1f}%, {stats.get('seconds', 0):.0f} s)",
        "",
        "| task/language | quota | rows | " + " | ".join(stats["sources"]) + " |",
        "|---|---:|---:|" + "---:|" * len(stats["sources"]),
    ]
    for key, cell in stats["cells"].items():
        per = [
            f"{cell['sources'][name]['rows']}/{cell['sources'][name]['candidates']}"
            if name in cell["sources"]
            else "-"
            for name in stats["sources"]
        ]
        moved = f" ({cell['moved']:+d})" if cell.get("moved") else ""
        lines.append(
            f"| {key} | {cell['quota']}{moved} | {cell['rows']} | " + " | ".join(per) + " |"
        )
    lines += ["", "Source cells read rows/candidates."]
    if any(cell.get("moved") for cell in stats["cells"].values()):
        lines.append(
            "A quota's (+n) or (-n): rows moved between the operations of a task and language, "
            "from a cell its sources could not fill."
        )
    lines.append("")
    lines += [
        "| source | candidates | rows | yield | surplus | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in stats["sources"].items():
        lines.append(
            f"| {name} | {s['candidates']} | {s['rows']} | {100 * s['yield']:.1f}% | "
            f"{s['surplus']} | {s['seconds']:.0f} |"
        )
    if stats["dropped"]:
        lines += ["", "| dropped because | candidates |", "|---|---:|"]
        lines += [f"| {reason} | {n} |" for reason, n in stats["dropped"].items()]
    if "completion_tokens" in stats:
        lines += [
            "",
            "| tokens | mean | median | p90 | min | max |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for key, name in (("completion_tokens", "completion"), ("source_prompt_tokens", "prompt")):
            s = stats[key]
            lines.append(
                f"| {name} | {s['mean']:.1f} | {s['median']:.0f} | {s['p90']:.0f} | "
                f"{s['min']:.0f} | {s['max']:.0f} |"
            )
        lines.append(f"\nReflection in {100 * stats['reflection_rate']:.1f}% of the rows.")
    for name, why in stats["skipped_sources"].items():
        lines.append(f"\nSkipped source `{name}`: {why}")
    return "\n".join(lines) + "\n"


# --- The command ------------------------------------------------------------------------------


def run(cfg: ColdStartConfig) -> int:
    from r1lab.config import validate
    from r1lab.data.rewriter import make_rewriter
    from r1lab.data.sources import (
        read_exemplars,
        read_zero_samples,
        resolve_zero_model,
        zero_model_for,
        zero_model_task,
    )
    from r1lab.run.model import check_model_dir, load_model

    validate(cfg)
    started = time.time()
    log = print if cfg.progress else (lambda *a, **k: None)
    # Everything a user can get wrong fails here, before a model loads or sampling starts.
    check_outputs(cfg)
    check_model_dir(cfg.model)
    skipped: dict[str, str] = {}
    exemplars = read_exemplars(cfg.exemplars) if "fewshot" in cfg.sources else []
    zero_paths = []
    if "zero" in cfg.sources:
        given_models = cfg.zero_model
        if not given_models and Path(cfg.model).resolve() == DEFAULT_BASE.resolve():
            given_models = [str(DEFAULT_ZERO)]  # the micro-world's R1-Zero, for its base
        if given_models:
            zero_paths = [(given, resolve_zero_model(given)) for given in given_models]
        else:
            skipped["zero"] = (
                "no zero_model given, and `model` is not the micro-world's base (whose R1-Zero "
                "r1lab ships): give an R1-Zero checkpoint or run of your model"
            )
            print(f"source zero: skipped, {skipped['zero']}", file=sys.stderr)
    samples, samples_task = [], ""
    if "zero_samples" in cfg.sources:
        samples, samples_task = read_zero_samples(cfg.zero_samples)
    cells = make_cells(cfg)
    # A zero model that no cell would ask (a second model of one task, or one of a task not
    # asked for) is not loaded.
    tasks = [zero_model_task(given, path) for given, path in zero_paths]
    asked = {zero_model_for(tasks, cell.task_name) for cell in cells} if tasks else set()
    for i, (given, _) in enumerate(zero_paths):
        if i not in asked:
            trained = f"trained on {tasks[i]}" if tasks[i] else "no run config names its task"
            why = skipped[f"zero_model {given}"] = f"{trained}, and every cell asks another model"
            print(f"zero_model {given}: not loaded, {why}", file=sys.stderr)
    zero_used = [(zero_paths[i], tasks[i]) for i in sorted(asked)]

    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    # A dead endpoint or a missing rewriter model fails before any sampling.
    rewriter = make_rewriter(
        cfg.rewriter,
        prompt=cfg.rewriter_prompt,
        model=cfg.rewriter_model,
        timeout=cfg.rewriter_timeout,
        retries=cfg.rewriter_retries,
        workers=cfg.rewriter_workers,
        api_key_env=cfg.rewriter_api_key_env,
        device=cfg.device,
        dtype=cfg.dtype,
    )
    model, tokenizer = load_model(cfg.model, cfg.device, cfg.dtype, cfg.template)
    sources: list[Source] = []
    n = cfg.samples_per_question
    sampling = dict(
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        stop=cfg.stop,
    )
    if {"fewshot", "direct"} & set(cfg.sources):
        context = cfg.context or trained_context(cfg.model, model)
        base = ModelGenerator(
            cfg.model, model, tokenizer, cfg.template, context=context, **sampling
        )
        if "fewshot" in cfg.sources:
            sources.append(fewshot_source(base, exemplars, cfg.shots, n, tokenizer, cfg.seed))
        if "direct" in cfg.sources:
            sources.append(direct_source(base, cfg.direct_instruction, n, tokenizer))
    if zero_used:
        from r1lab.run.checkpoints import checkpoint_meta

        zero_models = []
        for (given, path), task in zero_used:
            template = checkpoint_meta(path).get("template") or cfg.template
            zmodel, ztok = load_model(path, cfg.device, cfg.dtype, template)
            context = cfg.context or trained_context(path, zmodel)
            zgen = ModelGenerator(given, zmodel, ztok, template, context=context, **sampling)
            zero_models.append((zgen, ztok, task))
        sources.append(ZeroSource(zero_models, n))
    if "zero_samples" in cfg.sources:
        sources.append(SamplesSource(samples, samples_task, cfg.zero_samples))

    builder = Builder(cfg, rewriter=rewriter, log=log)
    builder.build(cells, sources)

    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    stats = summarize_stats(
        builder, cells, skipped, {s.name: s.notes for s in sources}, count_tokens
    )
    stats["seconds"] = time.time() - started
    stats["config"] = asdict(cfg)
    json_path, md_path = stats_paths(cfg.out)
    write_rows(builder.rows, cfg.out)
    _write_atomic(
        json_path, lambda p: p.write_text(json.dumps(stats, indent=1, ensure_ascii=False))
    )
    markdown = stats_markdown(stats)
    _write_atomic(md_path, lambda p: p.write_text(markdown, encoding="utf-8"))
    print(markdown)
    print(f"wrote {len(builder.rows)} rows to {cfg.out}; stats in {json_path} and {md_path}")
    return 0
