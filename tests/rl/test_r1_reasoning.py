"""DeepSeek-R1 stage 2 (configs/r1-reasoning.yaml): reasoning RL from the cold-start SFT model,
rewarded for accuracy, the readable format and language consistency.

The shipped config is loaded as a user runs it; its rewards are checked as the trainer builds
them; one GRPO step with scripted completions shows what each reward does to the advantages (a
completion that mixes languages loses to one that does not, all else equal); and the chain
`r1lab sft template=r1` -> `r1lab zero --config configs/r1-reasoning.yaml` runs end to end on the
tiny model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from r1lab.config import load_config
from r1lab.rewards import RewardPool
from r1lab.rl import trainer
from r1lab.rl.algos import compute_advantages
from r1lab.rl.config import ZeroConfig
from r1lab.rollout import Completion
from r1lab.run import checkpoint_meta, checkpoints
from r1lab.tasks import make_task, render_prompt
from r1lab.tracking import read_metrics

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "r1-reasoning.yaml"


def stage_config(model: Path, out: Path, *overrides: str) -> ZeroConfig:
    """The shipped config, made tiny on the command line as a user would."""
    tiny = [
        f"model={model}",
        f"out={out}",
        "rollout.group_size=4",
        "rollout.max_new_tokens=12",
        "algo.prompts_per_step=2",
        "algo.micro_batch=8",
        "algo.warmup_steps=1",
        "train_pool=16",
        "eval_questions=2",
        "eval_n=2",
        "workers=0",
        "threads=1",
        "progress=false",
    ]
    return load_config(ZeroConfig, CONFIG, [*tiny, *overrides])


# --- the config ---------------------------------------------------------------------------------


def test_the_shipped_config_is_the_stage_its_comment_describes():
    cfg = load_config(ZeroConfig, CONFIG)
    assert cfg.model == "runs/sft-coldstart" and cfg.template == "r1"
    assert (cfg.task.name, cfg.task.ops, cfg.task.zh_fraction) == ("arithmetic", "+*/", 0.2)
    task = make_task(cfg.task)
    assert task.rewards.format == "format_readable" and task.rewards.accuracy == "math_accuracy"
    reward = trainer.build_reward(cfg, task)
    assert reward.weights == {
        "math_accuracy": 1.0,
        "format_readable": 0.5,
        "language_consistency": 1.0,
    }
    # The questions are in both languages: the language reward has something to compare.
    languages = {ex["language"] for ex in task.examples("train", 64)}
    assert languages == {"en", "zh"}


def test_the_language_weight_is_set_from_the_command_line_and_the_rest_stay():
    cfg = load_config(ZeroConfig, CONFIG, ["rewards.language_consistency=0.25"])
    reward = trainer.build_reward(cfg, make_task(cfg.task))
    assert reward.weights == {
        "math_accuracy": 1.0,
        "format_readable": 0.5,
        "language_consistency": 0.25,
    }
    cfg = load_config(ZeroConfig, CONFIG, ["rewards.language_consistency=0"])
    assert trainer.build_reward(cfg, make_task(cfg.task)).weights["language_consistency"] == 0.0


# --- one step, scripted -------------------------------------------------------------------------


def scripted(example: dict) -> list[str]:
    """Four completions of one question: readable, right and in its language; the same with a
    few words of the other language; right in R1-Zero's format (no summary); readable, in its
    language, and wrong."""
    q, a = example["question"], example["answer"]
    wrong = str(int(a) + 1)
    if example["language"] == "zh":
        think, mixed = f"先算 {q}，再检查一遍，得 {a}。", f"先算 {q}，then check it，得 {a}。"
        summary = f"所以答案是 {a}。"
    else:
        think, mixed = f"First {q}, then check it, so {a}.", f"First {q}, 然后检查, so {a}."
        summary = f"So the answer is {a}."
    return [
        f"<think> {think} </think> {summary} <answer> {a} </answer>",
        f"<think> {mixed} </think> {summary} <answer> {a} </answer>",
        f"<think> {think} </think> <answer> {a} </answer>",
        f"<think> {think} </think> {summary} <answer> {wrong} </answer>",
    ]


class ScriptedSampler:
    """Answers each prompt with `scripted` for the example the stream handed out."""

    def __init__(self, t: trainer.Trainer):
        self.tokenizer, self.taken = t.tokenizer, []
        take = t.stream.take

        def recording_take(n):
            self.taken = take(n)
            return self.taken

        t.stream.take = recording_take

    def generate(self, prompts, params, seed=None):
        groups = []
        for i, (ids, ex) in enumerate(zip(prompts, self.taken, strict=True)):
            texts = scripted(ex)[: params.n]
            tokens = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
            groups.append(
                [
                    Completion(i, ids, list(tok), text, [0.0] * len(tok), "stop")
                    for tok, text in zip(tokens, texts, strict=True)
                ]
            )
        return groups


def scripted_step(model: Path, tmp_path: Path, *overrides: str):
    cfg = stage_config(model, tmp_path / "run", *overrides)
    with RewardPool(workers=0) as pool:
        t = trainer.build(cfg, pool)
        t.sampler = ScriptedSampler(t)
        return trainer.train_step(t, 0), t


def test_a_completion_that_mixes_languages_gets_the_lower_reward_and_advantage(
    tiny_model, tmp_path
):
    out, t = scripted_step(tiny_model, tmp_path)
    samples = t.last_samples
    assert len(samples) == 8  # 2 questions x 4 completions
    # The stage prompts with the template of the readable format.
    assert all(s["prompt"] == render_prompt(s["question"], "r1") for s in samples)
    for g in range(2):
        clean, mixed, zero_format, wrong = samples[4 * g : 4 * g + 4]
        # Equal in accuracy and format, apart in language only ...
        for name in ("math_accuracy", "format_readable"):
            assert clean["parts"][name] == mixed["parts"][name] == 1.0
        assert clean["parts"]["language_consistency"] == 1.0
        assert 0 < mixed["parts"]["language_consistency"] < 1.0
        # ... so the mixed one is rewarded less, and pushed down against the clean one.
        assert mixed["reward"] < clean["reward"]
        assert mixed["advantage"] < clean["advantage"]
        # R1-Zero's format scores no format reward here; a wrong answer no accuracy.
        assert zero_format["parts"]["format_readable"] == 0.0
        assert zero_format["parts"]["math_accuracy"] == 1.0
        assert wrong["parts"]["math_accuracy"] == 0.0 and wrong["parts"]["format_readable"] == 1
        # The total is the configured sum, and the advantage is GRPO's of the totals.
        for s in (clean, mixed, zero_format, wrong):
            p = s["parts"]
            want = p["math_accuracy"] + 0.5 * p["format_readable"] + p["language_consistency"]
            assert s["reward"] == pytest.approx(want)
    totals = torch.tensor([[s["reward"] for s in samples[g : g + 4]] for g in (0, 4)])
    want_adv = compute_advantages("grpo", totals).reshape(-1)
    assert [s["advantage"] for s in samples] == pytest.approx(want_adv.tolist(), abs=1e-6)
    # Every part is logged; the format rate is the readable format's (3 of 4 follow it, where
    # R1-Zero's format would count 1 of 4).
    language = [s["parts"]["language_consistency"] for s in samples]
    assert out["reward/language_consistency"] == pytest.approx(sum(language) / 8)
    assert out["reward/format_readable"] == out["reward/format_rate"] == 0.75
    assert out["reward/math_accuracy"] == out["reward/accuracy"] == 0.75
    assert "reward/format" not in out


def test_with_no_language_weight_mixing_costs_nothing(tiny_model, tmp_path):
    _, t = scripted_step(tiny_model, tmp_path, "rewards.language_consistency=0")
    clean, mixed = t.last_samples[:2]
    assert mixed["parts"]["language_consistency"] < clean["parts"]["language_consistency"]
    assert mixed["reward"] == clean["reward"] and mixed["advantage"] == clean["advantage"]


# --- the chain, end to end ----------------------------------------------------------------------


def test_cold_start_sft_then_the_stage_runs_end_to_end(tiny_model, tmp_path):
    from r1lab.data.sources import DEFAULT_EXEMPLARS
    from r1lab.sft import trainer as sft
    from r1lab.sft.config import SFTConfig

    # Cold-start rows in the readable format (the shipped exemplars), fine-tuned under the
    # stage's template: `r1lab sft data=... template=r1 out=runs/sft-coldstart`.
    rows = [json.loads(line) for line in DEFAULT_EXEMPLARS.read_text().splitlines()]
    data = tmp_path / "coldstart.jsonl"
    data.write_text(
        "".join(
            json.dumps({"prompt": r["question"], "completion": " " + r["completion"]}) + "\n"
            for r in rows
        )
    )
    sft_run = tmp_path / "sft-coldstart"
    sft_cfg = SFTConfig(
        model=str(tiny_model),
        data=str(data),
        template="r1",
        eval_size=0.0,
        steps=1,
        batch_size=4,
        warmup_steps=1,
        threads=1,
        progress=False,
        out=str(sft_run),
    )
    assert sft.run(sft_cfg) == 0

    # The stage names the SFT run, not a checkpoint: its last one is the policy.
    run = tmp_path / "r1"
    cfg = stage_config(sft_run, run, "steps=1", "eval_every=1", "checkpoint_every=1")
    assert trainer.run(cfg) == 0
    rows = read_metrics(run)
    train = next(r for r in rows if "reward/total" in r)
    for name in ("math_accuracy", "format_readable", "language_consistency"):
        assert 0 <= train[f"reward/{name}"] <= 1, name
    parts = (
        train["reward/math_accuracy"]
        + 0.5 * train["reward/format_readable"]
        + train["reward/language_consistency"]
    )
    assert train["reward/total"] == pytest.approx(parts, abs=1e-9)
    assert train["reward/format_rate"] == train["reward/format_readable"]
    evals = [r for r in rows if "eval/format" in r]
    assert [r["step"] for r in evals] == [0, 1]
    # The policy's checkpoint says how to prompt it, for eval and the stages after, and what it
    # learned (`r1lab coldstart` asks each cell the zero model of its task).
    meta = checkpoint_meta(checkpoints(run)[-1])
    assert (meta["template"], meta["task"]) == ("r1", "arithmetic")
