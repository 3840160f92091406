"""The run layer every trainer stands on (STYLE.md 12).

- `r1lab.run.rundir`: run directories (refuse to overwrite, `--overwrite`, resume with the
  changes that keep a run's past valid, the command that resumes an interrupted run).
- `r1lab.run.model`: model and tokenizer loading (device, dtype, tokenizer and chat-template
  checks; a run directory names its last checkpoint), all failing before a run directory is
  written.
- `r1lab.run.progress`: the progress display (a trainer passes its label and metric keys).
- `r1lab.run.distributed`: data-parallel training under torchrun (process group, this rank's
  share, sums over ranks, the gradient all-reduce); a no-op in one process.
- `r1lab.run.fsdp`: `fsdp=true`, parameters, gradients and optimizer state sharded with FSDP2,
  gathered for each step; checkpoints stay whole.
- `r1lab.run.loop`: the step loop of the trainers that learn from a fixed dataset (`r1lab sft`,
  `r1lab rm`): open or resume, restore, step, evaluate, checkpoint.
- `r1lab.run.checkpoints`: a run's checkpoints (HF directory + r1lab.json + trainer state,
  written atomically by `r1lab.checkpoint`), resume, metric truncation, the Ctrl-C hint.

Importing this package imports neither torch nor transformers.
"""

from r1lab.run.checkpoints import (
    checkpoint_meta,
    checkpoints,
    load_trainer_state,
    print_interrupted,
    save_checkpoint,
    save_training_checkpoint,
    truncate_metrics,
)
from r1lab.run.model import (
    autocast,
    check_model_dir,
    load_model,
    load_tokenizer,
    resolve_device,
    resolve_dtype,
    resolve_model_dir,
    training_dtype,
    weights_dtype,
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
    "autocast",
    "check_free",
    "check_model_dir",
    "checkpoint_meta",
    "checkpoints",
    "claim",
    "load_model",
    "load_run_config",
    "load_tokenizer",
    "load_trainer_state",
    "print_interrupted",
    "resolve_device",
    "resolve_dtype",
    "resolve_model_dir",
    "resume_command",
    "resume_config",
    "save_checkpoint",
    "save_run_config",
    "save_training_checkpoint",
    "saved_config",
    "training_dtype",
    "truncate_metrics",
    "weights_dtype",
]
