"""`r1lab zero`: R1-Zero, GRPO from a base model with rule-based rewards.

    r1lab zero --config configs/zero-arithmetic.yaml
    r1lab zero --config configs/zero-countdown.yaml algo.beta=0 out=runs/cd
    r1lab zero --resume runs/zero
    r1lab zero --config configs/r1-reasoning.yaml   # DeepSeek-R1 stage 2 (docs/r1.md)

`train_step` is one GRPO step, top to bottom: rollout -> reward -> advantage -> loss ->
optimizer step -> metrics. Everything else here (building the run, evaluation, checkpoints,
display) is plumbing around it.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from r1lab import metrics as M
from r1lab.checkpoint import own_memory
from r1lab.config import ConfigError, validate
from r1lab.rl.algos import DEFAULT_SCALE, compute_advantages, entropy_from_logits, grpo_loss
from r1lab.rl.config import AlgoConfig, ZeroConfig
from r1lab.rl.mixed import (
    add_model_rewards,
    general_composite,
    general_pool,
    is_general,
    load_model_rewards,
)
from r1lab.rl.state import PromptStream
from r1lab.rollout import Completion, Sampler, SamplingParams, token_logprobs
from r1lab.rollout.batch import (
    Batch,
    PromptCache,
    Rows,
    collate,
    completion_logits,
    default_cut_cost,
    micro_batches,
)
from r1lab.run.checkpoints import (
    interruptible,
    load_trainer_state,
    save_training_checkpoint,
    stop_on_nan_streak,
)
from r1lab.run.distributed import (
    all_gather_object,
    all_max,
    all_sum,
    all_sum_dict,
    rank_world,
)
from r1lab.run.fsdp import (
    accumulate,
    clip_grad_norm,
    gathered,
    load_optimizer_state,
    shard_model,
)
from r1lab.run.loop import open_or_resume
from r1lab.run.progress import Display
from r1lab.tasks import encode_prompts, make_task, render_prompt


@dataclass
class Trainer:
    """Everything a step needs, passed explicitly (STYLE.md 7)."""

    cfg: ZeroConfig
    policy: Any
    ref: Any | None
    tokenizer: Any
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sampler: Sampler
    sampling: SamplingParams
    pool: Any
    reward: Any  # CompositeReward
    task: Any
    stream: PromptStream
    device: torch.device
    dtype: torch.dtype = torch.float32
    """What the steps and evaluations compute in (`r1lab.run.model.autocast`); weights are fp32."""
    nan_streak: int = 0
    last_samples: list[dict[str, Any]] = field(default_factory=list)
    general_reward: Any = None
    """The rule part of a general request's reward (`r1lab.rl.mixed`); None: no general ones."""
    model_rewards: list[Any] = field(default_factory=list)
    """Reward models scoring general requests in this process (`r1lab.rl.mixed`)."""


# ---------------------------------------------------------------------------------------------
# One GRPO step


