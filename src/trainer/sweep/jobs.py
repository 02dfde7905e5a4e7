"""One job of a sweep: run it, or reuse its earlier successful result when resuming."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from trainer.config import TrainerConfig
from trainer.result import TrainingResult
from trainer.run_dir import RunDirectory

log = logging.getLogger(__name__)


def run_or_reuse(
    config: TrainerConfig, run_job: Callable[[TrainerConfig], TrainingResult] | None = None
) -> TrainingResult:
    """Run the job with `run_job` (default: the engine, in this process)."""
    if config.sweep.skip_completed and (previous := successful_result(Path(config.run.output_dir))):
        log.info("Reusing the successful result in %s", config.run.output_dir)
        return previous
    if run_job is not None:
        return run_job(config)
    from trainer.engine import TrainerEngine

    return TrainerEngine().run_job(config)


def successful_result(run_dir: Path) -> TrainingResult | None:
    result = RunDirectory(run_dir).read_result()
    return TrainingResult(**result) if result and result.get("success") else None
