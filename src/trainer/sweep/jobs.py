"""One job of a sweep: run it, or reuse its earlier successful result when resuming."""

from __future__ import annotations

import logging
from pathlib import Path

from trainer.config import TrainerConfig
from trainer.result import TrainingResult
from trainer.run_dir import RunDirectory

log = logging.getLogger(__name__)


def run_or_reuse(config: TrainerConfig) -> TrainingResult:
    if config.sweep.skip_completed and (previous := successful_result(Path(config.run.output_dir))):
        log.info("Reusing the successful result in %s", config.run.output_dir)
        return previous
    from trainer.engine import TrainerEngine

    return TrainerEngine().run_job(config)


def successful_result(run_dir: Path) -> TrainingResult | None:
    result = RunDirectory(run_dir).read_result()
    return TrainingResult(**result) if result and result.get("success") else None
