"""`TrainingResult`: the outcome of one job, returned by `TrainerEngine.run_job` and written to
result.json; `record_refusal` for an outcome reached before the job had a run directory of its own."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from trainer.run.files import write_json_atomic
from trainer.run.layout import RunDirectory

# Exit statuses of `python -m trainer`: a user can fix 2, 1 is a crash worth a bug report.
EXIT_CRASHED = 1
EXIT_USER_ERROR = 2
# Stopped by SIGTERM/SIGINT after a checkpoint: resume it with `python -m trainer resume=DIR`.
EXIT_INTERRUPTED = 3
INTERRUPTED = "interrupted"


@dataclass
class TrainingResult:
    success: bool
    global_step: int = 0
    runtime_sec: float = 0.0
    last_checkpoint_path: str | None = None
    final_model_path: str | None = None
    final_loss: float | None = None
    eval_loss: float | None = None
    # train.early_stopping stopped the run before train.max_steps: a success; a resume trains no more.
    stopped_early: bool = False
    # train.keep_best: the checkpoint of the best evaluation (by train.early_stopping.metric).
    best_checkpoint_path: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    error_message: str | None = None
    # None on success; "config_error", "user_error" or the exception's class name otherwise.
    error_type: str | None = None
    user_error: bool = False

    @property
    def exit_code(self) -> int:
        if self.success:
            return 0
        if self.error_type == INTERRUPTED:
            return EXIT_INTERRUPTED
        return EXIT_USER_ERROR if self.user_error else EXIT_CRASHED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_refusal(run_dir: RunDirectory, result: TrainingResult) -> TrainingResult:
    """A job refused before it started writes result.json only into a directory that exists and
    holds no run (the one Hydra made for it, so a sweep's summary lists the job as failed); it
    never creates one, nor touches a run's."""
    if run_dir.root.is_dir() and not run_dir.holds_run():
        write_json_atomic(run_dir.result_file, result.to_dict())
    return result
