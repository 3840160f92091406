"""What the other SFT tests left unpinned in `r1lab.sft.trainer`: the mode the model trains and
evaluates in, what a step and a held-out evaluation sum over ranks and report, target logits of a
model without `logits_to_keep`, when a prefix is shared, what `build` wires from the config
(max_length, steps, cut cost, fsdp, packing check, mixed rows, memory of its own), the packing
check's tolerance, and the stop after `max_nan_steps` non-finite steps."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import torch

from r1lab.config import ConfigError
from r1lab.rollout.batch import MIN_SHARED_TOKENS, default_cut_cost
from r1lab.rollout.engine import cache_kwargs
from r1lab.run import load_model
from r1lab.sft import trainer
from r1lab.sft.config import SFTConfig
from r1lab.sft.data import Example, batch_rows, collate_grouped, load_data
from r1lab.tracking import read_metrics

from ._helpers import QA, sft_config, write_jsonl


def config(model: Path, data: Path, out: Path, **kw) -> SFTConfig:
    """One epoch, no warm-up, no evaluation unless asked."""
    return sft_config(model, data, out, **{"epochs": 1, "warmup_steps": 0, "eval_every": 0, **kw})


@pytest.fixture
def built(tiny_qwen, qa_file, tmp_path):
    return trainer.build(config(tiny_qwen, qa_file, tmp_path / "run"))


def test_steps_train_in_training_mode_and_evaluations_in_eval_mode(built):
    modes = []
    handle = built.model.register_forward_pre_hook(lambda m, a: modes.append(m.training))
    phases = []
    try:
        for run in (
            lambda: trainer.train_step(built, 0),
            lambda: trainer.eval_loss(built),
            lambda: trainer.train_step(built, 1),
        ):
            modes.clear()
            run()
            phases.append(list(modes))
    finally:
        handle.remove()
    assert all(phases)
    assert all(phases[0]) and all(phases[2])  # training mode (dropout on), after an eval too
    assert not any(phases[1])  # held out: eval mode


def test_step_time_and_throughput_are_of_this_step(built):
    start = time.perf_counter()
    out = trainer.train_step(built, 0)
    wall = time.perf_counter() - start
    assert 0 < out["time/step"] <= wall
    assert out["perf/tokens_per_s"] == pytest.approx(out["batch/tokens"] / out["time/step"])


def twice(values):
    """`all_sum` as if a second rank had sent exactly this rank's values."""
    return [2.0 * float(v) for v in values]


def test_a_step_sums_its_counts_and_loss_over_ranks(tiny_qwen, qa_file, tmp_path, monkeypatch):
    """Two ranks with the same share: the loss is a mean over both ranks' completion tokens (each
    rank divides by the sum), the reported loss the sum of the ranks' parts: the same number."""
    cfg = config(tiny_qwen, qa_file, tmp_path / "run")
    alone = trainer.train_step(trainer.build(cfg), 0)
    monkeypatch.setattr(trainer, "all_sum", twice)
    both = trainer.train_step(trainer.build(cfg), 0)
    assert both["loss/sft"] == pytest.approx(alone["loss/sft"], rel=1e-6)
    for key in ("batch/completion_tokens", "batch/sequences", "batch/tokens"):
        assert both[key] == 2 * alone[key], key


def test_a_held_out_evaluation_sums_its_loss_and_tokens_over_ranks(built, monkeypatch):
    alone = trainer.eval_loss(built)
    monkeypatch.setattr(trainer, "all_sum", twice)
    both = trainer.eval_loss(built)
    assert both["eval/completion_tokens"] == 2 * alone["eval/completion_tokens"] > 0
    assert both["eval/loss"] == pytest.approx(alone["eval/loss"], rel=1e-6)


# --- target logits and the shared prefix ------------------------------------------------------


@pytest.fixture(scope="module")
def model_and_examples(tiny_qwen, tmp_path_factory):
    model, tok = load_model(tiny_qwen, "cpu", "float32")
    path = tmp_path_factory.mktemp("qa") / "qa.jsonl"
    write_jsonl(path, [{"prompt": q, "completion": a} for q, a in QA])
    return model, load_data(str(path), "r1zero", tok, 10**6).train


