"""`trainer status DIR [--watch [SECONDS]]` (also `python -m trainer.status`): how a run is doing,
read from its status.json.

A run directory gets one screen; a sweep directory (multirun/DATE/TIME) one line per job, the
jobs listed as the sweep's summary lists them (those not started yet included).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from trainer.errors import NotARunError
from trainer.run.outcome import EXIT_USER_ERROR
from trainer.run.status import STALE, RunStatus, StatusReader
from trainer.sweep.summary import NOT_STARTED, sweep_jobs

CLEAR_SCREEN = "\033[H\033[2J"
BAR_WIDTH = 30
# A sweep's table: each column's title and width; the overrides follow, unpadded.
SWEEP_COLUMNS = (
    ("job", 5), ("status", 13), ("step", 12), ("loss", 9), ("val_loss", 10), ("tokens/s", 10), ("eta", 9), ("alerts", 16),
)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.status", description="Show how a trainer run, or every job of a sweep, is doing."
    )
    parser.add_argument("directory", type=Path, help="a run directory, or a sweep directory (multirun/DATE/TIME)")
    parser.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=2.0,
        metavar="SECONDS",
        help="refresh every SECONDS (default 2) until the run ends; Ctrl-C to stop",
    )
    args = parser.parse_args(argv)
    try:
        if args.watch is None:
            print(render(args.directory))
        else:
            watch(args.directory, args.watch)
    except NotARunError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        pass
    return 0


def watch(directory: Path, interval_sec: float) -> None:
    """Redraw until a single run has finished or gone stale (a sweep may still start jobs:
    Ctrl-C ends that)."""
    while True:
        screen = render(directory)
        print(CLEAR_SCREEN + screen if sys.stdout.isatty() else screen, flush=True)
        reader = StatusReader(directory)
        if reader.exists() and reader.read().has_ended():
            return
        time.sleep(interval_sec)


def render(directory: Path) -> str:
    reader = StatusReader(directory)
    if reader.exists():
        return render_run(directory, reader.read())
    jobs = sweep_jobs(directory) if directory.is_dir() else {}
    if any(StatusReader(job).exists() for job in jobs):
        return render_sweep(jobs)
    if not directory.is_dir():
        raise NotARunError(f"{directory} does not exist or is not a directory")
    raise NotARunError(
        f"{directory} is not a run directory (it holds no status.json) "
        "nor a sweep directory (it holds no numbered job directories with one)"
    )


def render_run(directory: Path, status: RunStatus) -> str:
    rows = [
        ("Run", str(directory)),
        ("Status", f"{describe_status(status)}  (updated {describe_age(status.timestamp)})"),
        ("Progress", describe_progress(status)),
        ("Loss", describe_loss(status)),
        ("Speed", f"{number(status.tokens_per_sec, ',.0f')} tokens/s   ETA {duration(status.eta_sec)}"),
        ("Alerts", "\n".join(f"{alert.type}: {alert.message}" for alert in status.alerts) or "none"),
        ("Preview", describe_preview(status.last_preview)),
    ]
    if status.eval_metrics:
        rows.append(("Eval", describe_eval(status.eval_metrics)))
    if status.error_type:
        rows.append(("Error", f"{status.error_type}: {status.error_message}"))
    return "\n".join(f"{label:<10}{indent_continuation(text)}" for label, text in rows)


def render_sweep(jobs: dict[Path, list[str]]) -> str:
    lines = [sweep_line([name for name, _ in SWEEP_COLUMNS], "overrides")]
    for job, overrides in jobs.items():
        reader = StatusReader(job)
        cells = job_cells(reader.read()) if reader.exists() else [NOT_STARTED, *["-"] * (len(SWEEP_COLUMNS) - 2)]
        lines.append(sweep_line([job.name, *cells], " ".join(overrides)))
    return "\n".join(lines)


def job_cells(status: RunStatus) -> list[str]:
    """A started job's cells after its number."""
    return [
        status.shown_status(),
        steps(status),
        number(status.loss, ".4f"),
        number(status.validation_loss, ".4f"),
        number(status.tokens_per_sec, ",.0f"),
        duration(status.eta_sec),
        ",".join(alert.type for alert in status.alerts) or "-",
    ]


def sweep_line(cells: list[str], overrides: str) -> str:
    return "".join(f"{cell:<{width}}" for cell, (_, width) in zip(cells, SWEEP_COLUMNS, strict=True)) + overrides


def describe_status(status: RunStatus) -> str:
    if reason := status.stale_reason():
        return f"{STALE} (last written as {status.status}; {reason})"
    return status.status


def describe_progress(status: RunStatus) -> str:
    epoch = f"  epoch {status.epoch:.2f}" if status.epoch is not None else ""
    if not status.total_steps:
        return steps(status) + epoch
    done = min(status.current_step / status.total_steps, 1.0)
    filled = round(done * BAR_WIDTH)
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {steps(status)} steps ({done:.0%}){epoch}"


def describe_loss(status: RunStatus) -> str:
    trend = f" ({status.loss_trend})" if status.loss_trend else ""
    return (
        f"{number(status.loss, '.4f')}{trend}   validation {number(status.validation_loss, '.4f')}"
        f"   lr {number(status.learning_rate, '.3g')}"
    )


def describe_preview(preview: dict | None) -> str:
    if not preview:
        return "none yet"
    shown = [(key, preview.get(key)) for key in ("step", "prompt", "golden_answer", "text", "match")]
    return "\n".join(f"{key}: {one_line(value)}" for key, value in shown if value is not None)


def describe_eval(metrics: dict) -> str:
    """The latest generation eval: its step, then each metric's share of answers."""
    shown = "   ".join(f"{name} {value:.3f}" for name, value in metrics.items() if name != "step")
    return f"step {metrics['step']}   {shown}"


def describe_age(timestamp: str | None) -> str:
    if not timestamp:
        return "never"
    written = datetime.fromisoformat(timestamp)
    return f"{written:%Y-%m-%d %H:%M:%S}, {duration((datetime.now().astimezone() - written).total_seconds())} ago"


def steps(status: RunStatus) -> str:
    return f"{status.current_step}/{status.total_steps if status.total_steps is not None else '?'}"


def number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(max(seconds, 0)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def one_line(value: object, width: int = 100) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def indent_continuation(text: str) -> str:
    return text.replace("\n", "\n" + " " * 10)
