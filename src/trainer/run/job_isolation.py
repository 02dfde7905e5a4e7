"""Jobs of an in-process sweep run one after another in one Python process: each must leave the
process as it found it, or the next job inherits its state and the process grows job after job."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from accelerate.state import AcceleratorState, GradientState


@contextmanager
def isolated_job() -> Iterator[None]:
    """Restore the environment variables (accelerate and transformers set some), reset accelerate's
    process-wide singletons, free the job's memory and reset CUDA peak-memory counters."""
    environment = dict(os.environ)
    reset_device_memory_counters()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(environment)
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def reset_device_memory_counters() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
