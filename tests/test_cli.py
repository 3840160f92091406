from pathlib import Path

import pytest

from r1lab.cli import COMMANDS, config_help, main
from r1lab.config import load_config

CONFIGS = sorted(Path(__file__).resolve().parent.parent.joinpath("configs").glob("*.yaml"))


def test_usage_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command_suggests(capsys):
    assert main(["zeroo"]) == 2
    assert "did you mean 'zero'" in capsys.readouterr().err.lower()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_with_field_docs(name, capsys):
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert "config keys" in out


def test_help_shows_docstrings():
    from r1lab.rl.config import ZeroConfig

    text = "\n".join(config_help(ZeroConfig))
    assert "algo.beta" in text and "KL coefficient" in text


def test_config_typo_exits_2_with_neighbour(capsys):
    assert main(["zero", "algo.bta=0.1"]) == 2
    assert "algo.beta" in capsys.readouterr().err


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads(path):
    # Each file under configs/ names its command by its prefix (zero-*.yaml -> zero).
    import importlib

    command = COMMANDS[path.stem.split("-")[0]]
    cls = getattr(importlib.import_module(command.module), command.config)
    load_config(cls, path)


def test_there_are_shipped_configs():
    assert len(CONFIGS) >= 2
