"""Prompts reach the model exactly once framed: no double BOS from a chat template."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from r1lab.tasks import TaskConfig, encode_prompts, make_task, render_prompt

# Llama 3's and Gemma's chat templates open with the BOS token themselves.
BOS_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<u> {{ m['content'] }} </u> {% endfor %}"
    "{% if add_generation_prompt %}<a>{% endif %}"
)


@pytest.fixture(scope="module")
def bos_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer that adds BOS to every text it encodes, like Llama's."""
    words = ["<unk>", "<s>", "</s>", "<u>", "</u>", "<a>", "A", "conversation"]
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.chat_template = BOS_TEMPLATE
    return fast


def test_chat_prompts_get_one_bos(bos_tokenizer):
    text = render_prompt("Compute 2 + 2", "chat", bos_tokenizer)
    assert text.startswith("<s>")
    (ids,) = encode_prompts([text], "chat", bos_tokenizer)
    assert ids.count(bos_tokenizer.bos_token_id) == 1 and ids[0] == bos_tokenizer.bos_token_id
    # A raw-text template still gets the tokenizer's BOS, once.
    (raw,) = encode_prompts([render_prompt("q", "r1zero")], "r1zero", bos_tokenizer)
    assert raw.count(bos_tokenizer.bos_token_id) == 1


class _Sampled(Exception):
    """Raised by the fake sampler once it has seen what it would feed the model."""


class _FakeSampler:
    seen: list = []

    def __init__(self, *args, **kw) -> None:
        pass

    def generate(self, prompts, params, seed=0, **kw):
        _FakeSampler.seen = list(prompts)
        raise _Sampled


def _assert_one_bos(prompts, bos: int) -> None:
    assert prompts and all(isinstance(p, list) for p in prompts), prompts[:1]
    assert all(p.count(bos) == 1 for p in prompts)


def test_evaluation_feeds_the_sampler_one_bos(bos_tokenizer, monkeypatch):
    from r1lab.evaluate import evaluate

    monkeypatch.setattr("r1lab.rollout.Sampler", _FakeSampler)
    task = make_task(TaskConfig(name="arithmetic"))
    with pytest.raises(_Sampled):
        evaluate(None, bos_tokenizer, task, task.examples("test", 2), template="chat")
    _assert_one_bos(_FakeSampler.seen, bos_tokenizer.bos_token_id)


def test_training_feeds_the_sampler_one_bos(bos_tokenizer):
    from r1lab.rl.config import ZeroConfig
    from r1lab.rl.state import PromptStream
    from r1lab.rl.trainer import train_step

    task = make_task(TaskConfig(name="arithmetic"))
    t = SimpleNamespace(
        cfg=ZeroConfig(template="chat"),
        stream=PromptStream(task.examples("train", 4), seed=0),
        sampler=_FakeSampler(),
        sampling=None,
        tokenizer=bos_tokenizer,
        policy=None,  # the step gathers a sharded policy's weights first; None is not sharded
    )
    with pytest.raises(_Sampled):
        train_step(t, 0)
    _assert_one_bos(_FakeSampler.seen, bos_tokenizer.bos_token_id)
