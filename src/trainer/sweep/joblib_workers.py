"""`launcher=joblib`: a stop signal stops the whole sweep, as with the default launcher.

The jobs run in joblib's loky worker processes. A SIGTERM sent to the sweep's process alone used to
kill it and leave its workers training on, orphaned, with no summary. With this callback the
sweep's process passes a SIGTERM or SIGINT on to its workers as SIGTERM: each running job stops
after its current step with a checkpoint, is recorded as interrupted and ends its worker's task
with exit status 3, which the sweep's process then exits with. (A terminal's Ctrl-C reaches the
workers as well; a SIGTERM after a SIGINT is no "second Ctrl-C", so they still stop gracefully.)"""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Any

import psutil
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignalsReachTheWorkers(Callback):
    """Hydra calls on_multirun_start in the sweep's process, before it starts the workers."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, pass_on_to_workers)


def pass_on_to_workers(signum: int, frame: FrameType | None) -> None:
    workers = loky_workers()
    log.warning(
        "%s received: each of the %d workers stops its job after the current step",
        signal.Signals(signum).name,
        len(workers),
    )
    for worker in workers:
        worker.send_signal(signal.SIGTERM)


def loky_workers() -> list[psutil.Process]:
    """This process's joblib workers (not loky's and multiprocessing's resource trackers)."""
    workers = []
    for child in psutil.Process().children():
        try:
            command = " ".join(child.cmdline())
        except psutil.Error:  # ended meanwhile
            continue
        if "popen_loky" in command:
            workers.append(child)
    return workers