class NoLogitsToKeep(torch.nn.Module):
    """A causal LM whose forward takes no `logits_to_keep` (as older or custom code): its
    logits come for every position and the target columns are picked from them."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.config = inner, inner.config

    def forward(self, input_ids, position_ids=None, use_cache=None, past_key_values=None):
        cache = cache_kwargs(self.inner, past_key_values) if past_key_values is not None else {}
        return self.inner(
            input_ids=input_ids, position_ids=position_ids, use_cache=use_cache, **cache
        )


def test_a_model_without_logits_to_keep_gets_the_same_target_logits(model_and_examples):
    model, examples = model_and_examples
    mb = collate_grouped(examples)
    plain = NoLogitsToKeep(model)
    cols = (mb.targets != -100).any(0).nonzero().squeeze(1)
    assert trainer.shared_prefix(plain, mb, cols) > 0  # the case shares a prefix
    with torch.no_grad():
        want = trainer.target_logits(model, mb)
        for share in (False, True):
            got = trainer.target_logits(plain, mb, share)
            assert torch.equal(got[1], want[1])
            torch.testing.assert_close(got[0], want[0], rtol=1e-4, atol=1e-5)


def test_two_rows_share_their_prefix(model_and_examples):
    model, examples = model_and_examples
    mb = collate_grouped(examples[:2])
    cols = (mb.targets != -100).any(0).nonzero().squeeze(1)
    c = trainer.shared_prefix(model, mb, cols)
    assert c >= 64  # one row's worth of shared tokens saves enough
    calls = []
    handle = model.register_forward_pre_hook(
        lambda m, a, kw: calls.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    try:
        with torch.no_grad():
            shared = trainer.target_logits(model, mb, share_prefix=True)
    finally:
        handle.remove()
    assert calls == [(1, c), (2, mb.input_ids.shape[1] - c)]
    with torch.no_grad():
        plain = trainer.target_logits(model, mb)
    torch.testing.assert_close(shared[0], plain[0], rtol=1e-4, atol=1e-5)


def test_a_prefix_is_shared_from_min_shared_tokens_saved_on(model_and_examples):
    model, _ = model_and_examples
    n = MIN_SHARED_TOKENS

    def batch(shared: int, rows: int):
        """`rows` rows sharing their first `shared` tokens, targets from position n + 2 on."""
        common = tuple(10 + i % 50 for i in range(shared))
        out = []
        for r in range(rows):
            rest = tuple(100 + r for _ in range(n + 2 - shared)) + (5, 6, 7)
            out.append(Example(common + rest, n + 2, f"r{r}"))
        mb = collate_grouped(out)
        return mb, (mb.targets != -100).any(0).nonzero().squeeze(1)

    assert trainer.shared_prefix(model, *batch(n, 2)) == n  # (2 - 1) x n saved: enough
    assert trainer.shared_prefix(model, *batch(n - 1, 2)) == 0  # one token short
    assert trainer.shared_prefix(model, *batch(n // 2, 3)) == n // 2  # (3 - 1) x n / 2
    assert trainer.shared_prefix(model, *batch(n // 2 - 1, 3)) == 0
    assert trainer.shared_prefix(model, *batch(n + 2, 1)) == 0  # one row: nothing to share


# --- building a run ---------------------------------------------------------------------------


def test_max_length_drops_longer_sequences(tiny_qwen, qa_file, tmp_path):
    full = trainer.build(config(tiny_qwen, qa_file, tmp_path / "a"))
    lengths = sorted(len(e.ids) for e in full.data.train)
    cut = trainer.build(config(tiny_qwen, qa_file, tmp_path / "b", max_length=lengths[-2]))
    assert full.data.dropped == 0
    assert len(cut.data.train) == len(lengths) - 1 and cut.data.dropped == 2  # train and eval
    assert max(len(e.ids) for e in cut.data.train) == lengths[-2]


@pytest.mark.parametrize("batching", ["packed", "grouped"])
def test_packing_is_checked_on_the_loaded_model_only_when_packing(
    tiny_qwen, qa_file, tmp_path, monkeypatch, batching
):
    checked = []
    monkeypatch.setattr(trainer, "check_packing", checked.append)
    t = trainer.build(config(tiny_qwen, qa_file, tmp_path / "run", batching=batching))
    assert checked == ([t.model] if batching == "packed" else [])


def test_the_loaded_weights_get_memory_of_their_own(tiny_qwen, qa_file, tmp_path):
    """Not where safetensors left them (an alignment CPU kernels round by): the allocator's."""
    t = trainer.build(config(tiny_qwen, qa_file, tmp_path / "run"))
    assert all(p.data_ptr() % 64 == 0 for p in t.model.parameters())


def test_steps_overrides_epochs_in_the_schedule(tiny_qwen, qa_file, tmp_path):
    by_epochs = trainer.build(config(tiny_qwen, qa_file, tmp_path / "a", epochs=2))
    assert by_epochs.total_steps == 2 * 3  # 2 epochs of ceil(8 / 3)
    by_steps = trainer.build(config(tiny_qwen, qa_file, tmp_path / "b", epochs=2, steps=4))
    assert by_steps.total_steps == 4


