"""trainer.log: every log line of the run, transformers' own included."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import transformers

LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] %(message)s"


@contextmanager
def capture_run_log(log_file: Path) -> Iterator[None]:
    """Copy every INFO+ log line to `log_file` for the duration of one job. The handler goes away
    afterwards, so each job of a sweep keeps its own file."""
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()


def route_transformers_logs(level: str) -> None:
    """transformers logs to a handler of its own; send its lines through the root logger instead,
    so they reach the console and trainer.log like ours."""
    transformers.utils.logging.set_verbosity(logging.getLevelNamesMapping()[level.upper()])
    transformers.utils.logging.disable_default_handler()
    transformers.utils.logging.enable_propagation()
    # Loading and saving bars of a few milliseconds only bury the training progress bar.
    transformers.utils.logging.disable_progress_bar()
