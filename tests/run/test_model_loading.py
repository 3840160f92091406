"""The run layer's model loading: everything a user can get wrong fails first, in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from r1lab.config import ConfigError
from r1lab.microworld import DEFAULT_BASE
from r1lab.run import load_model, load_tokenizer, resolve_device, resolve_dtype


def model_dir(tmp_path: Path, *names: str) -> Path:
    """The shipped model with only some of its files (weights linked, not copied)."""
    out = tmp_path / "model"
    out.mkdir()
    for name in names:
        (out / name).symlink_to(Path(DEFAULT_BASE) / name)
    return out


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_config_error():
    with pytest.raises(ConfigError, match="device=cuda, but CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_a_device_torch_cannot_name_is_refused():
    with pytest.raises(ConfigError, match="'device' must be auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")


def test_float16_on_the_cpu_is_refused_before_it_makes_nan():
    with pytest.raises(ConfigError, match="dtype=float16 is not supported on the CPU"):
        resolve_dtype("float16", "cpu")
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16


def test_a_model_directory_without_tokenizer_says_so(tmp_path):
    path = model_dir(tmp_path, "config.json", "model.safetensors")
    with pytest.raises(ConfigError, match="has no tokenizer"):
        load_model(path, "cpu")


def test_chat_template_needed_for_template_chat(tmp_path):
    files = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
    path = model_dir(tmp_path, *files)  # no chat_template.jinja
    with pytest.raises(ConfigError, match="template=chat, but the tokenizer .* has no chat"):
        load_tokenizer(path, "chat")
    assert load_tokenizer(path, "r1zero").pad_token_id is not None
    assert load_tokenizer(DEFAULT_BASE, "chat").chat_template  # the shipped one has one


def test_evaluate_still_exports_the_run_layers_loaders():
    import r1lab.evaluate as ev
    import r1lab.run.model as rm

    assert ev.load_model is rm.load_model and ev.resolve_device is rm.resolve_device


def test_a_run_directory_names_its_last_complete_checkpoint(tmp_path, capsys):
    # `r1lab zero model=runs/sft-coldstart`: the stage before is named by its run.
    from r1lab.run import check_model_dir, resolve_model_dir

    files = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(ConfigError, match="run has no complete checkpoint yet"):
        load_tokenizer(run)
    for step in (20, 100):
        (tmp_path / f"s{step}").mkdir()
        ckpt = model_dir(tmp_path / f"s{step}", *files)
        (ckpt / "trainer_state.pt").touch()
        (ckpt / "r1lab.json").write_text('{"template": "r1"}')
        ckpt.rename(run / "checkpoints" / f"step-{step:06d}")
    (run / "checkpoints" / ".step-000200.tmp-x").mkdir()  # a checkpoint being written
    last = run / "checkpoints" / "step-000100"
    assert resolve_model_dir(run) == last == check_model_dir(run)
    assert resolve_model_dir(last) == last  # a model directory is itself
    load_model(run, "cpu", template="r1zero")
    # the checkpoint's own r1lab.json is read: it was trained with template r1
    assert "was trained with template=r1" in capsys.readouterr().err


def test_trained_template_is_what_the_checkpoint_records_else_r1zero(tmp_path):
    import json

    from r1lab.run.model import trained_template

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    assert trained_template(model) == "r1zero"
    (model / "r1lab.json").write_text(json.dumps({"template": "r1"}))
    assert trained_template(model) == "r1"


def test_training_computes_in_bf16_over_fp32_weights_and_refuses_float16():
    from r1lab.run import training_dtype, weights_dtype

    assert training_dtype("bfloat16", "cpu") == torch.bfloat16
    assert training_dtype("auto", "cpu") == torch.float32
    # fp16 mixed precision needs loss scaling (not done): refused, also where a GPU could run it.
    with pytest.raises(ConfigError, match="float16 is not supported for training"):
        training_dtype("float16", torch.device("cuda"))
    assert weights_dtype("bfloat16", "cpu", train=True) == torch.float32
    assert weights_dtype("bfloat16", "cpu") == torch.bfloat16
    trained = load_model(DEFAULT_BASE, "cpu", "bfloat16", train=True)[0]
    served = load_model(DEFAULT_BASE, "cpu", "bfloat16")[0]
    assert {p.dtype for p in trained.parameters()} == {torch.float32}
    assert {p.dtype for p in served.parameters()} == {torch.bfloat16}


def test_autocast_is_on_only_below_fp32():
    from r1lab.run import autocast

    layer = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with autocast(torch.bfloat16, "cpu"):
        assert layer(x).dtype == torch.bfloat16
    with autocast(torch.float32, "cpu"):
        assert layer(x).dtype == torch.float32
    assert layer(x).dtype == torch.float32  # and off again after
