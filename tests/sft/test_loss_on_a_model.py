"""The SFT loss on a real (tiny) model: equal to a reference computed from Hugging Face's own
causal-LM loss and to TRL's SFTTrainer, whatever the micro-batching; packed sequences kept apart."""

from __future__ import annotations

import copy

import pytest
import torch

from r1lab.config import ConfigError
from r1lab.run import load_model
from r1lab.sft.data import Example, collate_grouped, collate_packed, load_data, micro_batches
from r1lab.sft.loss import sft_loss
from r1lab.sft.trainer import check_packing, shared_prefix, target_logits

from ._helpers import QA


@pytest.fixture(scope="module")
def model_and_tok(tiny_qwen):
    model, tok = load_model(tiny_qwen, "cpu", "float32")
    return model, tok


def qa_examples(tok, tmp_path, template="r1zero"):
    from ._helpers import write_jsonl

    path = write_jsonl(tmp_path / "qa.jsonl", [{"prompt": q, "completion": a} for q, a in QA])
    return load_data(str(path), template, tok, 10**6).train


def reference(model, examples):
    """Token-mean loss and its gradients from HF's own loss: each sequence alone, labels -100 on
    the prompt (what TRL's completion-only loss hands the model), weighted by its token count."""
    model.zero_grad(set_to_none=True)
    total = sum(e.num_targets for e in examples)
    loss_sum = 0.0
    for e in examples:
        ids = torch.tensor([e.ids])
        labels = ids.clone()
        labels[0, : max(e.prompt_len, 1)] = -100
        out = model(input_ids=ids, labels=labels, use_cache=False)  # HF shifts and averages
        (out.loss * e.num_targets / total).backward()
        loss_sum += out.loss.item() * e.num_targets / total
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return loss_sum, grads


def ours(model, examples, batching, budget, cut_cost=0, share_prefix=False):
    model.zero_grad(set_to_none=True)
    micro = micro_batches(examples, batching, budget, cut_cost)
    total = sum(e.num_targets for e in examples)
    loss_sum = 0.0
    for mb in micro:
        logits, targets = target_logits(model, mb, share_prefix)
        loss = sft_loss(logits, targets, total)
        loss.backward()
        loss_sum += loss.item()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return loss_sum, grads, len(micro)