def train_step(t: Trainer, step: int) -> dict[str, float]:
    """Sample, score, compute advantages, update the policy; return the step's metrics.

    Data-parallel (`r1lab.run.distributed`): each rank samples, scores and computes advantages
    for its own P / world_size groups; the loss normalisers, the gradients and the metrics are
    summed over ranks, so every rank applies the update one process would with all P groups."""
    cfg, algo = t.cfg, t.cfg.algo
    G = cfg.rollout.group_size
    rank, world = rank_world()
    share = algo.prompts_per_step // world  # this rank's groups (validated to divide)
    times = {"rollout": 0.0, "reward": 0.0, "comm": 0.0}

    # 1-2. Rollout and reward. Dynamic sampling (DAPO) keeps only groups whose rewards differ
    # and samples more prompts until P groups are kept or the extra rounds run out. Every rank
    # goes through the same rounds (taking its share of the stream each time), so the stream
    # stays at one global position; a rank that has its share already samples nothing more.
    kept: list[tuple[Mapping[str, Any], list[Completion], list[Any]]] = []
    zero_var_groups = seen_groups = errors = timeouts = 0
    rounds = 1 + (algo.max_resample_rounds if algo.dynamic_sampling else 0)
    with gathered(t.policy):  # sharded (fsdp): full weights once for every decode step
        for rnd in range(rounds):
            examples = t.stream.take(share)
            if rnd > 0 and len(kept) >= share:
                examples = []
            prompts = [render_prompt(ex["question"], cfg.template, t.tokenizer) for ex in examples]
            t0 = time.perf_counter()
            prompt_ids = encode_prompts(prompts, cfg.template, t.tokenizer) if prompts else []
            seed = _seed(cfg.seed, step, rnd, rank)
            groups = t.sampler.generate(prompt_ids, t.sampling, seed=seed) if prompts else []
            t1 = time.perf_counter()
            flat = [c for g in groups for c in g]
            items = [
                _with_lengths(ex, c, cfg) for ex, g in zip(examples, groups, strict=True) for c in g
            ]
            texts = [c.text for c in flat]
            # A question's reward comes from the task's rules; a general request's from its format
            # rule, then the reward models, in this process (RL for all scenarios).
            composites = (
                [t.general_reward if is_general(ex) else t.reward for ex in items]
                if t.general_reward is not None
                else t.reward
            )
            scored = t.pool.score(composites, texts, items) if flat else []
            scored = add_model_rewards(t.model_rewards, scored, items, texts)
            # A part that raised or was not a finite number scored 0 (logged by the pool); a reward
            # failing on every item raised RewardError above.
            errors += sum(len(r.info.get("errors", ())) for r in scored)
            # Parts whose worker overran the pool's time limit or died also scored 0.
            timeouts += sum(
                len(r.info.get("timed_out", ())) + len(r.info.get("crashed", ())) for r in scored
            )
            times["rollout"] += t1 - t0
            times["reward"] += time.perf_counter() - t1
            for i, (ex, group) in enumerate(zip(examples, groups, strict=True)):
                results = scored[i * G : (i + 1) * G]
                totals = [r.total for r in results]
                seen_groups += 1
                equal = max(totals) - min(totals) < 1e-9
                zero_var_groups += equal
                if not (algo.dynamic_sampling and equal):
                    kept.append((ex, group, results))
            short = share - len(kept) if algo.dynamic_sampling else 0
            if all_max(short) <= 0:  # every rank has its share (or no resampling)
                break
    kept = kept[:share]
    counts = all_sum([len(kept), zero_var_groups, seen_groups, errors, timeouts])
    n_kept, zero_var_groups, seen_groups, errors, timeouts = counts
    if n_kept == 0:
        return {
            "batch/skipped": 1.0,
            "batch/zero_std_groups": 1.0,
            "reward/errors": errors,
            "reward/timeouts": timeouts,
            **_times(times),
        }

    # 3. Group-relative advantages: each group is normalised on its own rewards only (the
    # "batch" scale divides by the std of every rank's rewards).
    rewards = torch.tensor([[r.total for r in res] for _, _, res in kept]).reshape(-1, G)  # [P, G]
    whole = None
    if world > 1 and (algo.scale or DEFAULT_SCALE[algo.advantage]) == "batch":
        whole = torch.tensor([x for part in all_gather_object(rewards.tolist()) for x in part])
    advantages = compute_advantages(algo.advantage, rewards, algo.scale or None, batch=whole)
    completions = [c for _, group, _ in kept for c in group]
    batch = collate(completions, t.tokenizer.pad_token_id).to(t.device) if kept else None
    mask = batch.completion_mask.clone() if batch is not None else torch.zeros(0, 0)  # [P*G, Lc]
    truncated = torch.tensor([c.finish_reason == "length" for c in completions], dtype=torch.bool)
    if algo.overlong == "mask" and batch is not None:
        mask[truncated.to(t.device)] = 0.0
    adv = advantages.reshape(-1).to(t.device)  # [P*G]

    # 4. Update: mu passes of gradient accumulation over micro-batches. With mu = 1 the
    # sampling policy *is* the current one, so pi_old = logp.detach() (ratio exactly 1, no
    # second forward pass); with mu > 1 the rollout's log-probs are pi_old. Micro-batches (at
    # most micro_batch rows) are cut from the rows sorted by completion length, so each is only
    # as wide as its own longest completion, and each distinct prompt goes through the model
    # once per pass (PromptCache). The loss is normalised over the whole batch, so neither
    # changes the gradient.
    t2 = time.perf_counter()
    n_seq, n_tok = all_sum([len(completions), mask.sum().item()])  # over every rank
    sizes = {
        "num_seqs": int(n_seq),
        "num_tokens": int(n_tok),
        "max_len": cfg.rollout.max_new_tokens,
    }
    micro = (
        micro_batches(batch.completion_mask.sum(1), algo.micro_batch, _cut_cost(t))
        if batch is not None
        else []
    )
    ref_logp = None
    if t.ref is not None and algo.beta > 0:
        with torch.no_grad(), gathered(t.ref):  # sharded: every rank joins the gather
            if batch is not None:
                prompts = _prompt_cache(t.ref, batch)
                ref_logp = torch.zeros_like(mask)  # [N, Lc]
                for rows in micro:
                    logp = _logprobs(t.ref, batch, rows, cfg, prompts)[0]  # [b, k]
                    ref_logp[rows, : logp.shape[1]] = logp
    stats: dict[str, float] = {}
    grad_norm = torch.tensor(0.0)
    lr = t.optimizer.param_groups[0]["lr"]
    t.policy.train()
    for _ in range(algo.mu):
        entropy_sum = 0.0
        pass_stats: dict[str, float] = {}
        # At the block's end every rank's share of the loss is summed: the gradient of the whole
        # batch's loss (an all-reduce, or a reduce-scatter when sharded).
        with accumulate(t.policy) as comm:
            prompts = _prompt_cache(t.policy, batch) if batch is not None else None  # new weights
            for rows in micro:
                logp, ent = _logprobs(t.policy, batch, rows, cfg, prompts, entropy=True)
                width = logp.shape[1]  # the micro-batch's longest completion; the rest is padding
                loss, mb_stats = grpo_loss(
                    logp,
                    batch.old_logprobs[rows, :width] if algo.mu > 1 else None,
                    ref_logp[rows, :width] if ref_logp is not None else None,
                    adv[rows],
                    mask[rows, :width],
                    eps_low=algo.eps_low,
                    eps_high=algo.eps_high,
                    beta=algo.beta,
                    agg=algo.loss_agg,
                    **sizes,
                )
                loss.backward()  # reaches the prompts' cached KV, not yet the prompts' pass
                entropy_sum += (ent * mask[rows, :width]).sum().item()
                for k, v in mb_stats.items():  # every stat is this micro-batch's share
                    pass_stats[k] = pass_stats.get(k, 0.0) + v
            if prompts is not None:
                prompts.backward()  # all micro-batches' gradient through the prompts, once
        times["comm"] += comm.seconds
        pass_stats = all_sum_dict(pass_stats)
        entropy_sum = all_sum([entropy_sum])[0]
        grad_norm = clip_grad_norm(t.policy.parameters(), algo.max_grad_norm)
        if not math.isfinite(pass_stats["loss/total"]) or not torch.isfinite(grad_norm):
            t.optimizer.zero_grad(set_to_none=True)
            t.nan_streak += 1
            stats = {**pass_stats, "train/nan_skipped": 1.0}
            break
        t.optimizer.step()
        t.optimizer.zero_grad(set_to_none=True)
        t.scheduler.step()
        t.nan_streak = 0
        stats = {**pass_stats, "policy/entropy": entropy_sum / max(sizes["num_tokens"], 1)}
    times["update"] = time.perf_counter() - t2 - times["comm"]

    # 5. Metrics: what was sampled, how it scored, how the update went (over every rank's
    # completions: each rank's are gathered, so every rank computes the same numbers).
    spec = t.task.rewards
    mine = [
        (r.total, r.parts, c.text, len(c.token_ids), c.finish_reason == "length", float(a))
        for (_, group, res), adv_row in zip(kept, advantages, strict=True)
        for c, r, a in zip(group, res, adv_row, strict=True)
    ]
    every = [x for part in all_gather_object(mine) for x in part] if world > 1 else mine
    totals, parts, texts, lengths, clipped, advs = (list(col) for col in zip(*every, strict=True))
    out: dict[str, float] = {"reward/total": _mean(totals)}
    # Every part over the completions it scored (a question's accuracy, a general request's
    # reward models); a general request is never "right" (no rule grades it).
    for name in dict.fromkeys(k for p in parts for k in p):
        out[f"reward/{name}"] = _mean([p[name] for p in parts if name in p])
    right = [p.get(spec.accuracy, 0.0) >= 1 - 1e-9 for p in parts]
    graded = [ok for ok, p in zip(right, parts, strict=True) if spec.accuracy in p]
    out["reward/accuracy"] = _mean(graded)
    out["reward/format_rate"] = _mean([p[spec.format] >= 1 - 1e-9 for p in parts])
    if t.general_reward is not None:
        general = [spec.accuracy not in p for p in parts]
        out["batch/general_share"] = _mean(general)
        for source, flag in (("general", True), ("reasoning", False)):
            mine_ = [x for x, g in zip(totals, general, strict=True) if g == flag]
            if mine_:
                out[f"reward/{source}/total"] = _mean(mine_)
    out["reward/errors"] = errors  # failed parts over every item scored this step
    out["reward/timeouts"] = timeouts  # parts killed by the pool (time limit or crash)
    out.update({f"response/length_{k}": float(v) for k, v in M.length_stats(lengths).items()})
    out["response/clipped_ratio"] = _mean(clipped)
    out["response/reflection_rate"] = M.reflection_rate(texts)
    out["response/self_correction_rate"] = M.self_correction_rate(texts, right)
    out.update(stats)
    out["policy/grad_norm"] = float(grad_norm)
    out["policy/lr"] = lr
    out["policy/advantage_abs_mean"] = _mean([abs(a) for a in advs])
    out["batch/zero_std_groups"] = zero_var_groups / seen_groups
    out["batch/groups"] = n_kept
    out["batch/sampling_rounds"] = float(rnd + 1)
    out.update(_times(times))
    busy = all_max(times["rollout"] + times["update"] + times["comm"])  # the slowest rank's
    out["perf/tokens_per_s"] = sum(lengths) / max(busy, 1e-9)
    t.last_samples = [
        {
            "question": ex["question"],
            "prompt": prompt,  # the exact text the model continued
            "reference": ex.get("answer"),
            "completion": c.text,
            "reward": r.total,
            "parts": r.parts,
            "advantage": float(a),
            **({"errors": r.info["errors"]} if r.info.get("errors") else {}),
        }
        for (ex, group, res), adv_row in zip(kept, advantages, strict=True)
        for prompt in [render_prompt(ex["question"], cfg.template, t.tokenizer)]
        for c, r, a in zip(group, res, adv_row, strict=True)
    ]
    return out


