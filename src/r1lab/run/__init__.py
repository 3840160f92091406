"""The run layer every trainer stands on (STYLE.md 12).

- `r1lab.run.rundir`: run directories (refuse to overwrite, `--overwrite`, resume with the
  changes that keep a run's past valid, the command that resumes an interrupted run).
- `r1lab.run.model`: model and tokenizer loading (device, dtype, tokenizer and chat-template
  checks), all failing before a run directory is written.
- `r1lab.run.progress`: the progress display (a trainer passes its label and metric keys) and
  the process's data-parallel rank.

Checkpoints and trainer state still live in `r1lab.checkpoint` and `r1lab.rl.state`.
Importing this package imports neither torch nor transformers.
"""

from r1lab.run.model import (
    check_model_dir,
    load_model,
    load_tokenizer,
    resolve_device,
    resolve_dtype,
)
from r1lab.run.rundir import (
    check_free,
    claim,
    load_run_config,
    resume_command,
    resume_config,
    save_run_config,
    saved_config,
)

__all__ = [
    "check_free",
    "check_model_dir",
    "claim",
    "load_model",
    "load_run_config",
    "load_tokenizer",
    "resolve_device",
    "resolve_dtype",
    "resume_command",
    "resume_config",
    "save_run_config",
    "saved_config",
]
