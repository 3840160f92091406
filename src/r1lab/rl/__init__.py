"""Reinforcement learning for r1lab: the GRPO-family math (`r1lab.rl.algos`) and the trainer.

Kept import-light on purpose: importing `r1lab.rl` loads nothing; import the submodule you need.
"""
