"""Model and tokenizer loading for every command: device, dtype, tokenizer and template checks.

Everything a user can get wrong here (a device this machine lacks, float16 on a CPU, a model
directory without a tokenizer, `template=chat` with a tokenizer that has no chat template) is a
`ConfigError` raised before the weights load and before any run directory is written.

Training is mixed precision (`training_dtype`, `load_model(train=True)`, `autocast`): weights
and optimizer state in fp32, the forward and backward under autocast in the run's dtype, as
`bf16=True` in transformers' `TrainingArguments`. An update is lr-sized, far below a bf16
weight's resolution (about 1e-4 at 0.02), so an optimizer stepping bf16 weights at the learning
rates of RL and SFT (1e-6 .. 1e-5) leaves most of them unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from r1lab.config import ConfigError

DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DEVICES = "auto, cpu, cuda or cuda:N"
DTYPES = ("auto", "float32", "bfloat16", "float16")

# Files one of which a Hugging Face tokenizer directory holds (fast, SentencePiece, BPE).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def resolve_device(device: str) -> Any:
    """`auto` is CUDA when available, else the CPU; `cuda` without a usable GPU is an error."""
    import torch

    if not DEVICE_RE.match(device):
        raise ConfigError(f"'device' must be {DEVICES}, got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device={device}, but CUDA is not available on this machine "
                f"(torch {torch.__version__}); use device=cpu or device=auto"
            )
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={device}, but this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    return torch.device(device)


def resolve_dtype(dtype: str, device: Any) -> Any:
    """The torch dtype for `dtype` on `device`: `auto` is bf16 on GPUs that support it, else
    fp32. float16 on a CPU is refused: its sampling probabilities overflow to NaN mid-run."""
    import torch

    if dtype not in DTYPES:
        raise ConfigError(f"'dtype' must be one of {', '.join(DTYPES)}, got {dtype!r}")
    cuda = torch.device(device).type == "cuda"
    if dtype == "auto":
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    if dtype == "float16" and not cuda:
        raise ConfigError(
            "dtype=float16 is not supported on the CPU (its probabilities overflow to NaN while "
            "sampling); use dtype=float32 or bfloat16"
        )
    return getattr(torch, dtype)


def training_dtype(dtype: str, device: Any) -> Any:
    """The dtype a trainer computes in (`autocast`); its weights stay fp32 (`load_model(train=
    True)`). float16 is refused: without loss scaling its small gradients underflow to zero."""
    import torch

    dt = resolve_dtype(dtype, device)
    if dt == torch.float16:
        raise ConfigError(
            "dtype=float16 is not supported for training (mixed precision in float16 needs loss "
            "scaling, which r1lab does not do); use dtype=bfloat16 or float32"
        )
    return dt


def weights_dtype(dtype: str, device: Any, train: bool = False) -> Any:
    """The dtype a model's weights load in: a trainer's in fp32 whatever `dtype` (its compute
    dtype, checked by `training_dtype`), any other model's in `dtype`."""
    import torch

    if train:
        training_dtype(dtype, device)
        return torch.float32
    return resolve_dtype(dtype, device)


@contextmanager
def autocast(dtype: Any, device: Any) -> Iterator[None]:
    """Forward passes (and their backward) in `dtype` where it is not fp32; fp32 weights are
    cast per operation, norms and softmax stay fp32 (torch.autocast's lists)."""
    import torch

    low = dtype != torch.float32
    with torch.autocast(torch.device(device).type, dtype=dtype if low else None, enabled=low):
        yield


def resolve_model_dir(path: str | Path) -> Path:
    """The model directory `path` names: a Hugging Face directory as it is, or the last complete
    checkpoint of a run directory (`r1lab sft ... out=runs/sft-coldstart`, then
    `r1lab zero model=runs/sft-coldstart`), so a stage names the one before it by its run."""
    from r1lab.run.checkpoints import checkpoints

    p = Path(path)
    if p.is_dir() and not (p / "config.json").is_file() and (p / "checkpoints").is_dir():
        found = checkpoints(p)
        if not found:
            raise ConfigError(f"model path {p}: the run has no complete checkpoint yet")
        return found[-1]
    return p


def check_model_dir(path: str | Path) -> Path:
    """The model directory `path` names (`resolve_model_dir`), failing early, before anything
    loads, if it or its tokenizer is not there."""
    from r1lab.checkpoint import check_model_dir as check_hf_dir

    p = check_hf_dir(resolve_model_dir(path))
    if not any((p / name).is_file() for name in TOKENIZER_FILES):
        raise ConfigError(
            f"model path {p} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); save the "
            "tokenizer beside the model (tokenizer.save_pretrained)"
        )
    return p


def load_tokenizer(path: str | Path, template: str | None = None) -> Any:
    """The tokenizer of a model directory, checked: it encodes text, and has a chat template
    when `template` is `chat`. A pad token is set (to EOS) when it has none."""
    from transformers import AutoTokenizer

    p = check_model_dir(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(p))
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"model path {p}: its tokenizer does not load ({e})") from None
    if not tokenizer("a b", add_special_tokens=False)["input_ids"]:
        raise ConfigError(f"model path {p}: its tokenizer encodes text to no tokens")
    if template == "chat" and not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"template=chat, but the tokenizer of {p} has no chat template; use template=r1zero "
            "(base models) or a chat model"
        )
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def warn_template(path: str | Path, template: str | None) -> None:
    """Say so when a model is prompted with another template than the one it was trained with
    (recorded in its r1lab.json by `r1lab sft` and `r1lab zero`): it still runs, as asked."""
    import sys

    from r1lab.run.checkpoints import checkpoint_meta

    recorded = checkpoint_meta(path).get("template")
    if template and recorded and recorded != template:
        print(
            f"warning: {path} was trained with template={recorded} (its r1lab.json), but "
            f"template={template} was asked; pass template={recorded} to prompt it as trained",
            file=sys.stderr,
        )


def trained_template(path: str | Path) -> str:
    """The template a model directory (or a run's last checkpoint) was trained with, as its
    r1lab.json records it; r1zero, the base models' template, when it records none."""
    from r1lab.run.checkpoints import checkpoint_meta

    return checkpoint_meta(resolve_model_dir(path)).get("template") or "r1zero"


def context_length(model_dir: str | Path) -> int:
    """The longest sequence a model directory's model takes (its max_position_embeddings; a
    very large number when its config names none)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(model_dir))
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(getattr(text, "max_position_embeddings", None) or 10**9)


def load_model(
    path: str | Path,
    device: str = "auto",
    dtype: str = "auto",
    template: str | None = None,
    train: bool = False,
) -> tuple[Any, Any]:
    """Load an HF causal LM and its tokenizer from a local directory (or a run's last
    checkpoint), checking everything a user can get wrong (see the module docstring) before the
    weights load. `train`: a trainer's model (fp32 weights, `weights_dtype`)."""
    from transformers import AutoModelForCausalLM

    dev = resolve_device(device)
    dt = weights_dtype(dtype, dev, train)
    path = check_model_dir(path)
    tokenizer = load_tokenizer(path, template)
    warn_template(path, template)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dt).to(dev)
    model.eval()
    return model, tokenizer