def test_micro_batch_cut_cost_reaches_the_steps_and_0_is_the_devices_default(
    tiny_qwen, qa_file, tmp_path
):
    auto = trainer.build(config(tiny_qwen, qa_file, tmp_path / "a"))
    assert auto.cut_cost == default_cut_cost("cpu")
    step = trainer.train_step(auto, 0)
    lengths = {len(auto.data.train[i].ids) for i in batch_rows(8, 3, 0, 0)}
    assert len(lengths) == 3 and step["batch/micro_batches"] == 1  # cuts cost more than padding
    cheap = trainer.build(config(tiny_qwen, qa_file, tmp_path / "b", micro_batch_cut_cost=1))
    assert trainer.train_step(cheap, 0)["batch/micro_batches"] == 3  # every length alone


def test_fsdp_shards_the_model_before_the_optimizer_takes_its_parameters(
    tiny_qwen, qa_file, tmp_path, monkeypatch
):
    sharded = []

    def shard(model):
        sharded.append(copy.deepcopy(model))  # another set of parameters: the "sharded" ones
        return sharded[-1]

    monkeypatch.setattr(trainer, "shard_model", shard)
    t = trainer.build(config(tiny_qwen, qa_file, tmp_path / "a", fsdp=True))
    assert len(sharded) == 1 and t.model is sharded[0]
    held = {id(p) for g in t.optimizer.param_groups for p in g["params"]}
    assert held == {id(p) for p in t.model.parameters()}
    trainer.build(config(tiny_qwen, qa_file, tmp_path / "b"))
    assert len(sharded) == 1  # fsdp=false: not sharded


def test_a_mixed_source_is_built_and_reported(tiny_qwen, qa_file, tmp_path, capsys):
    cfg = config(tiny_qwen, qa_file, tmp_path / "a", mix="microworld:general", mix_ratio=0.5)
    t = trainer.build(cfg)
    assert t.data.mixed == 4 and len(t.data.train) == 8 + 4
    out = capsys.readouterr().out
    assert "sft: 12 training sequences" in out
    assert "; 4 of the training rows from microworld:general" in out


class PackedOffset(torch.nn.Module):
    """A model whose logits are `scale` times the inner model's, and for a packed row (the
    longer of `check_packing`'s two calls) off by `eps`: a packed sequence that sees its
    neighbour a little."""

    def __init__(self, inner, eps: float, scale: float = 1.0):
        super().__init__()
        self.inner, self.config, self.eps, self.scale = inner, inner.config, eps, scale

    def get_input_embeddings(self):
        return self.inner.get_input_embeddings()

    def forward(self, input_ids, **kw):
        out = self.inner(input_ids=input_ids, **kw)
        out.logits = out.logits * self.scale + (self.eps if input_ids.shape[1] > 5 else 0.0)
        return out


def test_packing_tolerates_rounding_and_refuses_a_leak_by_the_compute_dtype(model_and_examples):
    model, _ = model_and_examples
    assert model.dtype == torch.float32
    trainer.check_packing(PackedOffset(model, 1e-4))  # fp32 rounding
    with pytest.raises(ConfigError, match="lets packed sequences attend"):
        trainer.check_packing(PackedOffset(model, 1e-2))
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    trainer.check_packing(PackedOffset(bf16, 1e-2))  # a few bf16 rounding steps
    with pytest.raises(ConfigError, match="lets packed sequences attend"):
        trainer.check_packing(PackedOffset(bf16, 0.2))


def test_a_run_stops_after_max_nan_steps_non_finite_steps_in_a_row(
    tiny_qwen, qa_file, tmp_path, monkeypatch
):
    real = trainer.sft_loss
    monkeypatch.setattr(trainer, "sft_loss", lambda *a: real(*a) * float("nan"))
    out = tmp_path / "run"
    cfg = config(tiny_qwen, qa_file, out, epochs=3, max_nan_steps=2, checkpoint_every=100)
    with pytest.raises(RuntimeError, match="2 steps in a row had a non-finite loss"):
        trainer.run(cfg)
    # Step 0 skipped and logged; step 1 the second in a row: the run stops.
    assert [(r["step"], r["train/nan_skipped"]) for r in read_metrics(out)] == [(0, 1.0)]


def test_the_packing_tolerance_scales_with_logits_above_1_only(model_and_examples):
    model, _ = model_and_examples
    with torch.no_grad():
        top = model(input_ids=torch.arange(20, 25)[None]).logits.abs().max().item()
    assert 0.3 < top < 5  # so the scales below put the logits well under and over 1
    # Logits of ~0.1 x: the tolerance stays 1e-3 (not shrunk with them).
    trainer.check_packing(PackedOffset(model, 5e-4, scale=0.1))
    with pytest.raises(ConfigError, match="lets packed sequences attend"):
        trainer.check_packing(PackedOffset(model, 1.5e-3, scale=0.1))
    # Logits of ~100 x: it grows to 1e-3 of the largest.
    trainer.check_packing(PackedOffset(model, 0.03, scale=100.0))
    with pytest.raises(ConfigError, match="lets packed sequences attend"):
        trainer.check_packing(PackedOffset(model, 0.6, scale=100.0))
