"""`python -m trainer.status DIR [--watch [SECONDS]]`: how a run is doing, read from its status.json.

A run directory gets one screen; a sweep directory (multirun/DATE/TIME) one line per job.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import yaml

from trainer.errors import NotARunError
from trainer.run.outcome import EXIT_USER_ERROR
from trainer.run.status import FINISHED, STALE, RunStatus, StatusReader

CLEAR_SCREEN = "\033[H\033[2J"
BAR_WIDTH = 30


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
        if reader.exists() and shown_status(reader.read()) in (*FINISHED, STALE):
            return
        time.sleep(interval_sec)


def shown_status(status: RunStatus) -> str:
    """The run's status, or `stale` where it says it is running but its process is gone."""
    return STALE if status.stale_reason() else status.status


def render(directory: Path) -> str:
    reader = StatusReader(directory)
    if reader.exists():
        return render_run(directory, reader.read())
    if jobs := job_dirs(directory):
        return render_sweep(jobs)
    if not directory.is_dir():
        raise NotARunError(f"{directory} does not exist or is not a directory")
    raise NotARunError(
        f"{directory} is not a run directory (it holds no status.json) "
        "nor a sweep directory (it holds no numbered job directories with one)"
    )


def job_dirs(directory: Path) -> list[Path]:
    """The numbered job directories of a sweep that have a status, in job order."""
    if not directory.is_dir():
        return []
    jobs = [path for path in directory.iterdir() if path.name.isdigit() and StatusReader(path).exists()]
    return sorted(jobs, key=lambda path: int(path.name))


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
    if status.error_type:
        rows.append(("Error", f"{status.error_type}: {status.error_message}"))
    return "\n".join(f"{label:<10}{indent_continuation(text)}" for label, text in rows)


def render_sweep(jobs: list[Path]) -> str:
    header = f"{'job':<5}{'status':<11}{'step':<12}{'loss':<9}{'val_loss':<10}{'tokens/s':<10}{'eta':<9}{'alerts':<16}overrides"
    lines = [header]
    for job in jobs:
        status = StatusReader(job).read()
        alerts = ",".join(alert.type for alert in status.alerts) or "-"
        lines.append(
            f"{job.name:<5}{shown_status(status):<11}{steps(status):<12}{number(status.loss, '.4f'):<9}"
            f"{number(status.validation_loss, '.4f'):<10}{number(status.tokens_per_sec, ',.0f'):<10}"
            f"{duration(status.eta_sec):<9}{alerts:<16}{' '.join(job_overrides(job))}"
        )
    return "\n".join(lines)


def job_overrides(job: Path) -> list[str]:
    """The command-line overrides Hydra recorded for the job: what sets it apart in the sweep."""
    path = job / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    return yaml.safe_load(path.read_text(encoding="utf-8")) or []


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
