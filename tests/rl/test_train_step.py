"""The wiring of one GRPO step: which numbers reach the loss, row by row.

The math of `r1lab.rl.algos` is tested on its own; these tests check that `train_step` hands it
the right rows: each completion's own group's advantage, the sampler's log-probs as pi_old, the
starting model's log-probs as the reference, the configured clip ranges and aggregation, the
overlong mask. Rewards come from a toy pool whose score depends on the completion only, so the
expected advantage of every row is known without any grader. Spies wrap the functions
`train_step` calls (collate, micro_batches, grpo_loss) and record what passed through them.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import pytest
import torch

from r1lab.rewards.composite import RewardResult
from r1lab.rl import trainer
from r1lab.rl.algos import compute_advantages
from r1lab.rl.config import AlgoConfig, RolloutConfig, ZeroConfig
from r1lab.rl.state import checkpoints
from r1lab.rollout import completion_logprobs
from r1lab.tasks import TaskConfig
from r1lab.tracking import read_metrics

# The sampler's log-probs (one token at a time, KV cache) against the trainer's recomputation
# (one forward over the batch): the same function of the same weights, summed in another order.
LOGPROB_ATOL = 1e-4


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class ToyPool:
    """Scores every completion by `fn(text, example)` alone; records what it scored."""

    def __init__(self, fn, accuracy: str = "math_accuracy", fmt: str = "format"):
        self.fn, self.accuracy, self.format = fn, accuracy, fmt
        self.examples: list = []

    def score(self, reward, texts, examples):
        self.examples.extend(examples)
        scores = [float(self.fn(t, ex)) for t, ex in zip(texts, examples, strict=True)]
        return [RewardResult(s, {self.accuracy: s, self.format: 0.0}) for s in scores]


def by_length(text, example):
    return len(text)  # differs within almost every group


def make_config(model: Path, **kw) -> ZeroConfig:
    fields = dict(
        model=str(model),
        task=TaskConfig(name="arithmetic"),
        rollout=RolloutConfig(group_size=4, max_new_tokens=24, temperature=0.7),
        algo=AlgoConfig(prompts_per_step=3, micro_batch=5, lr=1e-3, warmup_steps=1),
        train_pool=32,
        workers=0,
        progress=False,
    )
    fields.update(kw)
    return ZeroConfig(**fields)


class Spy:
    """Records the completions collated, the micro-batch rows and every grpo_loss call."""

    def __init__(self, monkeypatch):
        self.completions, self.batches, self.micro, self.calls = [], [], [], []
        real_collate, real_micro, real_loss = (
            trainer.collate,
            trainer.micro_batches,
            trainer.grpo_loss,
        )

        def collate(completions, pad_id=None):
            self.completions.append(list(completions))
            batch = real_collate(completions, pad_id)
            self.batches.append(batch)
            return batch

        def micro_batches(*args, **kw):
            rows = real_micro(*args, **kw)
            self.micro.append(rows)
            return rows

        def grpo_loss(logp, old, ref, adv, mask, **kw):
            loss, stats = real_loss(logp, old, ref, adv, mask, **kw)
            self.calls.append(
                dict(
                    logp=logp.detach().clone(),
                    old=None if old is None else old.clone(),
                    ref=None if ref is None else ref.clone(),
                    adv=adv.clone(),
                    mask=mask.clone(),
                    kw=kw,
                    stats=stats,
                )
            )
            return loss, stats

        monkeypatch.setattr(trainer, "collate", collate)
        monkeypatch.setattr(trainer, "micro_batches", micro_batches)
        monkeypatch.setattr(trainer, "grpo_loss", grpo_loss)


def expected_advantages(completions, rewards, name="grpo", scale="") -> torch.Tensor:
    """[N] advantage of each completion, its group found by the completion's prompt_index (not
    by its position in the batch)."""
    groups = [
        [i for i, c in enumerate(completions) if c.prompt_index == p]
        for p in sorted({c.prompt_index for c in completions})
    ]
    table = torch.tensor([[rewards[i] for i in g] for g in groups])  # [P, G]
    adv = compute_advantages(name, table, scale or None)
    out = torch.zeros(len(completions))
    for g, row in zip(groups, adv, strict=True):
        out[g] = row.float()
    return out


def sampler_logprobs(completions, width: int) -> torch.Tensor:
    out = torch.zeros(len(completions), width)
    for i, c in enumerate(completions):
        out[i, : len(c.logprobs)] = torch.tensor(c.logprobs)
    return out


@pytest.mark.parametrize(
    "advantage, scale, agg",
    [
        ("grpo", "", "token-mean"),
        ("dr_grpo", "", "seq-mean-token-sum-norm"),
        ("rloo", "batch", "seq-mean-token-mean"),
    ],
)
def test_each_row_gets_its_own_groups_advantage_log_probs_mask_and_the_loss_settings(
    tiny_model, monkeypatch, advantage, scale, agg
):
    algo = AlgoConfig(
        prompts_per_step=3,
        micro_batch=5,  # micro-batches cut across groups, rows in length order
        lr=1e-3,
        warmup_steps=1,
        eps_low=0.15,
        eps_high=0.28,
        beta=0.02,
        loss_agg=agg,
        advantage=advantage,
        scale=scale,
    )
    cfg = make_config(tiny_model, algo=algo)
    pool = ToyPool(by_length)
    t = trainer.build(cfg, pool)
    spy = Spy(monkeypatch)
    out = trainer.train_step(t, 0)

    (completions,), (batch,), (micro,) = spy.completions, spy.batches, spy.micro
    n = len(completions)
    assert n == 12 and len(spy.calls) == len(micro) > 1
    # Length-shaping rewards read each completion's own token count.
    assert [ex["num_tokens"] for ex in pool.examples] == [len(c.token_ids) for c in completions]
    assert {ex["max_tokens"] for ex in pool.examples} == {24}
    rewards = [float(len(c.text)) for c in completions]
    want_adv = expected_advantages(completions, rewards, advantage, scale)
    assert want_adv.abs().sum() > 0
    seen = torch.cat(micro).sort().values
    assert torch.equal(seen, torch.arange(n))  # every row once
    old = sampler_logprobs(completions, batch.completion_ids.shape[1])
    total_tokens = int(batch.completion_mask.sum())
    for rows, call in zip(micro, spy.calls, strict=True):
        width = call["logp"].shape[1]
        assert width == int(batch.completion_mask[rows].sum(1).max())
        # This micro-batch's rows: their own advantages, masks and log-probs.
        torch.testing.assert_close(call["adv"], want_adv[rows], rtol=0, atol=1e-6)
        assert torch.equal(call["mask"], batch.completion_mask[rows, :width])
        # On-policy (mu = 1): the trainer's recomputed log-probs, taken at the rollout
        # temperature, are the sampler's own (a trainer at T = 1 would differ by far more).
        torch.testing.assert_close(call["logp"], old[rows, :width], rtol=0, atol=LOGPROB_ATOL)
        assert call["old"] is None
        # The reference is the starting model, which at step 0 is the policy.
        torch.testing.assert_close(call["ref"], call["logp"], rtol=0, atol=1e-6)
        assert call["kw"] == dict(
            eps_low=0.15,
            eps_high=0.28,
            beta=0.02,
            agg=agg,
            num_seqs=n,
            num_tokens=total_tokens,
            max_len=24,
        )
    # The samples written to disk carry the same per-completion advantages.
    by_text = {}
    for c, a in zip(completions, want_adv.tolist(), strict=True):
        by_text.setdefault(c.text, set()).add(round(a, 5))
    assert all(round(s["advantage"], 5) in by_text[s["completion"]] for s in t.last_samples)
    assert out["policy/advantage_abs_mean"] == pytest.approx(want_adv.abs().mean().item())
    assert out["loss/total"] == pytest.approx(out["loss/policy"] + out["loss/kl"], abs=1e-7)


def test_the_trainer_log_probs_are_taken_at_the_rollout_temperature(tiny_model, monkeypatch):
    # At T = 0.7 the T = 1 log-probs of the same tokens are far from the sampler's.
    cfg = make_config(tiny_model)
    t = trainer.build(cfg, ToyPool(by_length))
    sampled_by = copy.deepcopy(t.policy)  # the step updates t.policy
    spy = Spy(monkeypatch)
    trainer.train_step(t, 0)
    (completions,), (batch,) = spy.completions, spy.batches
    with torch.no_grad():
        at_1 = completion_logprobs(sampled_by, batch, temperature=1.0)
        at_t = completion_logprobs(sampled_by, batch, temperature=0.7)
    old = sampler_logprobs(completions, batch.completion_ids.shape[1])
    mask = batch.completion_mask.bool()
    assert (at_1 - old)[mask].abs().max() > 100 * LOGPROB_ATOL
    torch.testing.assert_close(at_t, old, rtol=0, atol=LOGPROB_ATOL)


def test_mu_2_takes_pi_old_from_the_sampler_so_the_second_pass_ratio_moves(tiny_model, monkeypatch):
    algo = AlgoConfig(prompts_per_step=2, micro_batch=8, lr=3e-2, warmup_steps=1, mu=2)
    cfg = make_config(tiny_model, algo=algo)
    t = trainer.build(cfg, ToyPool(by_length))
    spy = Spy(monkeypatch)
    out = trainer.train_step(t, 0)
    (completions,), (batch,), (micro,) = spy.completions, spy.batches, spy.micro
    assert len(spy.calls) == 2 * len(micro)
    old = sampler_logprobs(completions, batch.completion_ids.shape[1])
    first, second = spy.calls[: len(micro)], spy.calls[len(micro) :]
    for rows, a, b in zip(micro, first, second, strict=True):
        width = a["logp"].shape[1]
        # pi_old is the sampler's log-probs in both passes, not the current policy's.
        assert torch.equal(a["old"], old[rows, :width]) and torch.equal(b["old"], a["old"])
        torch.testing.assert_close(a["logp"], a["old"], rtol=0, atol=LOGPROB_ATOL)
        assert (b["logp"] - b["old"]).abs().max() > 1e-2  # the first pass moved the policy
    # The step reports the last pass: its ratio is visibly off 1 and the clip has bound.
    assert abs(out["policy/ratio_mean"] - 1.0) > 1e-3
    assert out["policy/clip_frac"] > 0
    assert out["policy/clip_frac"] == pytest.approx(
        out["policy/clip_frac_low"] + out["policy/clip_frac_high"]
    )


def test_overlong_mask_gives_truncated_completions_no_loss_weight(tiny_model, monkeypatch):
    # 12 tokens: the tiny model ends some completions (EOS) and runs out on others.
    rollout = RolloutConfig(group_size=4, max_new_tokens=12, temperature=1.0)
    algo = AlgoConfig(prompts_per_step=4, micro_batch=16, lr=1e-3, warmup_steps=1, overlong="mask")
    cfg = make_config(tiny_model, rollout=rollout, algo=algo)
    t = trainer.build(cfg, ToyPool(by_length))
    spy = Spy(monkeypatch)
    out = trainer.train_step(t, 0)
    (completions,), (batch,), (micro,) = spy.completions, spy.batches, spy.micro
    truncated = torch.tensor([c.finish_reason == "length" for c in completions])
    assert 0 < int(truncated.sum()) < len(completions)
    assert out["response/clipped_ratio"] == pytest.approx(truncated.float().mean().item())
    kept_tokens = int(batch.completion_mask[~truncated].sum())
    for rows, call in zip(micro, spy.calls, strict=True):
        width = call["mask"].shape[1]
        want = batch.completion_mask[rows, :width].clone()
        want[truncated[rows]] = 0.0
        assert torch.equal(call["mask"], want)
        assert call["kw"]["num_tokens"] == kept_tokens


def test_the_kl_reference_is_the_starting_model_not_the_policy(tiny_model, monkeypatch):
    algo = AlgoConfig(prompts_per_step=2, micro_batch=8, lr=3e-2, warmup_steps=1, beta=0.1)
    cfg = make_config(tiny_model, algo=algo)
    t = trainer.build(cfg, ToyPool(by_length))
    start = {k: v.clone() for k, v in t.policy.state_dict().items()}
    trainer.train_step(t, 0)
    spy = Spy(monkeypatch)
    out = trainer.train_step(t, 1)  # the policy has moved; the reference must not have
    (batch,), (micro,) = spy.batches, spy.micro
    assert any(not torch.equal(v, start[k]) for k, v in t.policy.state_dict().items())
    assert all(torch.equal(v, start[k]) for k, v in t.ref.state_dict().items())
    with torch.no_grad():
        ref = completion_logprobs(t.ref, batch, temperature=0.7)
    for rows, call in zip(micro, spy.calls, strict=True):
        width = call["ref"].shape[1]
        torch.testing.assert_close(call["ref"], ref[rows, :width], rtol=0, atol=1e-6)
        assert (call["ref"] - call["logp"]).abs().max() > 1e-3
    assert out["policy/kl"] > 0 and out["loss/kl"] > 0


def test_beta_zero_loads_no_reference_and_has_no_kl_term(tiny_model, monkeypatch):
    algo = AlgoConfig(prompts_per_step=2, micro_batch=8, lr=1e-3, warmup_steps=1, beta=0.0)
    t = trainer.build(make_config(tiny_model, algo=algo), ToyPool(by_length))
    assert t.ref is None
    spy = Spy(monkeypatch)
    out = trainer.train_step(t, 0)
    assert all(call["ref"] is None for call in spy.calls)
    assert "loss/kl" not in out and "policy/kl" not in out
    assert out["loss/total"] == out["loss/policy"]


def test_the_logged_entropy_is_the_mean_over_completion_tokens_of_the_policys(tiny_model):
    # A policy whose logits are all equal has entropy log V at every token, so the mean is too.
    t = trainer.build(make_config(tiny_model), ToyPool(by_length))
    head = t.policy.get_output_embeddings()
    with torch.no_grad():
        head.weight.zero_()
        if getattr(head, "bias", None) is not None:
            head.bias.zero_()
    out = trainer.train_step(t, 0)
    assert out["policy/entropy"] == pytest.approx(math.log(head.weight.shape[0]), rel=1e-6)


def test_a_finite_step_ends_the_non_finite_streak_and_an_infinite_gradient_is_skipped(
    tiny_model, monkeypatch
):
    t = trainer.build(make_config(tiny_model), ToyPool(by_length))
    real_loss, real_clip = trainer.grpo_loss, trainer.clip_grad_norm
    bad: dict[str, bool] = {"loss": False, "grad": False}

    def loss(*args, **kw):
        value, stats = real_loss(*args, **kw)
        if bad["loss"]:
            return value * float("nan"), {**stats, "loss/total": float("nan")}
        return value, stats

    def clip(*args, **kw):
        norm = real_clip(*args, **kw)
        return torch.tensor(float("inf")) if bad["grad"] else norm

    monkeypatch.setattr(trainer, "grpo_loss", loss)
    monkeypatch.setattr(trainer, "clip_grad_norm", clip)
    streak = []
    for step, (nan_loss, inf_grad) in enumerate([(1, 0), (0, 1), (0, 0), (1, 0)]):
        bad.update(loss=bool(nan_loss), grad=bool(inf_grad))
        before = [p.detach().clone() for p in t.policy.parameters()]
        out = trainer.train_step(t, step)
        unchanged = all(
            torch.equal(a, p) for a, p in zip(before, t.policy.parameters(), strict=True)
        )
        assert out.get("train/nan_skipped") == (1.0 if nan_loss or inf_grad else None)
        assert unchanged == bool(nan_loss or inf_grad)  # a skipped step applies nothing
        streak.append(t.nan_streak)
    assert streak == [1, 2, 0, 1]


def test_the_gradient_through_shared_prompts_is_the_plain_forwards(tiny_model, monkeypatch):
    # Each prompt goes through the model once per pass (PromptCache); the gradient reaching it
    # from every row must still arrive: the step's gradient equals one where every row
    # recomputes its prompt.
    real_clip = trainer.clip_grad_norm
    grads: list[dict[str, torch.Tensor]] = []

    def clip(params, max_norm):
        params = list(params)
        named = dict(t.policy.named_parameters())
        grads.append({k: v.grad.detach().clone() for k, v in named.items()})
        return real_clip(params, max_norm)

    monkeypatch.setattr(trainer, "clip_grad_norm", clip)
    cfg = make_config(tiny_model, algo=AlgoConfig(prompts_per_step=2, micro_batch=3))
    t = trainer.build(cfg, ToyPool(by_length))
    assert trainer.PromptCache.supports(t.policy)  # the cached path is the one taken
    trainer.train_step(t, 0)
    monkeypatch.setattr(trainer, "_prompt_cache", lambda model, batch: None)
    t = trainer.build(cfg, ToyPool(by_length))
    trainer.train_step(t, 0)
    cached, plain = grads
    for name, g in plain.items():
        torch.testing.assert_close(cached[name], g, rtol=1e-4, atol=1e-7, msg=name)
    assert plain["model.embed_tokens.weight"].abs().max() > 1e-6  # the prompts' embeddings learn


def test_the_logged_accuracy_and_format_rate_are_the_shares_of_full_marks(tiny_model):
    # Accuracy 1 for completions of odd length, 0.5 (partial, not right) or 0 otherwise; the
    # format part 1 for every third completion.
    def parts(text: str) -> tuple[float, float]:
        return (1.0 if len(text) % 2 else 0.5 * (len(text) % 4 == 0)), float(len(text) % 3 == 0)

    class Pool(ToyPool):
        def score(self, reward, texts, examples):
            return [
                RewardResult(
                    sum(parts(x)), dict(zip(("math_accuracy", "format"), parts(x), strict=True))
                )
                for x in texts
            ]

    t = trainer.build(make_config(tiny_model), Pool(by_length))
    out = trainer.train_step(t, 0)
    texts = [s["completion"] for s in t.last_samples]
    assert out["reward/accuracy"] == pytest.approx(
        sum(parts(x)[0] == 1 for x in texts) / len(texts)
    )
    assert out["reward/format_rate"] == pytest.approx(
        sum(parts(x)[1] == 1 for x in texts) / len(texts)
    )
    assert out["reward/math_accuracy"] == pytest.approx(
        sum(parts(x)[0] for x in texts) / len(texts)
    )


def test_the_learning_rate_warms_up_once_per_step(tiny_model):
    algo = AlgoConfig(prompts_per_step=1, micro_batch=8, lr=1e-3, warmup_steps=3, weight_decay=0.05)
    rollout = RolloutConfig(group_size=2, max_new_tokens=4)
    t = trainer.build(make_config(tiny_model, algo=algo, rollout=rollout), ToyPool(by_length))
    outs, walls = [], []
    for step in range(4):
        start = time.perf_counter()
        outs.append(trainer.train_step(t, step))
        walls.append(time.perf_counter() - start)
    assert [o["policy/lr"] for o in outs] == pytest.approx(
        [1e-3 / 3, 2e-3 / 3, 1e-3, 1e-3], rel=1e-6
    )
    # throughput: the step's completion tokens over its busy seconds (rollout, update, comm)
    o = outs[-1]
    busy = o["time/rollout"] + o["time/update"] + o["time/comm"]
    tokens = o["response/length_mean"] * 2  # one prompt x group of 2
    assert o["perf/tokens_per_s"] == pytest.approx(tokens / busy, rel=1e-6)
    assert o["time/rollout"] > 0 and o["time/reward"] > 0 and o["time/update"] > 0
    assert o["time/rollout"] + o["time/reward"] + o["time/update"] <= o["time/step"] <= walls[-1]
    assert t.optimizer.param_groups[0]["weight_decay"] == algo.weight_decay


def test_overlong_penalty_adds_the_soft_penalty_sized_to_the_rollout(tiny_model):
    algo = AlgoConfig(overlong="penalty", overlong_cache=8)
    reward = trainer.build_reward(
        make_config(tiny_model, algo=algo), trainer.make_task(TaskConfig(name="arithmetic"))
    )
    assert reward.weights["overlong_penalty"] == 1.0
    assert reward.params["overlong_penalty"] == {"max_length": 24, "cache_length": 8}
    plain = trainer.build_reward(
        make_config(tiny_model), trainer.make_task(TaskConfig(name="arithmetic"))
    )
    assert "overlong_penalty" not in plain.weights


def test_the_arithmetic_reward_refuses_the_question_restated_and_so_does_length_shaping(
    tiny_model,
):
    # `Compute 450 / 6` answered `450 / 6` equals 75 to math-verify; the task asks for a number.
    from r1lab.rewards import RewardPool

    task = trainer.make_task(TaskConfig(name="arithmetic", ops="+*/"))
    cfg = make_config(tiny_model, rewards={"math_accuracy": 1.0, "cosine_length": 1.0})
    reward = trainer.build_reward(cfg, task)
    assert reward.params["cosine_length"] == {
        "accuracy": "math_accuracy",
        "accuracy_params": {"literal": True},
    }
    example = {"question": "Compute 450 / 6", "answer": "75", "language": "en", "num_tokens": 10}
    answers = ["75", "450 / 6", "\\frac{450}{6}", "450 \\div 6", "76 - 1", "75 + 0"]
    texts = [f"<think> 6*7=42 </think> <answer> {a} </answer>" for a in answers]
    results = RewardPool(workers=0).score(reward, texts, [example] * len(texts))
    assert [r.parts["math_accuracy"] for r in results] == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert [r.parts["cosine_length"] > 0 for r in results] == [True] + [False] * 5
    assert [task.is_correct(t, example) for t in texts] == [True] + [False] * 5


def test_a_task_without_a_rule_based_reward_is_refused_for_rl(tiny_model):
    from r1lab.config import ConfigError

    general = trainer.make_task(TaskConfig(name="general"))
    with pytest.raises(ConfigError, match="task 'general' has no rule-based reward"):
        trainer.build_reward(make_config(tiny_model), general)


def test_weights_that_leave_out_the_tasks_accuracy_reward_are_refused(tiny_model):
    # `rewards.language_consistency=1` alone would otherwise train on language and nothing else.
    from r1lab.config import ConfigError

    task = trainer.make_task(TaskConfig(name="arithmetic"))
    with pytest.raises(ConfigError, match="leave out task 'arithmetic''s accuracy reward"):
        trainer.build_reward(make_config(tiny_model, rewards={"language_consistency": 1.0}), task)
    # Named, even at 0 on purpose, it is accepted; empty means the task's own weights.
    on_purpose = {"language_consistency": 1.0, "math_accuracy": 0.0}
    reward = trainer.build_reward(make_config(tiny_model, rewards=on_purpose), task)
    assert reward.weights == {**on_purpose, "format": 0.0}
    assert trainer.build_reward(make_config(tiny_model), task).weights == task.rewards.weights


def test_dynamic_sampling_trains_only_on_groups_whose_rewards_differ(tiny_model, monkeypatch):
    # Every other training example scores the same for all its completions.
    algo = AlgoConfig(
        prompts_per_step=3,
        micro_batch=16,
        lr=1e-3,
        warmup_steps=1,
        dynamic_sampling=True,
        max_resample_rounds=4,
    )
    t = trainer.build(make_config(tiny_model, algo=algo), ToyPool(lambda text, ex: 0.0))
    flat = {ex["question"] for i, ex in enumerate(t.stream.examples) if i % 2}

    def half_flat(text, ex):
        return 0.0 if ex["question"] in flat else len(text)

    t.pool = ToyPool(half_flat)
    spy = Spy(monkeypatch)
    out = trainer.train_step(t, 0)
    (completions,) = spy.completions
    assert out["batch/groups"] == 3 and len(completions) == 12
    assert out["batch/zero_std_groups"] == pytest.approx(1 / 3)  # 2 flat of the 6 drawn
    assert out["batch/sampling_rounds"] == 2  # the second round fills the batch: no third
    # Every group that reached the loss has rewards that differ, so a non-zero advantage.
    assert all(len({s["reward"] for s in t.last_samples[i : i + 4]}) > 1 for i in (0, 4, 8))
    assert all(s["question"] not in flat for s in t.last_samples)


def test_dynamic_sampling_stops_after_max_resample_rounds_when_every_group_is_flat(tiny_model):
    algo = AlgoConfig(
        prompts_per_step=2, micro_batch=8, dynamic_sampling=True, max_resample_rounds=2
    )
    t = trainer.build(make_config(tiny_model, algo=algo), ToyPool(lambda text, ex: 1.0))
    calls = []
    generate = t.sampler.generate
    t.sampler.generate = lambda *a, **kw: calls.append(1) or generate(*a, **kw)
    out = trainer.train_step(t, 0)
    assert len(calls) == 3  # the first round and two resamples, then the step gives up
    assert out["batch/skipped"] == 1.0 and out["batch/zero_std_groups"] == 1.0


def test_checkpoints_every_k_steps_and_at_the_end_keeping_the_last(tiny_model, tmp_path):
    kw = dict(
        steps=3,
        eval_every=0,
        checkpoint_every=2,
        rollout=RolloutConfig(group_size=2, max_new_tokens=4),
        algo=AlgoConfig(prompts_per_step=1, micro_batch=8, warmup_steps=1),
        threads=1,
    )
    trainer.run(make_config(tiny_model, out=str(tmp_path / "a"), keep_checkpoints=5, **kw))
    assert [p.name for p in checkpoints(tmp_path / "a")] == ["step-000002", "step-000003"]
    trainer.run(make_config(tiny_model, out=str(tmp_path / "b"), keep_checkpoints=1, **kw))
    assert [p.name for p in checkpoints(tmp_path / "b")] == ["step-000003"]
    assert [r["step"] for r in read_metrics(tmp_path / "b") if "loss/total" in r] == [0, 1, 2]


def test_run_eval_samples_at_the_configured_eval_temperature(tiny_model, monkeypatch):
    import r1lab.evaluate

    seen = {}

    def fake_evaluate(model, tokenizer, task, examples, **kw):
        seen.update(kw, model=model, examples=examples)
        return r1lab.evaluate.EvalResult({"eval/pass@1": 0.0}, [])

    monkeypatch.setattr(r1lab.evaluate, "evaluate", fake_evaluate)
    cfg = make_config(tiny_model, eval_temperature=0.85, eval_n=3, eval_questions=5, seed=7)
    t = trainer.build(cfg, ToyPool(by_length))
    assert trainer.run_eval(t, None) == {"eval/pass@1": 0.0}
    assert seen["model"] is t.policy and len(seen["examples"]) == 5
    assert seen["temperature"] == 0.85 and seen["n"] == 3 and seen["seed"] == 7
    assert seen["greedy"] is False and seen["max_new_tokens"] == cfg.rollout.max_new_tokens


def test_the_optimizer_steps_on_gradients_clipped_to_max_grad_norm(tiny_model, monkeypatch):
    # Adam is nearly invariant to the gradient's scale, so the weights barely show clipping: look
    # at the gradient the optimizer is handed instead.
    algo = AlgoConfig(
        prompts_per_step=2, micro_batch=8, lr=1e-3, warmup_steps=1, max_grad_norm=1e-3
    )
    t = trainer.build(make_config(tiny_model, algo=algo), ToyPool(by_length))
    norms: list[float] = []
    real_step = t.optimizer.step

    def step(*a, **k):
        grads = [p.grad for p in t.policy.parameters() if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())
        return real_step(*a, **k)

    monkeypatch.setattr(t.optimizer, "step", step)
    out = trainer.train_step(t, 0)
    assert len(norms) == 1
    assert out["policy/grad_norm"] > 10 * algo.max_grad_norm  # the raw norm is logged, pre-clip
    assert norms[0] == pytest.approx(algo.max_grad_norm, rel=1e-3)


def test_the_step_logs_the_self_correction_rate_of_its_samples(tiny_model, monkeypatch):
    # The sampled texts are replaced by scripted ones (token ids kept for the loss); the toy
    # pool grades "<answer> 7 </answer>" correct, so each row's self-correction is known.
    import dataclasses

    fixed = "<think> 3+4=8. Wait, 3+4=7. </think> <answer> 7 </answer>"
    script = [
        fixed,  # self-corrects
        "<think> Wait, 3+4=7. </think> <answer> 7 </answer>",  # nothing wrong to correct
        fixed.replace("7 </answer>", "8 </answer>"),  # corrects, then answers wrong
        fixed,
    ]
    rollout = RolloutConfig(group_size=4, max_new_tokens=8)
    algo = AlgoConfig(prompts_per_step=2, micro_batch=8)
    pool = ToyPool(lambda text, ex: float("<answer> 7 </answer>" in text))
    t = trainer.build(make_config(tiny_model, rollout=rollout, algo=algo), pool)
    real = t.sampler.generate

    def generate(prompts, params, seed=None):
        groups = real(prompts, params, seed=seed)
        return [
            [dataclasses.replace(c, text=s) for c, s in zip(g, script, strict=True)] for g in groups
        ]

    monkeypatch.setattr(t.sampler, "generate", generate)
    out = trainer.train_step(t, 0)
    assert out["response/self_correction_rate"] == 0.5
    assert out["response/reflection_rate"] == 1.0


@pytest.mark.parametrize("plain_step", [None, False, True])
def test_rollout_plain_step_reaches_the_sampler(tiny_model, plain_step):
    rollout = RolloutConfig(group_size=4, max_new_tokens=24, plain_step=plain_step)
    t = trainer.build(make_config(tiny_model, rollout=rollout), ToyPool(by_length))
    assert t.sampler.plain_step is plain_step


def test_majority_voting_on_arithmetic_never_groups_a_number_with_one_left_to_compute():
    from r1lab.metrics import maj_at_k_correct

    task = trainer.make_task(TaskConfig(name="arithmetic", ops="+*/"))
    example = {"question": "Compute 450 / 6", "answer": "75", "language": "en"}
    assert task.equivalent("75", "75.0", example) and task.equivalent(
        "450/6", "\\frac{450}{6}", example
    )
    assert not task.equivalent("450 / 6", "75", example)
    assert not task.equivalent("75\\%", "75", example)  # graded apart, so voted apart

    def vote(a: str, b: str) -> bool:
        return task.equivalent(a, b, example)

    def grade(answer: str) -> bool:
        return task.is_correct(f"<think> x </think> <answer> {answer} </answer>", example)

    # Grouped with the number, the restated question would decide the vote either way.
    for answers, right in ((["450 / 6", "75", "75"], True), (["75", "450 / 6", "450 / 6"], False)):
        assert maj_at_k_correct(answers, [grade(a) for a in answers], vote) is right, answers
