"""Graceful stops: the first SIGTERM or SIGINT (a cluster's preemption, Ctrl-C) lets the current
step finish, saves a checkpoint and ends training; a second SIGINT stops at once. While the data
is fingerprinted, read, checked and tokenized (`StopRequest.at_once`) there is no step to finish
and nothing to save: the first signal stops at once."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from transformers import TrainerCallback

from trainer.run.layout import RunDirectory, checkpoint_step
from trainer.run.outcome import INTERRUPTED, TrainingResult

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Every stop signal this process received, in order: a sweep stops after a job that received one,
# even when that job had already trained its last step.
RECEIVED: list[str] = []


def stop_signal_received() -> bool:
    return bool(RECEIVED)


class RunInterrupted(BaseException):
    """Training stopped on SIGTERM/SIGINT; the checkpoint of its last step is on disk. Raised from
    the signal handler before training, at any line: like KeyboardInterrupt, no `except Exception`
    (a logging handler's, a library's) may swallow it."""


class StopRequest(TrainerCallback):
    def __init__(self) -> None:
        self.signal_name: str | None = None
        # Set around the long steps before training (see the module's docstring).
        self.at_once = False
        # Worker processes forked while preparing data inherit the handler, not the job.
        self.owner = os.getpid()

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def request(self, signum: int, frame: object) -> None:
        if os.getpid() != self.owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        RECEIVED.append(self.signal_name)
        if self.at_once:
            log.warning("%s received before training started: stopping now", self.signal_name)
            raise RunInterrupted(f"Stopped by {self.signal_name} before training started")
        log.warning(
            "%s received: stopping after this step with a checkpoint (Ctrl-C again stops at once)", self.signal_name
        )

    def raise_if_requested(self, when: str) -> None:
        if self.requested:
            raise RunInterrupted(f"Stopped by {self.signal_name} {when}")

    def on_step_end(self, args, state, control, **kwargs):
        if self.requested:
            control.should_save = True
            control.should_training_stop = True
        return control


@contextmanager
def graceful_stop() -> Iterator[StopRequest]:
    """Route SIGTERM and SIGINT to a `StopRequest` while training; signal handlers can only be set
    from the main thread, so elsewhere (an engine called from a worker thread) the defaults stay."""
    stop = StopRequest()
    # Claiming the run directory and fingerprinting the data come first: nothing to save yet.
    stop.at_once = True
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {signum: signal.signal(signum, stop.request) for signum in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def masked_interruption(error: BaseException) -> RunInterrupted | None:
    """The `RunInterrupted` that `error` was raised over while it propagated, if any: a library's
    clean-up can replace the stop by an error of its own (datasets' map waits on its worker
    processes in a `finally` and raises TimeoutError)."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, RunInterrupted):
        cause = cause.__context__
    return cause


def interrupted_result(error: BaseException, run_dir: RunDirectory) -> TrainingResult:
    """A stop on a signal: the steps since the newest checkpoint are all that is lost."""
    checkpoint = run_dir.newest_checkpoint()
    cause = str(error) if isinstance(error, RunInterrupted) else "Stopped at once by a second SIGINT"
    return TrainingResult(
        success=False,
        global_step=checkpoint_step(checkpoint) or 0,
        last_checkpoint_path=checkpoint,
        error_message=f"{cause}; continue with: python -m trainer resume={run_dir.root}",
        error_type=INTERRUPTED,
    )