# ---------------------------------------------------------------------------------------------
# Helpers of the step


def _logprobs(
    model: Any,
    batch: Batch,
    rows: Rows,
    cfg: ZeroConfig,
    prompts: PromptCache | None,
    entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Completion log-probs [b, k] (and per-token entropy [b, k]) of rows of the batch, in the
    sampler's convention (`token_logprobs` at the rollout temperature); k is the rows' longest
    completion, so columns k.. of the batch (padding in all these rows) are left out."""
    temperature = cfg.rollout.temperature
    logits = completion_logits(model, batch, rows, prompts)  # [b, k, V]
    k = logits.shape[1]
    logp = token_logprobs(logits, batch.completion_ids[rows, :k], temperature)  # [b, k]
    logp = torch.where(batch.completion_mask[rows, :k].bool(), logp, 0.0)  # no NaN from padding
    ent = None
    if entropy:
        with torch.no_grad():
            ent = entropy_from_logits(logits.detach() / temperature)  # [b, k]
    return logp, ent


def _cut_cost(t: Trainer) -> int:
    # The fixed cost of one more micro-batch, in token columns (see micro_batches).
    return t.cfg.algo.micro_batch_cut_cost or default_cut_cost(t.device.type)


def _prompt_cache(model: Any, batch: Batch) -> PromptCache | None:
    # Models with sliding-window or linear-attention layers take the plain forward instead.
    return PromptCache(model, batch) if PromptCache.supports(model) else None


def _seed(seed: int, step: int, rnd: int, rank: int = 0) -> int:
    # Sampling randomness is a function of (seed, step, round, rank) only, so a resumed run
    # samples exactly what an uninterrupted one would (on the same number of ranks).
    return (seed * 1_000_003 + step * 1_009 + rnd + rank * 7_919_993) % (2**31)


def _with_lengths(ex: Mapping[str, Any], c: Completion, cfg: ZeroConfig) -> dict[str, Any]:
    # The reserved keys length-shaping rewards read (see r1lab.rewards).
    return {**ex, "num_tokens": len(c.token_ids), "max_tokens": cfg.rollout.max_new_tokens}


def _times(times: Mapping[str, float]) -> dict[str, float]:
    out = {f"time/{k}": v for k, v in times.items()}
    out["time/step"] = sum(times.values())
    return out


def _mean(xs: Sequence[float]) -> float:
    return float(sum(xs)) / len(xs) if xs else 0.0


# ---------------------------------------------------------------------------------------------
# Building a run


def build_reward(cfg: ZeroConfig, task: Any) -> Any:
    """The composite reward: the task's (or the config's) weights, accuracy and format always
    reported (weight 0 if not trained on), plus DAPO's soft overlong penalty if asked."""
    from r1lab.rewards import CompositeReward, get_reward

    spec = task.rewards
    if not spec.accuracy:
        raise ConfigError(
            f"task '{task.name}' has no rule-based reward: its requests are graded by a hidden "
            "rule kept for evaluation (r1lab eval), never for training; train it with a reward "
            "model instead"
        )
    if cfg.rewards and spec.accuracy not in cfg.rewards:
        # `rewards.language_consistency=1` alone would otherwise train on that reward only.
        raise ConfigError(
            f"rewards {dict(cfg.rewards)} leave out task '{task.name}''s accuracy reward "
            f"'{spec.accuracy}', so right answers would earn nothing; name it "
            f"(rewards.{spec.accuracy}=1.0, rewards.{spec.format}=0.5 are the task's own) "
            f"or set it to 0 on purpose (rewards.{spec.accuracy}=0)"
        )
    weights = dict(cfg.rewards or spec.weights)
    params = {k: dict(v) for k, v in spec.params.items()}
    for k, v in cfg.reward_params.items():
        params.setdefault(k, {}).update(v)
    weights.setdefault(spec.accuracy, 0.0)
    weights.setdefault(spec.format, 0.0)
    if "cosine_length" in weights:  # its correctness is the task's, with the task's params
        shaping = params.setdefault("cosine_length", {})
        shaping.setdefault("accuracy", spec.accuracy)
        shaping.setdefault("accuracy_params", params.get(spec.accuracy, {}))
    if cfg.algo.overlong == "penalty":
        weights.setdefault("overlong_penalty", 1.0)
        params.setdefault("overlong_penalty", {}).update(
            {"max_length": cfg.rollout.max_new_tokens, "cache_length": cfg.algo.overlong_cache}
        )
    for name in weights:
        try:
            get_reward(name)
        except (KeyError, ValueError) as e:
            raise ConfigError(f"rewards: {e}") from None
    return CompositeReward(weights, params)


