"""Why the trainers keep fp32 weights under `dtype=bfloat16`: the share of a layer's weights
that AdamW actually changes at RL and SFT learning rates, with bf16 weights and with fp32 ones.

    .venv/bin/python bench/bf16_updates.py

One `nn.Linear(256, 256)` (default init, |w| < 1/16), ten AdamW steps on a random regression
loss, for each learning rate: `bf16 weights` steps the layer in bf16 (what loading the model
in bf16 and training it does), `mixed` keeps fp32 weights and runs the forward and backward
under bf16 autocast (what `r1lab zero`/`sft`/`rm` do with `dtype=bfloat16`), `fp32` is the
reference. Printed: the share of weights that moved, and the mean distance moved as a share
of fp32's.
"""

from __future__ import annotations

import torch


def train(lr: float, mode: str, steps: int = 10) -> tuple[float, torch.Tensor]:
    torch.manual_seed(0)
    layer = torch.nn.Linear(256, 256)
    if mode == "bf16 weights":
        layer = layer.to(torch.bfloat16)
    start = layer.weight.detach().float().clone()
    opt = torch.optim.AdamW(layer.parameters(), lr=lr, weight_decay=0.0)
    for _ in range(steps):
        x = torch.randn(32, 256)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode != "fp32"):
            loss = layer(x.to(layer.weight.dtype)).float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
    delta = layer.weight.detach().float() - start
    return (delta != 0).float().mean().item(), delta


def main() -> None:
    print("| lr | weights | moved | mean move / fp32's |")
    print("|---|---|---:|---:|")
    for lr in (1e-6, 1e-5, 1e-4):
        ref = train(lr, "fp32")[1].abs().mean()
        for mode in ("fp32", "mixed", "bf16 weights"):
            moved, delta = train(lr, mode)
            print(f"| {lr:g} | {mode} | {moved:.1%} | {delta.abs().mean() / ref:.2f} |")


if __name__ == "__main__":
    main()
