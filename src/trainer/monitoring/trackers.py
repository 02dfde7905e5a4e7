"""Experiment trackers beside TensorBoard (the `logger` group): MLflow and Weights & Biases.

Every tracker gets what TensorBoard gets, under the same names: the scalars a user compares
(`trainer.monitoring.tensorboard.written_scalars`, the generation eval's eval/<metric> included), the
resolved config as flat parameters, the tags that tell runs apart, the previews, each evaluation's
scored answers, and at the end result.json's summary and the HParams metrics.
A tracker is opened (its server reached, its run created or continued) before training starts, so
a bad URI or a missing key stops the run there; one that fails later only loses its records: a
warning, and training goes on with TensorBoard and the run directory holding everything.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from trainer.config.schema import TrainerConfig
from trainer.config.sources import source_name
from trainer.errors import first_line
from trainer.monitoring.hparams import final_metrics
from trainer.monitoring.tensorboard import written_scalars
from trainer.preview.base import PreviewResult
from trainer.run.files import read_json, write_json_atomic
from trainer.run.layout import RunDirectory
from trainer.run.outcome import TrainingResult
from trainer.run.overrides import MULTIRUN_CONFIG, session_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackedRun:
    """What every tracker records about a run, the same for all of them."""

    run_dir: RunDirectory
    # The sweep the run is a job of (its directory), or None for a single run.
    sweep_dir: Path | None
    # The job number and the overrides that set it apart: the run's name in TensorBoard's HParams too.
    name: str
    params: dict[str, str]
    tags: dict[str, str]

    def read_ids(self, tracker: str) -> dict[str, Any]:
        """The ids this run was given by `tracker` when it first started (trackers.json)."""
        return (read_json(self.run_dir.trackers_file) or {}).get(tracker, {})

    def keep_ids(self, tracker: str, ids: dict[str, Any]) -> None:
        recorded = read_json(self.run_dir.trackers_file) or {}
        write_json_atomic(self.run_dir.trackers_file, recorded | {tracker: ids})


def describe_run(config: TrainerConfig, run_dir: RunDirectory) -> TrackedRun:
    sweep_dir = run_dir.root.absolute().parent
    return TrackedRun(
        run_dir=run_dir,
        sweep_dir=sweep_dir if (sweep_dir / MULTIRUN_CONFIG).is_file() else None,
        name=session_name(run_dir.root),
        params=flat_params(asdict(config)),
        tags={
            "profile": config.profile.name,
            "model": config.model.name,
            "precision": config.precision.name,
            "data": source_name(config.data.train, "data.train"),
            "run_dir": str(run_dir.root.absolute()),
        },
    )


def flat_params(node: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """The resolved config as dotted keys and string values (`train.learning_rate`: `0.002`)."""
    flat = {}
    for key, value in node.items():
        if isinstance(value, Mapping):
            flat |= flat_params(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list | tuple) else str(value)
    return flat


class Tracker(ABC):
    """One tracker's run: opened before training, written to by the training thread, then finished."""

    name: str

    @abstractmethod
    def log_scalars(self, scalars: dict[str, float], step: int) -> None: ...

    @abstractmethod
    def log_preview(self, result: PreviewResult) -> None: ...

    @abstractmethod
    def log_eval_answers(self, step: int, rows: list[dict[str, Any]]) -> None: ...

    @abstractmethod
    def finish(self, result: TrainingResult, metrics: dict[str, float]) -> None: ...


class RunTrackers:
    """The trackers of a run. A tracker that raises is reported once and dropped: the run goes on."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = trackers

    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        if scalars:
            self.each(f"logging step {step}", lambda tracker: tracker.log_scalars(scalars, step))

    def record_preview(self, result: PreviewResult) -> None:
        """A `PreviewCallback` listener: each finished preview, in the tracker's own form."""
        self.each(f"recording the preview of step {result.step}", lambda tracker: tracker.log_preview(result))

    def record_eval_answers(self, step: int, rows: list[dict[str, Any]]) -> None:
        """A `GenerationEval` answers listener: each evaluation's scored answers (evals/step-N.jsonl)."""
        self.each(f"recording the eval answers of step {step}", lambda tracker: tracker.log_eval_answers(step, rows))

    def finish(self, result: TrainingResult) -> None:
        """result.json's summary and the HParams metrics, then the tracker's run is closed."""
        metrics = {tag: value for tag, value in final_metrics(result).items() if value is not None}
        self.each("finishing the run", lambda tracker: tracker.finish(result, metrics))
        self.trackers = []

    def each(self, action: str, call: Callable[[Tracker], None]) -> None:
        for tracker in list(self.trackers):
            try:
                call(tracker)
            except Exception as error:
                self.trackers.remove(tracker)
                log.warning(
                    "%s failed while %s (%s: %s); it records nothing more of this run, which goes on: "
                    "TensorBoard and the run directory have all of it",
                    tracker.name,
                    action,
                    type(error).__name__,
                    first_line(error),
                )


class TrackerCallback(TrainerCallback):
    """The scalars TensorBoard writes, under its tags, sent to the trackers at the same steps.
    `eval_metrics`: the generation eval's, as TensorBoard's callback is given them."""

    def __init__(self, trackers: RunTrackers, eval_metrics: tuple[str, ...] = ()) -> None:
        self.trackers = trackers
        self.eval_metrics = eval_metrics

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero:
            self.trackers.log_scalars(written_scalars(logs, self.eval_metrics), state.global_step)


def open_trackers(config: TrainerConfig, run_dir: RunDirectory, environ: Mapping[str, str]) -> RunTrackers:
    """Open each tracker the `logger` section selects; a `UserError` (unreachable server, missing
    key) stops the run before training. `environ` holds the secrets (W&B's API key)."""
    mlflow, wandb = config.logger.mlflow, config.logger.wandb
    if mlflow is None and wandb is None:
        return RunTrackers([])
    run = describe_run(config, run_dir)
    trackers: list[Tracker] = []
    # Imported on use: each package takes seconds to import, and is optional. W&B's mode is settled
    # before MLflow opens a run, so that a refusal leaves no run behind.
    if wandb is not None:
        from trainer.monitoring.wandb_tracker import open_wandb, wandb_mode

        mode, key = wandb_mode(wandb, environ)
    if mlflow is not None:
        from trainer.monitoring.mlflow_tracker import open_mlflow

        trackers.append(open_mlflow(mlflow, run))
    if wandb is not None:
        trackers.append(open_wandb(wandb, run, mode, key))
    return RunTrackers(trackers)
