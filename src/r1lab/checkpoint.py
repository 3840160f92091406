"""Hugging Face checkpoint directories, written atomically.

A checkpoint is a directory `AutoModelForCausalLM.from_pretrained` loads as it is (config.json,
model.safetensors, tokenizer files). It is written into a temporary sibling and renamed into
place, so a process killed mid-write leaves the previous checkpoint untouched and loadable.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_dir(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Run `write(tmp)` on a fresh temporary directory next to `path`, then rename it to `path`.

    If `path` exists it is replaced only after the new directory is complete; a crash at any
    point leaves either the old directory or the new one, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; a checkpoint is an ordinary dir
    try:
        write(tmp)
        _fsync_tree(tmp)
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def save_hf(
    path: str | Path,
    model: Any,
    tokenizer: Any,
    extra: dict[str, Any] | None = None,
    extra_files: dict[str, Callable[[Path], None]] | None = None,
    state_dict: dict[str, Any] | None = None,
) -> Path:
    """Save model + tokenizer (+ `extra` as r1lab.json, + extra files) as an HF directory;
    `state_dict` replaces the model's own (a sharded model's, gathered: `r1lab.run.fsdp`)."""

    def write(tmp: Path) -> None:
        full = {"state_dict": state_dict} if state_dict is not None else {}
        model.save_pretrained(tmp, safe_serialization=True, **full)
        tokenizer.save_pretrained(tmp)
        _portable_tokenizer_class(tmp / "tokenizer_config.json")
        if extra is not None:
            (tmp / "r1lab.json").write_text(json.dumps(extra, indent=2, sort_keys=True))
        for name, fn in (extra_files or {}).items():
            fn(tmp / name)

    return atomic_dir(path, write)


def _portable_tokenizer_class(path: Path) -> None:
    # transformers 5 names its generic fast tokenizer `TokenizersBackend`, a class 4.x cannot
    # load; `PreTrainedTokenizerFast` loads as the same tokenizer under both (same ids), so a
    # checkpoint written here loads with every transformers in the supported range.
    if not path.is_file():
        return
    config = json.loads(path.read_text())
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def own_memory(model: Any) -> Any:
    """Give every parameter and buffer of a loaded model freshly allocated memory; return it.

    `from_pretrained` leaves tensors where safetensors put their bytes (data pointers at 40 mod
    64 with transformers 5.x on CPU), while a clone or deepcopy gets the allocator's 64-byte
    alignment. CPU matmul kernels take alignment-dependent paths that round differently, so the
    same weights at another alignment give logits that differ in the last bits (up to 2e-6 in a
    log-prob): a resumed run's reference model, loaded from disk, scored the batch differently
    from the uninterrupted run's deepcopy of the policy. With every model in memory of its own,
    the arithmetic is a function of the weights only. Tied weights stay tied (one Parameter).
    """
    import torch

    with torch.no_grad():
        for p in model.parameters():
            p.data = p.data.clone()
        for module in model.modules():
            for name, b in module._buffers.items():
                if b is not None:
                    module._buffers[name] = b.clone()
    return model


def check_model_dir(path: str | Path) -> Path:
    """Fail early, before anything loads, if a model directory is not there."""
    from r1lab.config import ConfigError

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"model path {p} does not exist")
    if not (p / "config.json").is_file():
        raise ConfigError(f"model path {p} has no config.json: not a Hugging Face model directory")
    return p
