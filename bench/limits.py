"""What the machine allows and how quickly the CLI answers: the fp32 matmul rate that bounds any
CPU training step, the model FLOPs a run achieves against it, and the CLI's start-up latencies."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import PreTrainedModel

FIRST_STEP_LINE = "step 1/"


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """The best of `repeats` fp32 (size x size) @ (size x size) products, in GFLOP/s: the ceiling
    of dense compute with torch's current thread count."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # the first product pays for allocation and thread start-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def parameter_count(model: PreTrainedModel) -> int:
    """Parameters a token's forward and backward pass multiply with (tied weights once)."""
    return sum(parameter.numel() for parameter in model.parameters())


def model_gflops(parameters: int, tokens_per_sec: float) -> float:
    """Achieved training compute by the usual 6 * N * tokens estimate (forward 2N, backward 4N)."""
    return 6 * parameters * tokens_per_sec / 1e9


def cli_seconds(args: list[str], cwd: Path, repeats: int = 3) -> float:
    """Median wall seconds of `python -m trainer ARGS` to its exit."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "trainer", *args], cwd=cwd, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def seconds_to_first_step(args: list[str], cwd: Path, timeout: float = 300) -> float:
    """Wall seconds from launching `python -m trainer ARGS` to its log line of optimizer step 1;
    the run is stopped there."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "trainer", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if FIRST_STEP_LINE in line:
                return time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                break
        raise RuntimeError(f"no '{FIRST_STEP_LINE}' line from python -m trainer {' '.join(args)}")
    finally:
        process.terminate()
        process.wait(timeout=30)