def make_optimizer(
    model: torch.nn.Module, algo: AlgoConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW with a linear warm-up from lr / warmup_steps to lr, then constant."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=algo.lr, weight_decay=algo.weight_decay)
    warm = max(algo.warmup_steps, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm))
    return optimizer, scheduler


def _check_prompts(name: str, examples: Sequence[Mapping[str, Any]], cfg: ZeroConfig, tok, model):
    """A prompt longer than the context fails here, naming the example, not mid-run."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is None:
        return
    budget = limit - cfg.rollout.max_new_tokens
    texts = [render_prompt(ex["question"], cfg.template, tok) for ex in examples]
    for ex, ids in zip(examples, encode_prompts(texts, cfg.template, tok), strict=True):
        n = len(ids)
        if n > budget:
            raise ConfigError(
                f"{name}: example {ex.get('id')!r} has a {n}-token prompt, but the "
                f"model's context ({limit}) minus rollout.max_new_tokens "
                f"({cfg.rollout.max_new_tokens}) leaves {budget}; shorten it or lower "
                "rollout.max_new_tokens"
            )


def build(cfg: ZeroConfig, pool: Any, checkpoint: Path | None = None) -> Trainer:
    from r1lab.run.model import load_model, load_tokenizer, resolve_device, training_dtype

    device = resolve_device(cfg.device)
    dtype = training_dtype(cfg.dtype, device)  # float16 fails here, before anything loads
    load_tokenizer(cfg.model, cfg.template)  # so does a model without a (chat) tokenizer
    task = make_task(cfg.task)
    reward = build_reward(cfg, task)
    reward.preflight()  # e.g. a code reward requiring full sandbox isolation the machine lacks
    policy, tokenizer = load_model(
        str(checkpoint or cfg.model), str(device), cfg.dtype, cfg.template, train=True
    )
    # Loaded weights sit at the offsets safetensors left them at, a deepcopy's at the
    # allocator's; CPU kernels round by alignment, so a resumed run (reference loaded from
    # disk) would compute other bits than an uninterrupted one (reference deep-copied).
    policy = own_memory(policy)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    ref = None
    if cfg.algo.beta > 0:
        # The reference is the starting model, also when resuming from a later checkpoint.
        if checkpoint:  # fp32 as the policy, so it computes what a fresh run's deep copy does
            ref = own_memory(load_model(cfg.model, str(device), cfg.dtype, train=True)[0])
        else:
            ref = copy.deepcopy(policy)
        ref.requires_grad_(False)
        ref.eval()
    n_train = cfg.train_pool if task.name in ("arithmetic", "countdown") else None
    train = task.examples("train", n_train)
    if not train:
        raise ConfigError(f"task {task.name} has no training examples")
    _check_prompts(f"task {task.name}", train[:256], cfg, tokenizer, policy)
    general_reward, model_rewards = None, []
    if cfg.general.share > 0:  # RL for all scenarios: general requests join the pool
        general = general_pool(cfg.general.share, len(train), cfg.task.seed)
        _check_prompts("general requests (general.share)", general, cfg, tokenizer, policy)
        train = train + general
        general_reward = general_composite(reward, task)
        model_rewards = load_model_rewards(cfg.general, str(device), cfg.dtype)
    if cfg.fsdp:  # before the optimizer, which must hold the sharded parameters
        policy = shard_model(policy)
        ref = shard_model(ref) if ref is not None else None
    optimizer, scheduler = make_optimizer(policy, cfg.algo)
    r = cfg.rollout
    sampling = SamplingParams(
        temperature=r.temperature,
        top_p=r.top_p,
        top_k=r.top_k,
        max_new_tokens=r.max_new_tokens,
        stop=tuple(r.stop),
        n=r.group_size,
    )
    rank, world = rank_world()
    return Trainer(
        cfg=cfg,
        policy=policy,
        ref=ref,
        tokenizer=tokenizer,
        optimizer=optimizer,
        scheduler=scheduler,
        sampler=Sampler(policy, tokenizer, plain_step=r.plain_step),
        sampling=sampling,
        pool=pool,
        reward=reward,
        task=task,
        stream=PromptStream(train, cfg.seed, rank, world),
        device=device,
        dtype=dtype,
        general_reward=general_reward,
        model_rewards=model_rewards,
    )


def run_eval(t: Trainer, pool: Any) -> dict[str, float]:
    """Held-out evaluation with the `r1lab eval` library function (and the general requests'
    when the run has them)."""
    cfg = t.cfg
    metrics = dict(_evaluate(t, t.task, cfg.eval_questions, cfg.eval_n, pool).metrics)
    if t.general_reward is not None:
        metrics.update(_eval_general(t, pool))
    return metrics


def _evaluate(t: Trainer, task: Any, questions: int, n: int, pool: Any) -> Any:
    from r1lab.evaluate import evaluate

    cfg = t.cfg
    return evaluate(
        t.policy,
        t.tokenizer,
        task,
        task.examples("test", questions),
        n=n,
        ks=sorted({1, n}),
        temperature=cfg.eval_temperature,
        top_p=0.95,
        max_new_tokens=cfg.rollout.max_new_tokens,
        stop=cfg.rollout.stop,
        greedy=False,
        template=cfg.template,
        pool=pool,
        seed=cfg.seed,
        progress=False,
    )


def _eval_general(t: Trainer, pool: Any) -> dict[str, float]:
    """Held-out general requests graded by the hidden rule (never by the reward models):
    eval/general/helpful_rate, harmless_rate, over_refusal_rate, pass@1 (helpful and harmless),
    beside the reward models' own scores of the same completions (eval/general/rm_<name>), so
    the reward models' over-optimisation shows if it happens."""
    from r1lab.tasks.general import GeneralTask

    task = GeneralTask(seed=t.cfg.task.seed)
    result = _evaluate(t, task, t.cfg.general.eval_questions, 1, pool)
    keys = ("pass@1", "helpful_rate", "harmless_rate", "over_refusal_rate", "format")
    out = {
        f"eval/general/{k}": result.metrics[f"eval/{k}"]
        for k in keys
        if f"eval/{k}" in result.metrics
    }
    texts = [x["text"] for s in result.samples for x in s["samples"]]
    questions = [s["question"] for s in result.samples for _ in s["samples"]]
    for m in t.model_rewards:
        out[f"eval/general/rm_{m.name}"] = _mean(m.scorer.score(questions, texts))
    return out


