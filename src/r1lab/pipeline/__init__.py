"""`r1lab r1`: DeepSeek-R1's recipe as one resumable command (R1_SYSTEM.md section 2).

    r1lab r1                                        # the micro-world, within 45 minutes on 2 cores
    r1lab r1 --config configs/r1-micro.yaml reasoning.steps=40
    r1lab r1 rerun=[reject]                         # reject and every stage after it, again

Stages, each in out/<stage>, each handing the next a checkpoint or a dataset:

    zero -> coldstart -> sft_coldstart -> reasoning -> reject -> sft -> rm_helpful, rm_harmless
         -> rl_all -> eval (the report)

- `r1lab.pipeline.config`: `R1Config`, one section per stage (the stage command's own config).
- `r1lab.pipeline.runner`: the manifest, stage keys, skip / continue / rerun.
- `r1lab.pipeline.report`: the final evaluation and the report.
"""

from r1lab.pipeline.config import STAGES, R1Config
from r1lab.pipeline.runner import run

__all__ = ["STAGES", "R1Config", "run"]
