import re
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
    # Every key is documented, inherited ones too (`demo` inherits `zero`'s keys).
    lines = out.splitlines()
    keys = [i for i, line in enumerate(lines) if re.match(r"  [\w.]+ = ", line)]
    assert keys
    undocumented = [lines[i] for i in keys if not lines[i + 1].startswith("      ")]
    assert not undocumented, undocumented


def test_help_shows_docstrings():
    from r1lab.rl.config import ZeroConfig

    text = "\n".join(config_help(ZeroConfig))
    assert "algo.beta" in text and "KL coefficient" in text


def test_help_shows_a_commands_own_section_defaults():
    """A command may set other section defaults than the section class has (as `r1lab demo`
    could set the task's); its help shows the command's, not the section class's."""
    from dataclasses import dataclass, field

    from r1lab.rl.config import RolloutConfig, ZeroConfig
    from r1lab.tasks import TaskConfig

    @dataclass
    class Other(ZeroConfig):
        task: TaskConfig = field(default_factory=lambda: TaskConfig(ops="+*/", zh_fraction=0.2))
        rollout: RolloutConfig = field(default_factory=lambda: RolloutConfig(max_new_tokens=400))

    text = "\n".join(config_help(Other))
    assert "task.ops = '+*/'" in text and "task.zh_fraction = 0.2" in text
    assert "rollout.max_new_tokens = 400" in text
    assert "rollout.group_size = 8" in text  # the keys it leaves alone keep their defaults
    plain = "\n".join(config_help(ZeroConfig))
    assert "task.ops = '+*'" in plain and "rollout.max_new_tokens = 160" in plain


def test_config_typo_exits_2_with_neighbour(capsys):
    assert main(["zero", "algo.bta=0.1"]) == 2
    assert "algo.beta" in capsys.readouterr().err


def command_of(path: Path) -> str:
    """The command a shipped config is for: the one its comment runs it with
    (`r1lab zero --config configs/r1-reasoning.yaml`), else its prefix (zero-*.yaml -> zero)."""
    import re

    run = re.search(rf"r1lab (\w+) --config configs/{re.escape(path.name)}", path.read_text())
    return run.group(1) if run else path.stem.split("-")[0]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads(path):
    import importlib

    command = COMMANDS[command_of(path)]
    cls = getattr(importlib.import_module(command.module), command.config)
    load_config(cls, path)


def test_there_are_shipped_configs():
    assert len(CONFIGS) >= 2


# --- user mistakes: one line on stderr, exit status 2, nothing written -------------------------

NO_CHAT = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def _model_dir(tmp_path: Path, names) -> Path:
    from r1lab.microworld import DEFAULT_BASE

    out = tmp_path / "model"
    out.mkdir(parents=True)
    for name in names:
        (out / name).symlink_to(Path(DEFAULT_BASE) / name)
    return out


MISTAKES = [
    ["zero", "rollout.max_new_tokens=0"],
    ["zero", "rollout.temperature=0"],
    ["zero", "rollout.top_p=2"],
    ["zero", "algo.lr=-1"],
    ["zero", "template=chatml"],
    ["zero", "algo.advantage=ppo"],
    ["zero", "algo.loss_agg=foo"],
    ["zero", "algo.scale=foo"],
    ["zero", "device=cpu", "dtype=float16"],
    ["zero", "template=chat", "model={nochat}"],
    ["zero", "model={notok}"],
    ["zero", "model=/nope"],
    ["zero", "task.name=file", "task.path=/nope.jsonl"],
    ["zero", "--resume", "/nope"],
    ["demo", "rollout.top_p=0"],
    ["eval", "n=0"],
    ["eval", "model={notok}"],
    ["eval", "template=chat", "model={nochat}"],
    ["eval", "task.name=file", "task.path={tmp}"],
    ["eval", "split=all"],
    ["plot", "/nope"],
    ["plot", "{tmp}", "smooth=0"],
    ["score", "/nope.jsonl"],
    ["pretrain", "model.num_heads=5"],
    ["pretrain", "device=cuda:9"],
]


@pytest.mark.parametrize("argv", MISTAKES, ids=[" ".join(a) for a in MISTAKES])
def test_user_mistakes_are_one_line_and_write_nothing(argv, tmp_path, capsys):
    nochat = _model_dir(tmp_path / "a", NO_CHAT)
    notok = _model_dir(tmp_path / "b", NO_CHAT[:2])
    fill = {"nochat": nochat, "notok": notok, "tmp": tmp_path}
    out = tmp_path / "out"
    args = [a.format(**fill) for a in argv]
    if argv[0] in ("zero", "demo", "eval", "pretrain"):
        args.append(f"out={out}")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not out.exists()


def test_score_blames_the_command_line_for_a_command_line_value(tmp_path, capsys):
    data = tmp_path / "f.jsonl"
    data.write_text('{"completion": "<think>x</think> <answer>1</answer>", "answer": "1"}\n')
    assert main(["score", str(data), "rewards={formatt: 1}"]) == 2
    err = capsys.readouterr().err
    assert "'rewards'" in err and "Did you mean 'format'" in err
    assert "line 1" not in err and str(data) not in err
    # A bad `rewards` field of the file still names the file, the line and the field.
    data.write_text(data.read_text() + '{"completion": "x", "rewards": {"formatt": 1}}\n')
    assert main(["score", str(data)]) == 2
    assert f"{data}, line 2: field 'rewards'" in capsys.readouterr().err


def test_pretrain_writes_under_runs_and_never_into_the_shipped_model(capsys):
    from r1lab.microworld import DEFAULT_BASE
    from r1lab.microworld.pretrain import PretrainConfig

    assert PretrainConfig().out == "runs/pretrain"
    before = sorted(p.name for p in Path(DEFAULT_BASE).iterdir())
    assert main(["pretrain", f"out={DEFAULT_BASE}", "steps=1", "num_docs=20"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in Path(DEFAULT_BASE).iterdir()) == before


def test_help_lists_the_allowed_values_of_an_enumerated_key(capsys):
    assert main(["zero", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(one of: 'dr_grpo', 'grpo', 'rloo')" in out


def test_eval_refuses_an_out_that_is_a_file_before_evaluating(tmp_path, capsys):
    out = tmp_path / "eval.json"
    out.write_text("{}")
    assert main(["eval", f"out={out}", "num_questions=1", "n=1", "ks=1"]) == 2
    assert "is a file" in capsys.readouterr().err and out.read_text() == "{}"


def test_a_broken_reward_stops_a_command_with_one_line_not_a_traceback(monkeypatch, capsys):
    from r1lab.cli import main
    from r1lab.rewards import RewardError
    from r1lab.rl import trainer

    def broken(cfg, *a, **k):
        raise RewardError("countdown", "KeyError: 'numbers' (it failed on all 32 items)", 0)

    monkeypatch.setattr(trainer, "run", broken)
    assert main(["zero", "steps=1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "r1lab zero: reward 'countdown' failed on item 0: KeyError: 'numbers' (it failed on all 32 items)"
    ]