# ---------------------------------------------------------------------------------------------
# The command


def run(cfg: ZeroConfig, command: str = "zero") -> int:
    """Train, in a fresh run directory or (cfg.resume) the one being continued.

    Nothing is written until start-up has succeeded (config valid, task, model and tokenizer
    loaded); the run layer refuses an `out` that holds anything (see `r1lab.run.rundir`).
    `command` names the CLI command in the resume hint printed on Ctrl-C."""
    from r1lab.rewards import RewardPool
    from r1lab.run.distributed import barrier, open_run, resumed_note, setup, teardown
    from r1lab.run.model import autocast, resolve_device

    validate(cfg)
    rank, world = setup(resolve_device(cfg.device).type)
    main = rank == 0
    if cfg.algo.prompts_per_step % world:
        raise ConfigError(
            f"algo.prompts_per_step={cfg.algo.prompts_per_step} is the global batch and must "
            f"divide into {world} processes (whole groups per rank); use a multiple of {world}"
        )
    # The run layer's start: config, run directory or the checkpoint to continue, seed.
    opened = open_or_resume(cfg)
    cfg, run_dir, checkpoint = opened.cfg, opened.run_dir, opened.checkpoint

    with RewardPool(workers=cfg.workers) as pool:
        t = build(cfg, pool, checkpoint)
        start = 0
        if checkpoint is not None:
            state = load_trainer_state(checkpoint)
            load_optimizer_state(t.policy, t.optimizer, state["optimizer"])
            t.scheduler.load_state_dict(state["scheduler"])
            t.stream.load_state_dict(state["stream"])
            start = state["step"]
            if main:  # other world sizes: the same prompts and global batch, other samples
                print(f"resumed from {checkpoint} (step {start}){resumed_note(state)}")
        logger = open_run(cfg, run_dir, start)
        display = Display(command, cfg.steps, start, cfg.progress and main)
        with interruptible(run_dir, command, display, logger):
            for step in range(start, cfg.steps + 1):
                row: dict[str, float] = {}
                if cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps):
                    with gathered(t.policy), autocast(t.dtype, t.device):  # sharded: all gather
                        if main:
                            row.update(run_eval(t, pool))  # the others wait in the next step
                if step == cfg.steps:
                    logger.log(step, row)
                    break
                with autocast(t.dtype, t.device):  # fp32 weights, bf16 compute (dtype=bfloat16)
                    row.update(train_step(t, step))
                stop_on_nan_streak(t.nan_streak, cfg.algo.max_nan_steps, run_dir)
                logger.log(step, row)
                if cfg.sample_every and step % cfg.sample_every == 0 and main:
                    _write_samples(run_dir, step, t.last_samples)
                display.update(step, row)
                done = step + 1
                if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                    _checkpoint(t, run_dir, done, world)  # every rank: sharded state is gathered
    barrier()  # the last checkpoint is written before any rank reports the run done
    if main:
        _finish(run_dir)
    teardown()
    return 0


