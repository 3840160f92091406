"""`r1lab eval`: pass@1, pass@k, maj@k, format, length and reflection of a model on a task.

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
from typing import Any

from r1lab.microworld import DEFAULT_BASE
from r1lab.tasks import TaskConfig, make_task, render_prompt


@dataclass
class EvalConfig:
    model: str = str(DEFAULT_BASE)
    """Model directory (any Hugging Face causal LM with its tokenizer)."""
    task: TaskConfig = field(default_factory=TaskConfig)
    split: str = "test"
    """Which split to evaluate on (`test` is held out from pretraining and RL)."""
    num_questions: int = 128
    """Questions to evaluate (the first ones of the split, the same for every model)."""
    template: str = "r1zero"
    """Prompt template: `r1zero` (base models), `prefill` (ends in <think>), `chat`."""
    n: int = 8
    """Samples per question for pass@1, pass@k and maj@k."""
    ks: list[int] = field(default_factory=lambda: [1, 4, 8])
    """The k of pass@k and maj@k (each <= n)."""
    temperature: float = 0.6
    """Sampling temperature (the report's 0.6)."""
    top_p: float = 0.95
    """Nucleus sampling (the report's 0.95)."""
    max_new_tokens: int = 200
    """Completion length cap."""
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
    """`auto` (cuda if available), `cpu` or `cuda`."""
    dtype: str = "auto"
    """`auto` (bf16 on GPUs that support it, else fp32), `float32` or `bfloat16`."""
    threads: int = 2
    """torch CPU threads (0 leaves torch's default)."""


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
    max_new_tokens: int = 200,
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
    from r1lab.rewards import CompositeReward
    from r1lab.rollout import Sampler, SamplingParams

    ks = sorted({k for k in ks if k <= n})
    sampler = Sampler(model, tokenizer)
    prompts = [render_prompt(ex["question"], template, tokenizer) for ex in examples]
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
    spec = task.rewards
    grader = CompositeReward(
        {spec.accuracy: 1.0, spec.format: 0.0},
        {k: dict(v) for k, v in spec.params.items() if k in (spec.accuracy, spec.format)},
    )
    flat = [c for g in groups for c in g] + [c for g in greedy_groups for c in g]
    # Groups are in question order (prompt_index restarts in every generation call).
    flat_examples = []
    for gi, g in enumerate(groups):
        flat_examples.extend([examples[gi]] * len(g))
    for gi, g in enumerate(greedy_groups):
        flat_examples.extend([examples[gi]] * len(g))
    texts = [c.text for c in flat]
    if pool is not None:
        graded = pool.score(grader, texts, flat_examples)
    else:
        graded = [grader(t, ex) for t, ex in zip(texts, flat_examples, strict=True)]

    def ok(part: float) -> bool:
        return part >= 1 - 1e-9

    correct = [ok(r.parts[spec.accuracy]) for r in graded]
    formatted = [ok(r.parts[spec.format]) for r in graded]
    phrases = (
        tuple(reflection_phrases) if reflection_phrases else metrics.DEFAULT_REFLECTION_PHRASES
    )

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
            "reference": ex.get("answer"),
            "samples": [
                {
                    "text": texts[i],
                    "answer": answers[i - qi * n],
                    "correct": correct[i],
                    "format": formatted[i],
                    "tokens": len(flat[i].token_ids),
                    "finish": flat[i].finish_reason,
                }
                for i in rows
            ],
        }
        if greedy:
            gi = len(examples) * n + qi
            record["greedy"] = {"text": texts[gi], "correct": correct[gi]}
        samples.append(record)

    num = len(examples) * n
    lengths = [len(c.token_ids) for c in flat[:num]]
    length = metrics.length_stats(lengths)
    out: dict[str, float] = {
        "eval/questions": float(len(examples)),
        "eval/samples_per_question": float(n),
        "eval/format": sum(formatted[:num]) / num,
        "eval/reflection_rate": metrics.reflection_rate(texts[:num], phrases),
        "eval/truncated": sum(c.finish_reason == "length" for c in flat[:num]) / num,
    }
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
    return EvalResult(out, samples)


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
        is_rate = any(s in name for s in ("pass@", "maj@", "format", "rate", "accuracy", "trunc"))
        if is_rate:
            shown = f"{100 * value:.1f}%"
        elif float(value).is_integer():
            shown = f"{int(value)}"
        else:
            shown = f"{value:.1f}"
        rows.append(f"| {name} | {shown} |")
    return "\n".join(rows)


def resolve_device(device: str) -> Any:
    """`auto` is CUDA when available, else the CPU; anything else is taken as torch names it."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model(path: str, device: str = "auto", dtype: str = "auto") -> tuple[Any, Any]:
    """Load an HF causal LM and tokenizer from a local directory, failing early if absent."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from r1lab.checkpoint import check_model_dir

    check_model_dir(path)
    dev = resolve_device(device)
    if dtype == "auto":
        cuda = dev.type == "cuda"
        dt = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    else:
        dt = getattr(torch, dtype)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dt).to(dev)
    model.eval()
    return model, tokenizer


def run(cfg: EvalConfig) -> int:
    import torch
    from rich.console import Console

    from r1lab.rewards import RewardPool

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    bad = [k for k in cfg.ks if k > cfg.n or k < 1]
    if bad:
        from r1lab.config import ConfigError

        raise ConfigError(f"ks {bad} must be between 1 and n={cfg.n}")
    task = make_task(cfg.task)
    examples = task.examples(cfg.split, cfg.num_questions)
    model, tokenizer = load_model(cfg.model, cfg.device, cfg.dtype)
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
        )
    elapsed = time.time() - t0
    out = Path(cfg.out or f"runs/eval/{Path(cfg.model).name}-{task.name}")
    out.mkdir(parents=True, exist_ok=True)
    title = f"{Path(cfg.model).name} on {task.name}/{cfg.split}"
    table = markdown_table(result.metrics, title)
    payload = {"config": asdict(cfg), "metrics": result.metrics, "seconds": elapsed}
    (out / "eval.json").write_text(json.dumps({**payload, "samples": result.samples}, indent=1))
    (out / "eval.md").write_text(table + "\n")
    console = Console()
    console.print(table)
    console.print(f"[dim]{elapsed:.1f}s; wrote {out}/eval.json and eval.md[/dim]")
    return 0
