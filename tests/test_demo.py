"""`r1lab demo`'s settings: the ones docs/zero.md and the README report the demo with."""

from r1lab.config import load_config
from r1lab.demo import DemoConfig
from r1lab.microworld import DEFAULT_BASE
from r1lab.rl.config import ZeroConfig


def test_the_demo_trains_the_shipped_base_on_division_with_chinese_questions():
    cfg = load_config(DemoConfig)
    assert cfg.model == str(DEFAULT_BASE) and cfg.out == "runs/demo"
    assert (cfg.task.name, cfg.task.ops, cfg.task.zh_fraction) == ("arithmetic", "+*/", 0.2)
    # A division check of a few tries needs the room; the rest is `r1lab zero`'s GRPO.
    assert cfg.rollout.max_new_tokens == 600 and cfg.algo.lr == 5e-5
    assert (cfg.steps, cfg.eval_every) == (30, 10)
    zero = ZeroConfig()
    assert cfg.algo.prompts_per_step == zero.algo.prompts_per_step == 16
    assert cfg.rollout.group_size == zero.rollout.group_size == 8
    assert cfg.rollout.temperature == 1.0 and cfg.eval_temperature == zero.eval_temperature
    assert (cfg.eval_questions, cfg.eval_n) == (64, 4)
    # Keys still override the demo's own defaults, as for any command.
    again = load_config(DemoConfig, overrides=["task.ops=+*", "rollout.max_new_tokens=160"])
    assert again.task.ops == "+*" and again.rollout.max_new_tokens == 160
    assert again.task.zh_fraction == 0.2