@pytest.mark.parametrize("template", ["r1zero", "chat"])
def test_loss_and_gradients_equal_hf_reference_whatever_the_micro_batching(
    model_and_tok, tmp_path, template
):
    model, tok = model_and_tok
    examples = qa_examples(tok, tmp_path, template)
    ref_loss, ref_grads = reference(model, examples)
    longest = max(len(e.ids) for e in examples)
    counts = set()
    for batching, budget, cut_cost in (
        ("grouped", 10**6, 10**9),  # one micro-batch
        ("grouped", longest, 0),  # one row each
        ("grouped", 2 * longest, 10**9),  # two rows each
        ("grouped", 10**6, 0),  # cut wherever lengths differ
        ("packed", 10**6, 0),  # one pack
        ("packed", longest + 10, 0),  # several packs
    ):
        for share in (False, True):  # the rows' common prefix computed once, or per row
            loss, grads, n = ours(model, examples, batching, budget, cut_cost, share)
            counts.add((batching, n))
            assert loss == pytest.approx(ref_loss, rel=1e-5), (batching, budget, share)
            for name, g in ref_grads.items():
                torch.testing.assert_close(grads[name], g, rtol=1e-4, atol=1e-6, msg=name)
    # The cases above really cut the batch differently.
    assert {n for b, n in counts if b == "grouped"} >= {1, len(examples) // 2, len(examples)}
    assert len({n for b, n in counts if b == "packed"}) == 2


def test_packed_and_padded_logits_are_each_sequence_alone(model_and_tok, tmp_path):
    model, tok = model_and_tok
    examples = qa_examples(tok, tmp_path)[:4]
    with torch.no_grad():
        alone = [
            model(input_ids=torch.tensor([e.ids]), use_cache=False).logits[0] for e in examples
        ]
        packed = collate_packed(examples)
        out = model(
            input_ids=packed.input_ids, position_ids=packed.position_ids, use_cache=False
        ).logits[0]
        start = 0
        for e, a in zip(examples, alone, strict=True):
            torch.testing.assert_close(out[start : start + len(e.ids)], a, rtol=1e-4, atol=1e-5)
            start += len(e.ids)
        # The same row with positions that do not restart lets later sequences attend to
        # earlier ones, and their logits change: the comparison above can fail.
        leaky = model(input_ids=packed.input_ids, use_cache=False).logits[0]
        second = slice(len(examples[0].ids), len(examples[0].ids) + len(examples[1].ids))
        assert (leaky[second] - alone[1]).abs().max() > 1e-2
        grouped = collate_grouped(examples, pad_id=7)
        rows = model(
            input_ids=grouped.input_ids, position_ids=grouped.position_ids, use_cache=False
        ).logits
        for r, (e, a) in enumerate(zip(examples, alone, strict=True)):
            torch.testing.assert_close(rows[r, : len(e.ids)], a, rtol=1e-4, atol=1e-5)


class IgnoresPositions(torch.nn.Module):
    """A model whose forward drops position ids (as custom code may): packing would leak."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.config = inner, inner.config

    def get_input_embeddings(self):
        return self.inner.get_input_embeddings()

    def forward(self, input_ids, position_ids=None, **kw):
        return self.inner(input_ids=input_ids, **kw)


def test_packing_is_refused_for_a_model_that_lets_packed_sequences_attend_to_each_other(
    model_and_tok,
):
    model, _ = model_and_tok
    check_packing(model)  # the real one keeps them apart
    with pytest.raises(ConfigError, match="lets packed sequences attend to each other"):
        check_packing(IgnoresPositions(model))


def test_a_shared_prefix_goes_through_the_model_once(model_and_tok, tmp_path):
    """share_prefix: one forward over the rows' common first tokens, then one over every
    row's rest continuing from its cache; the logits are the whole rows'."""
    model, tok = model_and_tok
    examples = qa_examples(tok, tmp_path)  # r1zero: the template's instruction is shared
    mb = collate_grouped(examples)
    ids = mb.input_ids
    common = int((ids == ids[:1]).all(0).long().cumprod(0).sum())
    first_target = int((mb.targets != -100).any(0).nonzero().min())
    assert (len(examples) - 1) * min(common, first_target) >= 64  # the case shares
    calls = []
    handle = model.register_forward_pre_hook(
        lambda m, a, kw: calls.append(kw["input_ids"].shape), with_kwargs=True
    )
    try:
        with torch.no_grad():
            plain = target_logits(model, mb)
            n_plain = len(calls)
            shared = target_logits(model, mb, share_prefix=True)
            packed = target_logits(model, collate_packed(examples), share_prefix=True)
    finally:
        handle.remove()
    c = min(common, first_target)
    assert n_plain == 1 and calls[1:3] == [(1, c), (len(examples), ids.shape[1] - c)]
    assert len(calls) == 4  # a packed row (positions restart) is never split
    torch.testing.assert_close(shared[0], plain[0], rtol=1e-4, atol=1e-5)
    assert torch.equal(shared[1], plain[1])
    assert packed[0].shape[:2] == packed[1].shape
    # One prompt, completions that begin alike: the rows share more than the prompt, and the
    # prefix stops where the first target column starts (its logits are needed).
    e = examples[0]
    same = [Example(e.ids[: e.prompt_len] + (7, 8, 9, t), e.prompt_len, "x") for t in (3, 4, 5)]
    mb = collate_grouped(same)
    with torch.no_grad():
        plain, shared = target_logits(model, mb), target_logits(model, mb, share_prefix=True)
    assert plain[0].shape[1] == 4
    torch.testing.assert_close(shared[0], plain[0], rtol=1e-4, atol=1e-5)


def test_no_prefix_is_shared_where_a_cache_would_not_hold_every_key(model_and_tok, tmp_path):
    model, tok = model_and_tok
    mb = collate_grouped(qa_examples(tok, tmp_path))
    cols = (mb.targets != -100).any(0).nonzero().squeeze(1)
    assert shared_prefix(model, mb, cols) > 0
    windowed = copy.deepcopy(model)  # a sliding-window layer keeps only its window's keys
    n = windowed.config.num_hidden_layers
    windowed.config.layer_types = ["sliding_attention"] + ["full_attention"] * (n - 1)
    assert shared_prefix(windowed, mb, cols) == 0


def test_only_target_columns_go_through_the_lm_head(model_and_tok, tmp_path, monkeypatch):
    model, tok = model_and_tok
    examples = qa_examples(tok, tmp_path)[:3]
    mb = collate_packed(examples)
    seen = []
    head = model.get_output_embeddings()
    handle = head.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    try:
        logits, targets = target_logits(model, mb)
    finally:
        handle.remove()
    n = sum(e.num_targets for e in examples)
    assert seen == [n] and logits.shape[:2] == targets.shape == (1, n)


# --- against TRL -------------------------------------------------------------------------------


def trl_batch_loss(tiny_qwen, rows, tmp_path):
    """TRL's SFTTrainer, completion-only loss, all rows in one batch: (loss, its input_ids)."""
    trl = pytest.importorskip("trl")
    from datasets import Dataset

    model, tok = load_model(tiny_qwen, "cpu", "float32")
    args = trl.SFTConfig(
        output_dir=str(tmp_path / "trl"),
        completion_only_loss=True,
        per_device_train_batch_size=len(rows),
        max_length=None,
        use_cpu=True,
        bf16=False,
        fp16=False,
        report_to=[],
        save_strategy="no",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = trl.SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok
    )
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch)
    ids = {tuple(x) for x in trainer.train_dataset["input_ids"]}
    return loss.item(), ids


@pytest.mark.parametrize("template", ["r1zero", "chat"])
def test_loss_equals_trl_sft_trainer_completion_only(tiny_qwen, model_and_tok, tmp_path, template):
    from r1lab.tasks import chat_messages, render_prompt

    model, tok = model_and_tok
    if template == "r1zero":
        rows = [{"prompt": render_prompt(q), "completion": a} for q, a in QA]
    else:
        reply = [[{"role": "assistant", "content": a}] for _, a in QA]
        rows = [
            {"prompt": chat_messages(q), "completion": r}
            for (q, _), r in zip(QA, reply, strict=True)
        ]
    trl_loss, trl_ids = trl_batch_loss(tiny_qwen, rows, tmp_path)
    examples = qa_examples(tok, tmp_path, template)
    assert {e.ids for e in examples} == trl_ids  # the same tokens on both sides
    loss, _, _ = ours(copy.deepcopy(model), examples, "grouped", 10**6)
    assert loss == pytest.approx(trl_loss, rel=1e-5)
