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