def _checkpoint(t: Trainer, run_dir: Path, step: int, world: int = 1) -> None:
    # Called on every rank (gathering a sharded model's state is a collective); rank 0 writes.
    state = {
        "scheduler": t.scheduler.state_dict(),
        "stream": t.stream.state_dict(),
        "world_size": world,
    }
    # The template goes with the weights, so eval and a later stage prompt the model alike; the
    # task says what the policy learned (`r1lab coldstart` asks each cell the model of its task).
    meta = {"command": "r1lab zero", "template": t.cfg.template, "task": t.cfg.task.name}
    save_training_checkpoint(
        run_dir, step, t.policy, t.tokenizer, t.optimizer, state, t.cfg.keep_checkpoints, meta
    )


def _write_samples(run_dir: Path, step: int, samples: list[dict[str, Any]]) -> None:
    path = run_dir / "samples" / f"step-{step:06d}.jsonl"
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(json.dumps(s) + "\n" for s in samples[:16]))


# What the end of a run prints, first held-out evaluation -> last (those the task reports).
SUMMARY_KEYS = (
    "eval/pass@1",
    "eval/format",
    "eval/length_mean",
    "eval/reflection_rate",
    "eval/self_correction_rate",
    "eval/accuracy_reflective",
    "eval/accuracy_plain",
    "eval/candidates",
    "eval/mixed_language_rate",
    "eval/language_consistency",
    "eval/readability",
    "eval/wrong_summary_rate",
)


def _finish(run_dir: Path) -> None:
    from r1lab.plotting import plot_run
    from r1lab.tracking import read_metrics

    plot_run(run_dir)
    rows = [r for r in read_metrics(run_dir) if "eval/pass@1" in r]
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        print(f"\nheld-out, step {first['step']} -> step {last['step']}:")
        for key in SUMMARY_KEYS:
            if key in first and key in last:
                print(f"  {key:<28} {first[key]:8.3f} -> {last[key]:8.3f}")
    print(f"run directory: {run_dir} (plot: {run_dir / 'plot.png'})")
