"""The Hydra callback that keeps a sweep's summary up to date as each job ends, so an interrupted
sweep still has one."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from trainer.run.layout import SweepDirectory
from trainer.sweep.plot import plot_loss_curves
from trainer.sweep.summary import write_summary

log = logging.getLogger(__name__)


class SweepSummaryCallback(Callback):
    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:
            write_summary(Path(config.hydra.sweep.dir), config.sweep.metric, config.sweep.mode)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        sweep = SweepDirectory(sweep_dir)
        rows = write_summary(sweep_dir, config.sweep.metric, config.sweep.mode)
        plot_loss_curves(rows, sweep.summary_png)
        log.info("Sweep summary: %s", sweep.summary_md)
        if sweep.mlflow_parent_file.is_file():
            # Imported only for a sweep that reported to MLflow: the package takes seconds to import.
            from trainer.monitoring.mlflow_tracker import finish_sweep_parent

            finish_sweep_parent(sweep_dir, [sweep.summary_md, sweep.summary_csv, sweep.summary_png])
