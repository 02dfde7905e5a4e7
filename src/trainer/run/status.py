"""status.json: the live state of one run, written by `StatusWriter` and read by `StatusReader`.

The writer is the only code that writes the file. Each write goes through a temporary file and a
rename, so a reader (`python -m trainer.status`, a dashboard, a test) never sees half a file.
This module imports no torch or transformers: the status command starts instantly.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.errors import NotARunError
from trainer.run.files import write_json_atomic
from trainer.run.layout import RunDirectory
from trainer.run.outcome import INTERRUPTED

if TYPE_CHECKING:
    from trainer.preview.base import PreviewResult

IDLE, TRAINING, COMPLETED, CRASHED = "idle", "training", "completed", "crashed"
# A run stopped by a signal is INTERRUPTED, the outcome's own word, as status and as error_type.
FINISHED = (COMPLETED, CRASHED, INTERRUPTED)
# Not written by a run: what a reader calls a run that is not finished but whose process is gone.
STALE = "stale"
# A run on another machine, whose process cannot be looked up, is stale once silent this long:
# many status intervals, and never less than a slow step (a big model's step or evaluation).
STALE_AFTER_INTERVALS = 100
STALE_AFTER_MIN_SEC = 1800.0


@dataclass(frozen=True)
class Alert:
    # nan_loss | throughput_drop | train_val_gap | loss_noise
    type: str
    message: str


@dataclass
class RunStatus:
    status: str = IDLE
    current_step: int = 0
    total_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    learning_rate: float | None = None
    timestamp: str | None = None
    # Real (non-padding) input tokens per second over the recent steps.
    tokens_per_sec: float | None = None
    eta_sec: float | None = None
    validation_loss: float | None = None
    # improving | rising | stable over the recent logged losses; None until there are enough.
    loss_trend: str | None = None
    alerts: list[Alert] = field(default_factory=list)
    # The latest preview (prompt, golden answer, model answer, match); filled by the previews.
    last_preview: dict[str, Any] | None = None
    # The latest generation eval: {"step": N, "eval/<metric>": share, ...} (eval.enabled).
    eval_metrics: dict[str, Any] | None = None
    # objective=dpo|simpo: the newest rewards/* and logps/* (TRL's names), as logged.
    preference_metrics: dict[str, float] | None = None
    error_message: str | None = None
    error_type: str | None = None
    # The writing process: a reader on the same host tells a live run from a killed one.
    pid: int | None = None
    host: str | None = None
    # The writer's least seconds between writes; `timestamp` is its heartbeat.
    interval_sec: float | None = None

    def stale_reason(self, now: datetime | None = None) -> str | None:
        """Why this unfinished run is no longer running (its process is gone, or it has been
        silent for far longer than its interval), or None."""
        if self.status in FINISHED:
            return None
        if self.pid is not None and self.host == socket.gethostname() and not process_exists(self.pid):
            return f"its process {self.pid} on {self.host} is gone"
        if self.timestamp is None:
            return None
        silent = ((now or datetime.now().astimezone()) - datetime.fromisoformat(self.timestamp)).total_seconds()
        if silent > max(STALE_AFTER_INTERVALS * (self.interval_sec or 0.0), STALE_AFTER_MIN_SEC):
            return f"no status written for {silent:.0f}s"
        return None

    def shown_status(self, now: datetime | None = None) -> str:
        """What a reader calls the run: its status, or `stale` where its process is gone."""
        return STALE if self.stale_reason(now) else self.status

    def has_ended(self) -> bool:
        """Finished or stale: nothing will change this status any more."""
        return self.shown_status() in (*FINISHED, STALE)

    def to_dict(self) -> dict[str, Any]:
        # JSON has no NaN or Infinity: a non-finite number is written as null.
        return {key: None if is_non_finite(value) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunStatus:
        known = {item.name for item in fields(cls)}
        status = cls(**{key: value for key, value in data.items() if key in known})
        status.alerts = [Alert(**alert) for alert in data.get("alerts") or []]
        return status


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, but another user's
    return True


def is_non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


class StatusWriter:
    """Keeps the run's status in memory and rewrites status.json at most once per `interval_sec`,
    so per-step updates cost a dictionary update, not a file write. State changes (training,
    completed, crashed) are written at once."""

    def __init__(self, path: Path, interval_sec: float, enabled: bool = True) -> None:
        self.path = path
        self.interval_sec = interval_sec
        # Whether this process writes the file: the harness enables it on the main process only.
        self.enabled = enabled
        self.status = RunStatus(pid=os.getpid(), host=socket.gethostname(), interval_sec=interval_sec)
        self.last_write = -math.inf

    def update(self, force: bool = False, **changes: Any) -> None:
        self.status = replace(self.status, **changes)
        if force or time.monotonic() - self.last_write >= self.interval_sec:
            self.write()

    def mark_idle(self) -> None:
        self.update(force=True, status=IDLE)

    def mark_training(self, current_step: int, total_steps: int) -> None:
        self.update(force=True, status=TRAINING, current_step=current_step, total_steps=total_steps)

    def mark_completed(self) -> None:
        self.update(force=True, status=COMPLETED, eta_sec=0.0)

    def mark_crashed(self, error_message: str, error_type: str) -> None:
        self.update(force=True, status=CRASHED, eta_sec=None, error_message=error_message, error_type=error_type)

    def mark_interrupted(self, message: str) -> None:
        self.update(force=True, status=INTERRUPTED, eta_sec=None, error_message=message, error_type=INTERRUPTED)

    def record_preview(self, preview: PreviewResult) -> None:
        """A preview listener: the newest preview becomes the status's `last_preview`."""
        self.update(
            last_preview={
                "step": preview.step,
                "prompt": preview.prompt,
                "golden_answer": preview.golden_answer,
                "text": preview.text,
                "match": preview.match,
                "success": preview.success,
                "error_message": preview.error_message,
            }
        )

    def record_eval(self, step: int, metrics: dict[str, float]) -> None:
        """A generation eval listener: its newest metrics become the status's `eval_metrics`."""
        self.update(eval_metrics={"step": step, **metrics})

    def add_alert(self, alert: Alert) -> None:
        self.update(alerts=[*self.status.alerts, alert])

    def write(self) -> None:
        self.last_write = time.monotonic()
        if self.enabled:
            self.status.timestamp = datetime.now().astimezone().isoformat(timespec="milliseconds")
            write_json_atomic(self.path, self.status.to_dict())


class StatusReader:
    """Reads a run's status.json back into a `RunStatus`."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = RunDirectory(Path(run_dir))

    def exists(self) -> bool:
        return self.run_dir.status_file.is_file()

    def read(self) -> RunStatus:
        path = self.run_dir.status_file
        if not path.is_file():
            raise NotARunError(f"{self.run_dir.root} is not a run directory: it holds no {path.name}")
        try:
            return RunStatus.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError, AttributeError) as error:
            raise NotARunError(f"{path} is not a status file of trainer: {error}") from error
