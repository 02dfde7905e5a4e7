"""summary.csv and summary.md at a sweep's root: one row per job, the best one marked."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, fields
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from trainer.config.schema import EVAL_METRIC_PREFIX, PREFERENCE_METRICS
from trainer.run.files import write_text_atomic
from trainer.run.layout import RunDirectory, SweepDirectory
from trainer.run.outcome import INTERRUPTED
from trainer.run.overrides import job_overrides, visible
from trainer.sweep.metrics import best_index, metric_value

NOT_STARTED = "not started"


@dataclass
class JobRow:
    job: str
    overrides: str
    status: str
    final_loss: float | None
    eval_loss: float | None
    tokens_per_sec: float | None
    runtime_sec: float | None
    run_dir: str
    best: bool = False
    # The generation eval's metrics of the job's final model (eval/<name>), where it logged them.
    eval_metrics: dict[str, float] = field(default_factory=dict)

    def metric(self, name: str) -> float | None:
        """The value a sweep ranks this job by: a column, or a generation eval metric."""
        return self.eval_metrics.get(name) if name.startswith(EVAL_METRIC_PREFIX) else getattr(self, name)


def eval_metrics_of(result: dict | None) -> dict[str, float]:
    summary = (result or {}).get("summary", {})
    # The generation eval's metrics, and the preference metrics of objective=dpo|simpo.
    names = sorted(key for key in summary if key.startswith(EVAL_METRIC_PREFIX) or key in PREFERENCE_METRICS)
    return {name: value for name in names if (value := metric_value(result, name)) is not None}


def job_row(job_dir: Path, overrides: list[str]) -> JobRow:
    result = RunDirectory(job_dir).read_result()
    if not job_dir.is_dir():
        status = NOT_STARTED
    elif result is None:
        status = "running"
    elif result["success"]:
        status = "completed"
    else:
        status = INTERRUPTED if result.get("error_type") == INTERRUPTED else f"failed ({result.get('error_type')})"
    return JobRow(
        job=job_dir.name,
        overrides=" ".join(overrides),
        status=status,
        final_loss=metric_value(result, "final_loss"),
        eval_loss=metric_value(result, "eval_loss"),
        tokens_per_sec=metric_value(result, "tokens_per_sec"),
        runtime_sec=result.get("runtime_sec") if result else None,
        run_dir=str(job_dir),
        eval_metrics=eval_metrics_of(result),
    )


def sweep_jobs(sweep_dir: Path) -> dict[Path, list[str]]:
    """Every job's directory and overrides, in job order: those started (their directory), and
    those the sweep's multirun.yaml still plans (a sweep stopped by a signal)."""
    sweep = SweepDirectory(sweep_dir)
    jobs = {job_dir: job_overrides(job_dir) for job_dir in sweep.job_dirs()}
    for number, overrides in enumerate(planned_jobs(sweep_dir)):
        jobs.setdefault(sweep.job_dir(number), visible(overrides))
    return dict(sorted(jobs.items(), key=lambda job: int(job[0].name)))


def planned_jobs(sweep_dir: Path) -> list[list[str]]:
    """The overrides of each job the sweep's multirun.yaml expands to, in job order; none where
    another sweeper (Optuna) decides the jobs as it goes."""
    path = SweepDirectory(sweep_dir).multirun_config
    if not path.is_file():
        return []
    config = OmegaConf.load(path)
    if not str(config.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return []
    overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    return BasicSweeper.split_arguments(overrides, None)[0]


def shared_overrides(per_job: list[list[str]]) -> list[str]:
    """The overrides every job has: the sweep's fixed settings, as opposed to what it varies."""
    return [item for item in per_job[0] if all(item in overrides for overrides in per_job[1:])] if per_job else []


def collect_rows(jobs: dict[Path, list[str]], metric: str, mode: str) -> list[JobRow]:
    """One row per job, started or not; its `overrides` are those that set it apart from the other jobs."""
    shared = set(shared_overrides(list(jobs.values()))) if len(jobs) > 1 else set()
    rows = [job_row(job_dir, [item for item in overrides if item not in shared]) for job_dir, overrides in jobs.items()]
    best = best_index([row.metric(metric) for row in rows], mode)
    if best is not None:
        rows[best].best = True
    return rows


def write_summary(sweep_dir: Path, metric: str, mode: str, targets: tuple[Path, Path] | None = None) -> list[JobRow]:
    """(Re)write summary.csv and summary.md (or the `targets` csv and md) from the job directories
    as they are now."""
    jobs = sweep_jobs(sweep_dir)
    rows = collect_rows(jobs, metric, mode)
    shared = shared_overrides(list(jobs.values()))
    sweep = SweepDirectory(sweep_dir)
    csv_file, markdown_file = targets or (sweep.summary_csv, sweep.summary_md)
    write_text_atomic(csv_file, summary_csv(rows))
    write_text_atomic(markdown_file, summary_markdown(rows, shared, metric, mode))
    return rows


def eval_columns(rows: list[JobRow]) -> list[str]:
    """The generation eval metrics any job logged, each a column."""
    return sorted({name for row in rows for name in row.eval_metrics})


def summary_csv(rows: list[JobRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    columns = eval_columns(rows)
    plain = [item.name for item in fields(JobRow) if item.name != "eval_metrics"]
    writer.writerow([*plain, *columns])
    writer.writerows(
        [*(getattr(row, name) for name in plain), *(row.eval_metrics.get(name) for name in columns)] for row in rows
    )
    return buffer.getvalue()


def summary_markdown(rows: list[JobRow], shared: list[str], metric: str, mode: str) -> str:
    columns = eval_columns(rows)
    header = [
        "",
        "job",
        "overrides",
        "status",
        "final loss",
        "eval loss",
        *columns,
        "tokens/s",
        "runtime (s)",
        "run dir",
    ]
    common = f"Every job: `{' '.join(shared)}`\n\n" if shared and len(rows) > 1 else ""
    lines = [
        f"# Sweep summary\n\n{common}Best job by {metric} ({mode}) is marked with ★.\n",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in rows:
        cells = [
            "★" if row.best else "",
            row.job,
            f"`{row.overrides}`" if row.overrides else "",
            row.status,
            format_number(row.final_loss, ".4g"),
            format_number(row.eval_loss, ".4g"),
            *(format_number(row.eval_metrics.get(name), ".3f") for name in columns),
            format_number(row.tokens_per_sec, ",.0f"),
            format_number(row.runtime_sec, ".1f"),
            row.run_dir,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_number(value: float | None, spec: str) -> str:
    return "" if value is None else f"{value:{spec}}"
