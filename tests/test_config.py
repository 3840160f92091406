import contextlib
import re
from dataclasses import dataclass, field

import pytest

from r1lab.config import ConfigError, load_config, parse_overrides, valid_keys


@dataclass
class Inner:
    beta: float = 0.001
    """KL coefficient."""
    name: str = "grpo"
    flag: bool = False


@dataclass
class Outer:
    steps: int = 10
    rl: Inner = field(default_factory=Inner)
    weights: dict[str, float] = field(default_factory=dict)
    stops: list[str] = field(default_factory=lambda: ["</answer>"])


def test_defaults_then_yaml_then_cli(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("steps: 20\nrl:\n  beta: 0.01\n")
    cfg = load_config(Outer, f, ["rl.beta=0.5", "--rl.name", "dr_grpo", "--rl.flag"])
    assert cfg.steps == 20
    assert cfg.rl.beta == 0.5
    assert cfg.rl.name == "dr_grpo"
    assert cfg.rl.flag is True


def test_dict_and_list_fields():
    cfg = load_config(Outer, None, ["weights={format: 0.5, math_accuracy: 1}", "stops=a,b"])
    assert cfg.weights == {"format": 0.5, "math_accuracy": 1.0}
    assert cfg.stops == ["a", "b"]


def test_unknown_key_names_neighbours():
    with pytest.raises(ConfigError) as e:
        load_config(Outer, None, ["rl.bta=1"])
    assert "rl.bta" in str(e.value) and "rl.beta" in str(e.value)


def test_unknown_key_in_yaml_names_file_and_line(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("steps: 3\nrl:\n  betta: 0.1\n")
    with pytest.raises(ConfigError) as e:
        load_config(Outer, f)
    msg = str(e.value)
    assert str(f) in msg and "line 3" in msg and "rl.beta" in msg


def test_bad_types_are_errors():
    with pytest.raises(ConfigError, match="integer"):
        load_config(Outer, None, ["steps=2.5"])
    with pytest.raises(ConfigError, match="number"):
        load_config(Outer, None, ["rl.beta=abc"])
    with pytest.raises(ConfigError, match="section"):
        load_config(Outer, None, ["rl=3"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Outer, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Outer, bad)


def test_parse_overrides_forms():
    assert parse_overrides(["a=1", "--b", "2", "--c=3", "--d"]) == [
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        ("d", "true"),
    ]
    with pytest.raises(ConfigError):
        parse_overrides(["bare"])


def test_valid_keys_nested():
    assert "rl.beta" in valid_keys(Outer) and "steps" in valid_keys(Outer)


# --- every value checked at load, in one line naming the key and what is allowed -------------


@dataclass
class Checked:
    low: int = 1
    inner: Inner = field(default_factory=Inner)

    def validate(self) -> None:
        from r1lab.config import ensure

        ensure(self.low >= 1, "low", ">= 1", self.low)


@dataclass
class Section:
    size: int = 2

    def validate(self) -> None:
        from r1lab.config import ensure

        ensure(self.size >= 2, "size", ">= 2", self.size)


@dataclass
class Nested:
    section: Section = field(default_factory=Section)


def test_validate_runs_on_every_section_with_its_dotted_key():
    with pytest.raises(ConfigError, match=r"'section.size' must be >= 2, got 1"):
        load_config(Nested, None, ["section.size=1"])
    with pytest.raises(ConfigError, match=r"'low' must be >= 1, got 0"):
        load_config(Checked, None, ["low=0"])


def test_a_single_value_for_a_list_is_a_one_item_list():
    assert load_config(Outer, None, ["stops=</answer>"]).stops == ["</answer>"]
    from r1lab.evaluate import EvalConfig

    assert load_config(EvalConfig, None, ["ks=1", "n=1"]).ks == [1]


def test_a_flag_followed_by_a_key_is_a_flag():
    assert parse_overrides(["--rl.flag", "steps=2"]) == [("rl.flag", "true"), ("steps", "2")]
    assert parse_overrides(["--steps", "2"]) == [("steps", "2")]


ZERO_BAD = [
    ("rollout.max_new_tokens=0", "rollout.max_new_tokens", ">= 1"),
    ("rollout.temperature=0", "rollout.temperature", "> 0"),
    ("rollout.top_p=2", "rollout.top_p", "(0, 1]"),
    ("rollout.group_size=1", "rollout.group_size", ">= 2"),
    ("algo.lr=-1", "algo.lr", "> 0"),
    ("algo.beta=-0.1", "algo.beta", ">= 0"),
    ("template=chatml", "template", "'r1zero', 'prefill', 'chat'"),
    ("algo.advantage=ppo", "algo.advantage", "'grpo'"),
    ("algo.loss_agg=foo", "algo.loss_agg", "'token-mean'"),
    ("algo.scale=foo", "algo.scale", "'group', 'batch', 'none'"),
    ("algo.overlong=cut", "algo.overlong", "'mask'"),
    ("dtype=float64", "dtype", "'float32'"),
    ("device=gpu", "device", "cuda:N"),
    ("task.name=gsm8k", "task.name", "'countdown'"),
    ("task.format=csv", "task.format", "'gsm8k'"),
    ("task.name=file", "task.path", "hf:NAME"),
    ("task.test_path=t.jsonl", "task.test_path", "unless name=file"),
    ("rewards={formatt: 1}", "rewards", "Did you mean 'format'"),
    ("reward_params={format: {x: 1}}", "reward_params", "no param 'x'"),
    ("steps=0", "steps", ">= 1"),
    ("eval_n=0", "eval_n", ">= 1"),
    ("workers=-1", "workers", ">= 0"),
]


@pytest.mark.parametrize("override,key,allowed", ZERO_BAD, ids=[b[0] for b in ZERO_BAD])
def test_zero_refuses_bad_values_at_load_naming_key_and_allowed(override, key, allowed):
    from r1lab.rl.config import ZeroConfig

    with pytest.raises(ConfigError) as e:
        load_config(ZeroConfig, None, [override])
    msg = str(e.value)
    assert f"'{key}'" in msg and allowed in msg and "\n" not in msg, msg


def test_a_dotted_key_sets_one_item_of_a_dict_field_and_keeps_the_rest(tmp_path):
    from r1lab.rl.config import ZeroConfig

    path = tmp_path / "c.yaml"
    path.write_text("rewards:\n  math_accuracy: 1.0\n  format: 0.5\n")
    cfg = load_config(ZeroConfig, path, ["rewards.language_consistency=0.3", "rewards.format=0"])
    assert cfg.rewards == {"math_accuracy": 1.0, "format": 0.0, "language_consistency": 0.3}
    # nested: one param of one reward, the reward's other params kept
    cfg = load_config(
        ZeroConfig,
        None,
        [
            "rewards={cosine_length: 1}",
            "reward_params={cosine_length: {max_length: 64, min_value_wrong: -2}}",
            "reward_params.cosine_length.max_length=160",
        ],
    )
    assert cfg.reward_params == {"cosine_length": {"max_length": 160, "min_value_wrong": -2}}
    assert load_config(ZeroConfig).rewards == {}  # the default is never mutated


@pytest.mark.parametrize(
    "override, message",
    [
        ("rewards.language_consistency=abc", "'rewards.language_consistency' must be a number"),
        ("rewards.fromat=1", "Did you mean 'format'"),
        ("rewards.format.x=1", "'rewards.format' is not a mapping"),
        ("reward_params.format.x=1", "no param 'x'"),
    ],
)
def test_a_dotted_key_into_a_dict_field_is_checked_like_the_whole_field(override, message):
    from r1lab.rl.config import ZeroConfig

    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(ZeroConfig, None, [override])


def test_enumerated_names_come_from_the_registries():
    import typing

    from r1lab.rl import algos
    from r1lab.rl.config import AlgoConfig

    hints = typing.get_type_hints(AlgoConfig)
    assert set(typing.get_args(hints["advantage"])) == set(algos.ADVANTAGE_ESTIMATORS)
    assert set(typing.get_args(hints["loss_agg"])) == set(algos.AGGREGATIONS)
    assert set(typing.get_args(hints["scale"])) == {"", *algos.SCALES}


def _command_configs():
    import importlib

    from r1lab.cli import COMMANDS

    for name, command in sorted(COMMANDS.items()):
        yield name, getattr(importlib.import_module(command.module), command.config)


GARBAGE = ["abc", "-1", "0", "1e30", "nan", "[1, x]", "{a: 1}", ""]


@pytest.mark.parametrize("name,cls", list(_command_configs()), ids=lambda x: str(x))
def test_no_value_of_any_key_gets_past_the_loader_as_anything_but_a_config_error(name, cls):
    # Every key of every command, each with values a user might type by mistake: the loader
    # either accepts the value (the config is then valid) or says why in a ConfigError.
    # `r1lab r1`'s stage sections are the other commands' configs, checked under their own
    # names here; its own keys and its final evaluation's are checked under `r1`.
    keys = valid_keys(cls)
    if name == "r1":
        from r1lab.pipeline.config import WIRED

        keys = [k for k in keys if k.split(".")[0] not in WIRED]
    for key in keys:
        for value in GARBAGE:
            with contextlib.suppress(ConfigError):
                load_config(cls, None, [f"{key}={value}"])


@pytest.mark.parametrize(
    "name,override",
    [
        ("eval", "n=0"),
        ("eval", "top_p=0"),
        ("eval", "temperature=-1"),
        ("eval", "max_new_tokens=0"),
        ("coldstart", "top_p=0"),
        ("coldstart", "temperature=-1"),
        ("coldstart", "max_new_tokens=0"),
        ("coldstart", "stop=['']"),
        ("eval", "batch_questions=0"),
        ("eval", "num_questions=-1"),
        ("eval", "split=dev"),
        ("plot", "smooth=0"),
        ("score", "timeout=0"),
        ("score", "rewards={formatt: 1}"),
        ("pretrain", "steps=0"),
        ("pretrain", "model.num_heads=5"),
        ("pretrain", "block_size=100000"),
        ("pretrain", "corpus.slip_rate=2"),
        ("demo", "algo.lr=0"),
    ],
)
def test_every_command_checks_its_values(name, override):
    cls = dict(_command_configs())[name]
    with pytest.raises(ConfigError, match=override.split("=")[0].split(".")[-1]):
        load_config(cls, None, [override])


def test_a_preset_sets_defaults_that_explicit_keys_override(tmp_path):
    from r1lab.microworld.pretrain import PretrainConfig

    student = load_config(PretrainConfig, None, ["preset=student"])
    assert (student.model.hidden_size, student.model.num_layers) == (128, 4)
    assert student.out == "runs/pretrain-student"
    # Given after the preset or before it, an explicit key wins over the preset's value.
    for args in (
        ["preset=student", "model.hidden_size=96"],
        ["model.hidden_size=96", "preset=student"],
    ):
        assert load_config(PretrainConfig, None, args).model.hidden_size == 96
    config = tmp_path / "c.yaml"
    config.write_text("preset: student\nsteps: 7\n")
    from_file = load_config(PretrainConfig, config)
    assert from_file.model.num_layers == 4 and from_file.steps == 7
    assert load_config(PretrainConfig, None, []).model.hidden_size == 192
    with pytest.raises(ConfigError, match="unknown preset 'tiny'; valid: base, student"):
        load_config(PretrainConfig, None, ["preset=tiny"])


def test_a_command_line_value_that_is_not_yaml_is_a_string():
    from r1lab.tasks import TaskConfig

    assert load_config(TaskConfig, None, ["ops=*/"]).ops == "*/"  # `*` starts a YAML alias
    with pytest.raises(ConfigError, match="ops"):
        load_config(TaskConfig, None, ["ops=*-"])
