"""The run layer's keys: one declaration, every trainer's config inherits and validates them."""

import dataclasses

import pytest

from r1lab.cli import _field_docs
from r1lab.config import ConfigError, load_config
from r1lab.demo import DemoConfig
from r1lab.rl.config import ZeroConfig
from r1lab.run.config import RunConfig
from r1lab.sft.config import SFTConfig

TRAINERS = [ZeroConfig, SFTConfig, DemoConfig]
RUN_KEYS = [f.name for f in dataclasses.fields(RunConfig)]


@pytest.mark.parametrize("cls", TRAINERS, ids=lambda c: c.__name__)
def test_every_trainer_has_the_run_keys_documented_and_resumable_as_the_run_layer_says(cls):
    names = [f.name for f in dataclasses.fields(cls)]
    assert names[: len(RUN_KEYS)] == RUN_KEYS  # listed first in --help and saved configs
    docs = _field_docs(cls)
    assert all(docs.get(key) for key in RUN_KEYS)
    assert RunConfig.RESUMABLE <= cls.RESUMABLE and "out" not in cls.RESUMABLE
    assert cls().out != RunConfig().out  # each trainer writes to its own default directory


@pytest.mark.parametrize("cls", TRAINERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    ("key", "value"), [("device", "gpu"), ("threads", "-1"), ("out", " "), ("dtype", "fp8")]
)
def test_every_trainer_refuses_bad_run_keys_naming_them(cls, key, value):
    extra = ["data=x.jsonl"] if cls is SFTConfig else []
    load_config(cls, overrides=extra)  # the defaults are valid
    with pytest.raises(ConfigError, match=key):
        load_config(cls, overrides=[*extra, f"{key}={value}"])
