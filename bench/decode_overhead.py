"""How much of a decode step is the Hugging Face forward's Python: HF against the same math in
plain torch ops, one token at a time with a KV cache, and the logits of the two compared.

    .venv/bin/python bench/decode_overhead.py                 # shipped base, 1 and 16 rows
    .venv/bin/python bench/decode_overhead.py --rows 1 4 64 --tokens 600

Why: a GRPO rollout decodes until its longest completion ends, and once few rows are left each
step costs the model's Python rather than its arithmetic (docs/zero.md, the demo's time). The
plain-ops decoder here is a measurement, not a sampler: Qwen2 architecture only (q/k/v biases,
RMSNorm, default RoPE, SwiGLU), every row at the same position, a preallocated cache. Both
sides run under `torch.inference_mode` on the same model, same inputs, in one process, rounds
alternating; the printed max |logit difference| over all steps says the two compute the same
thing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, DynamicCache

from r1lab.microworld import DEFAULT_BASE
from r1lab.rollout.engine import cache_kwargs


class PlainDecoder:
    """A Qwen2 model's decode step in plain torch ops over a preallocated KV cache."""

    def __init__(self, model, rows: int, capacity: int) -> None:
        cfg = model.config
        self.model, self.rows = model, rows
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.dim = cfg.hidden_size // cfg.num_attention_heads
        self.eps = cfg.rms_norm_eps
        theta = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
        self.inv_freq = 1.0 / theta ** (torch.arange(0, self.dim, 2).float() / self.dim)
        layers = model.model.layers
        self.k = torch.zeros(len(layers), rows, self.kv_heads, capacity, self.dim)
        self.v = torch.zeros_like(self.k)

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    def _rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        return x * cos + torch.cat((-x[..., half:], x[..., :half]), -1) * sin

    def step(self, ids: torch.Tensor, pos: int) -> torch.Tensor:
        """Logits [rows, V] of the next token after `ids` [rows] at position `pos`."""
        m, b, h, kv, d = self.model.model, self.rows, self.heads, self.kv_heads, self.dim
        x = m.embed_tokens.weight[ids]  # [B, hidden]
        freqs = pos * self.inv_freq
        angle = torch.cat((freqs, freqs))
        cos, sin = angle.cos(), angle.sin()
        for i, layer in enumerate(m.layers):
            a = layer.self_attn
            y = self._norm(x, layer.input_layernorm.weight)
            q = F.linear(y, a.q_proj.weight, a.q_proj.bias).view(b, h, 1, d)
            k = F.linear(y, a.k_proj.weight, a.k_proj.bias).view(b, kv, 1, d)
            v = F.linear(y, a.v_proj.weight, a.v_proj.bias).view(b, kv, 1, d)
            self.k[i, :, :, pos : pos + 1] = self._rotate(k, cos, sin)
            self.v[i, :, :, pos : pos + 1] = v
            out = F.scaled_dot_product_attention(
                self._rotate(q, cos, sin),
                self.k[i, :, :, : pos + 1],
                self.v[i, :, :, : pos + 1],
                enable_gqa=True,
            )
            x = x + F.linear(out.reshape(b, h * d), a.o_proj.weight)
            y = self._norm(x, layer.post_attention_layernorm.weight)
            mlp = layer.mlp
            gate = F.silu(F.linear(y, mlp.gate_proj.weight)) * F.linear(y, mlp.up_proj.weight)
            x = x + F.linear(gate, mlp.down_proj.weight)
        return F.linear(self._norm(x, m.norm.weight), self.model.lm_head.weight)


def run(model, rows: int, tokens: int, rounds: int) -> tuple[float, float, float]:
    """(HF s/token, plain s/token, max |logit diff|), medians over alternating rounds."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (rows, tokens), generator=gen)
    times: dict[str, list[float]] = {"hf": [], "plain": []}
    worst = 0.0
    for _ in range(rounds):
        cache, plain = DynamicCache(), PlainDecoder(model, rows, tokens)
        hf_logits = []
        t0 = time.perf_counter()
        for t in range(tokens):
            out = model(
                input_ids=ids[:, t : t + 1],
                position_ids=torch.full((rows, 1), t),
                use_cache=True,
                **cache_kwargs(model, cache),
            )
            hf_logits.append(out.logits[:, -1])
        times["hf"].append((time.perf_counter() - t0) / tokens)
        t0 = time.perf_counter()
        plain_logits = [plain.step(ids[:, t], t) for t in range(tokens)]
        times["plain"].append((time.perf_counter() - t0) / tokens)
        for a, b in zip(hf_logits, plain_logits, strict=True):
            worst = max(worst, (a - b).abs().max().item())
    return statistics.median(times["hf"]), statistics.median(times["plain"]), worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(DEFAULT_BASE))
    ap.add_argument("--rows", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--tokens", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    if model.config.model_type != "qwen2":
        raise SystemExit(
            f"{args.model}: the plain decoder is Qwen2's; this is {model.config.model_type}"
        )
    print(f"{args.model}, {args.tokens} tokens, {args.threads} threads, median of {args.rounds}")
    print("| rows | HF forward, ms/token | plain ops, ms/token | HF / plain | max abs logit diff |")
    print("|---:|---:|---:|---:|---:|")
    with torch.inference_mode():
        for rows in args.rows:
            hf, plain, worst = run(model, rows, args.tokens, args.rounds)
            print(
                f"| {rows} | {1e3 * hf:.2f} | {1e3 * plain:.2f} | {hf / plain:.2f}x | {worst:.1e} |"
            )


if __name__ == "__main__":
    main()
