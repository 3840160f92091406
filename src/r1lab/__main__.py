"""`python -m r1lab ...` (and `torchrun -m r1lab ...`): the same as the `r1lab` command.

Under torchrun the entry point is wrapped in torch's `record`, so a rank that raises writes its
traceback where the launcher reads it: the job ends naming the rank and the error."""

import os

from r1lab.cli import main

if __name__ == "__main__":
    entry = main
    if "TORCHELASTIC_RUN_ID" in os.environ:  # launched by torchrun
        from torch.distributed.elastic.multiprocessing.errors import record

        entry = record(main)
    raise SystemExit(entry())
