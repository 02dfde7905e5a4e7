"""Graceful stops: the first SIGTERM or SIGINT (a cluster's preemption, Ctrl-C) lets the current
step finish, saves a checkpoint and ends training; a second SIGINT stops at once."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from transformers import TrainerCallback

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Every stop signal this process received, in order: a sweep stops after a job that received one,
# even when that job had already trained its last step.
RECEIVED: list[str] = []


def stop_signal_received() -> bool:
    return bool(RECEIVED)


class StopRequest(TrainerCallback):
    def __init__(self) -> None:
        self.signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def request(self, signum: int, frame: object) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        RECEIVED.append(self.signal_name)
        log.warning(
            "%s received: stopping after this step with a checkpoint (Ctrl-C again stops at once)", self.signal_name
        )

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
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {signum: signal.signal(signum, stop.request) for signum in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
