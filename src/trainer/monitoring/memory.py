"""Peak memory of a run: what the GPU's allocator handed out, or the process's resident set on CPU."""

from __future__ import annotations

import logging
import resource

import torch

log = logging.getLogger(__name__)


def peak_memory() -> dict[str, float | str]:
    """The peak so far, in MiB, and what was measured (tensors on the GPU, or the whole process)."""
    if torch.cuda.is_available():
        peak, measured = torch.cuda.max_memory_allocated() / 2**20, "cuda_max_allocated"
    else:
        # ru_maxrss is in KiB on Linux: the process's peak resident memory, Python and data included.
        peak, measured = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10, "process_max_rss"
    log.info("Peak memory: %.0f MiB (%s)", peak, measured)
    return {"peak_memory_mib": round(peak, 1), "peak_memory_measured": measured}
