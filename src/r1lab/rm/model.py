"""The reward of a sequence, and loading a model with a reward head.

A reward model is a Hugging Face `AutoModelForSequenceClassification` with one output: the
causal LM's transformer, and a linear `score` head read at the sequence's last token. r1lab
computes it itself (`sequence_rewards`): the transformer's hidden state at each row's last real
token, given by position, through the head. A Hugging Face classifier finds that token as the
last one that is not the pad token; the two agree whenever a sequence does not end in the pad
token (r1lab's sequences end in the response's own last token: `r1lab.rm.data`), and r1lab's
reading cannot be moved by a response that writes the pad token's text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from r1lab.config import ConfigError


def score_head(model: Any) -> torch.nn.Linear:
    """The model's reward head (`score`, one output), or an error naming the class."""
    head = getattr(model, "score", None)
    if not isinstance(head, torch.nn.Linear) or head.out_features != 1:
        raise ConfigError(
            f"{type(model).__name__}: r1lab rm needs a sequence classifier whose head is a "
            "one-output linear `score` (the Llama, Qwen2, Mistral, Gemma and GPT-2 families)"
        )
    return head


def sequence_rewards(
    model: Any, input_ids: torch.Tensor, position_ids: torch.Tensor, last: torch.Tensor
) -> torch.Tensor:
    """The reward of each row, in float32: [R]. input_ids, position_ids: [R, L] (right-padded);
    last: [R], the position of each row's last real token.

    The model runs as a whole (so a sharded model gathers and reshards as it should); the head's
    output at every position is taken from the head itself and read at `last`, not where the
    model's own pooling looks for the pad token."""
    seen: list[torch.Tensor] = []
    hook = score_head(model).register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        model(input_ids=input_ids, position_ids=position_ids, use_cache=False)
    finally:
        hook.remove()
    per_position = seen[-1].squeeze(-1)  # [R, L]
    rows = torch.arange(per_position.shape[0], device=per_position.device)
    return per_position[rows, last].float()


def load_reward_model(
    path: str | Path,
    device: str = "auto",
    dtype: str = "auto",
    template: str | None = None,
    train: bool = False,
) -> tuple[Any, Any, bool]:
    """A model with a one-output reward head, its tokenizer, and whether the head is new
    (`train`: a trainer's, with fp32 weights; see `r1lab.run.model.weights_dtype`).

    A causal LM gets a fresh head (initialised from torch's RNG, so seed it first); a reward
    model keeps its own. The pad token is written into the model's config, so the saved model
    works as a Hugging Face classifier on padded batches."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging

    from r1lab.run.model import check_model_dir, load_tokenizer, resolve_device, weights_dtype

    dev = resolve_device(device)
    dt = weights_dtype(dtype, dev, train)
    path = check_model_dir(path)
    tokenizer = load_tokenizer(path, template)
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # "score.weight newly initialized": said below, once
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            str(path), num_labels=1, dtype=dt, output_loading_info=True
        )
    except (ValueError, RuntimeError, OSError) as e:
        raise ConfigError(
            f"model path {path}: does not load as a one-output reward model ({e})"
        ) from None
    finally:
        logging.set_verbosity(verbosity)
    score_head(model)
    new_head = any(k.startswith("score.") for k in info.get("missing_keys", ()))
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(dev).eval(), tokenizer, new_head
