import json

import torch
from safetensors.torch import load_file

from r1lab.cli import main

TINY = ["steps=3", "probe_every=0"]


def test_bf16_trains_under_autocast_and_keeps_fp32_weights(tmp_path, tiny_pretrain):
    fp32_args = ["bf16=false", *TINY, *tiny_pretrain]
    assert main(["pretrain", f"out={tmp_path / 'fp32'}", *fp32_args]) == 0
    assert main(["pretrain", f"out={tmp_path / 'bf16'}", *TINY, *tiny_pretrain]) == 0  # default
    fp32 = load_file(tmp_path / "fp32" / "model.safetensors")
    bf16 = load_file(tmp_path / "bf16" / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in bf16.values())  # the optimizer's weights
    # Same seed, data and steps: only the precision of the passes differs, and it shows.
    assert any(not torch.equal(fp32[k], bf16[k]) for k in fp32)
    assert all((fp32[k] - bf16[k]).abs().max() < 0.05 for k in fp32)
    meta = json.loads((tmp_path / "bf16" / "r1lab.json").read_text())
    assert meta["config"]["bf16"] is True
    assert json.loads((tmp_path / "fp32" / "r1lab.json").read_text())["config"]["bf16"] is False
    curve = (tmp_path / "bf16" / "loss.jsonl").read_text().split("\n")
    assert all(torch.isfinite(torch.tensor(json.loads(c)["loss"])) for c in curve if c)
