"""The metrics a sweep ranks its jobs by, read from a job's result (result.json form)."""

from __future__ import annotations

import math
from typing import Any


def metric_value(result: dict[str, Any] | None, metric: str) -> float | None:
    """The metric of a successful job, or None where the job failed or lacks it."""
    if not result or not result.get("success"):
        return None
    value = result.get(metric, result.get("summary", {}).get(metric))
    return None if value is None or math.isnan(value) else float(value)


def objective(result: dict[str, Any], metric: str) -> float:
    """What a sweeper optimises: NaN marks a failed job, which Optuna records as a failed trial."""
    value = metric_value(result, metric)
    return math.nan if value is None else value


def best_index(values: list[float | None], mode: str) -> int | None:
    """Position of the best value (first on ties), or None when no job has one."""
    ranked = [
        (value if mode == "min" else -value, position) for position, value in enumerate(values) if value is not None
    ]
    return min(ranked)[1] if ranked else None
