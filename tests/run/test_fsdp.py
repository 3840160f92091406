"""`r1lab.run.fsdp` in one process: every call is the unsharded one (the sharded path runs under
torchrun in test_distributed.py)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from r1lab.config import ConfigError
from r1lab.run import fsdp


def test_one_process_shards_nothing_and_says_so(tiny_model, capsys):
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert fsdp.shard_model(model) is model
    assert not fsdp.sharded(model)
    assert "nothing to shard" in capsys.readouterr().err
    assert fsdp.full_state_dict(model) is None  # the model saves its own


def test_a_model_without_transformer_blocks_is_refused():
    with pytest.raises(ConfigError, match="no transformer block class"):
        fsdp.shard_model(torch.nn.Linear(2, 2))


def test_accumulate_in_one_process_keeps_the_local_gradient():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    model = torch.nn.Linear(2, 1)
    model.weight = torch.nn.Parameter(w[None].clone())
    with fsdp.accumulate(model) as comm:
        model(torch.tensor([[3.0, 4.0]])).sum().backward()
        model(torch.tensor([[1.0, 1.0]])).sum().backward()
    assert comm.seconds == 0.0
    assert model.weight.grad.tolist() == [[4.0, 5.0]]
    norm = fsdp.clip_grad_norm(model.parameters(), 1e9)
    assert float(norm) == pytest.approx((16 + 25 + 4) ** 0.5)


def test_optimizer_state_round_trips_unsharded():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    state = fsdp.optimizer_state(model, opt)
    fresh = torch.optim.AdamW(model.parameters(), lr=0.1)
    fsdp.load_optimizer_state(model, fresh, state)
    again = fresh.state_dict()
    assert again["state"].keys() == state["state"].keys() == {0, 1}
    for i in state["state"]:
        assert torch.equal(again["state"][i]["exp_avg"], state["state"][i]["exp_avg"])


def test_gathered_does_nothing_to_an_unsharded_model_or_none():
    model = torch.nn.Linear(2, 2)
    with fsdp.gathered(model), fsdp.gathered(None):
        assert model(torch.ones(1, 2)).shape == (1, 2)
