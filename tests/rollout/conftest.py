"""Test doubles for the rollout engine: a character-level tokenizer and random Qwen2 models.

They stand in for the micro-world base model (same architecture, random weights) so the sampler
is tested without any download. Builders are plain functions so a test can make variants.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
CHARS = [chr(i) for i in range(32, 127)] + ["\n"]


def char_tokenizer(
    with_pad: bool = True, extra_tokens: tuple[str, ...] = ()
) -> PreTrainedTokenizerFast:
    """One token per character (plus `extra_tokens`, multi-character tokens that encoding never
    produces but a model can sample), BOS added in front, decoding by plain concatenation."""
    vocab = {t: i for i, t in enumerate(SPECIALS + CHARS + list(extra_tokens))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    kwargs = {"pad_token": "<pad>"} if with_pad else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>", **kwargs
    )


def random_qwen2(
    vocab_size: int,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 128,
    max_positions: int = 512,
    init_std: float = 0.02,
    seed: int = 0,
    eos_token_id: int | list[int] = 2,
    attn: str = "sdpa",
    **config_kw: Any,
) -> Qwen2ForCausalLM:
    """A randomly initialised Qwen2 causal LM in eval mode (fp32, CPU); `config_kw` go to its
    Qwen2Config (a sliding window, ...)."""
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=intermediate,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        initializer_range=init_std,
        bos_token_id=1,
        eos_token_id=eos_token_id,
        pad_token_id=0,
        **config_kw,
    )
    config._attn_implementation = attn
    # fork_rng: the model's init must not move the global RNG other tests may rely on.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    return model.eval()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These models are tiny: intra-op threads buy nothing, and on a shared 2-core machine an
    # OpenMP barrier waiting for a descheduled thread made a 20 ms generate call take 6 s.
    # Restored afterwards so other packages' tests keep torch's setting.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return char_tokenizer()


@pytest.fixture(scope="session")
def model(tokenizer) -> Qwen2ForCausalLM:
    # A larger init std than HF's 0.02 makes next-token distributions peaked, so greedy
    # decoding has clear argmax gaps and the HF-equivalence test is not at the mercy of ties.
    return random_qwen2(len(tokenizer), init_std=0.2)


@pytest.fixture(scope="session")
def make_tokenizer():
    """The `char_tokenizer` builder, for tests that need a variant."""
    return char_tokenizer


@pytest.fixture(scope="session")
def make_model():
    """The `random_qwen2` builder, for tests that need a variant."""
    return random_qwen2
