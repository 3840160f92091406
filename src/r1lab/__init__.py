"""r1lab: DeepSeek-R1-Zero and DeepSeek-R1 reproduced, from GRPO with rule-based rewards to
distillation, with a micro-world that runs every stage on a laptop CPU in minutes."""

__version__ = "0.1.0"
