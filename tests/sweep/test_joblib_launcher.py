"""`launcher=joblib` through the CLI: a sweep's jobs run in worker processes of their own, at once,
share the tokenized-data cache, and stop together on a signal."""

from __future__ import annotations

import csv
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import read_json, run_sweep, sweep_command
from trainer.data.record_cache import DIGESTS_DIR, RECORDS_DIR
from trainer.run.outcome import EXIT_INTERRUPTED
from trainer.run.status import process_exists

# The checked records and the data digests the cache keeps beside its tokenized entries.
KEPT_BESIDE = (RECORDS_DIR, DIGESTS_DIR)

pytestmark = pytest.mark.slow


def summary_rows(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "summary.csv").open() as file:
        return list(csv.DictReader(file))


def test_a_joblib_sweep_runs_each_job_in_its_own_process_and_tokenizes_once(model_cache, tmp_path):
    sweep_dir, cache_dir = tmp_path / "sweep", tmp_path / "cache"
    completed = run_sweep(
        sweep_dir, model_cache, "launcher=joblib", "train.max_steps=2", f"data.cache_dir={cache_dir}",
        "train.learning_rate=1e-3,2e-3",
    )  # fmt: skip

    assert completed.returncode == 0, completed.stdout + completed.stderr
    jobs = [sweep_dir / str(number) for number in range(2)]
    results = [read_json(job / "result.json") for job in jobs]
    assert [(result["success"], result["global_step"]) for result in results] == [(True, 2), (True, 2)]
    # The default launcher runs every job in the sweep's own process; joblib's workers are two.
    assert len({read_json(job / "status.json")["pid"] for job in jobs}) == 2
    assert [(row["overrides"], row["status"]) for row in summary_rows(sweep_dir)] == [
        ("train.learning_rate=0.001", "completed"),
        ("train.learning_rate=0.002", "completed"),
    ]
    # Whichever job came second (waiting on the entry's lock if both came at once) read the first one's entry.
    records = [read_json(job / "tokenized.json") for job in jobs]
    assert sorted(record["read_from_cache"] for record in records) == [False, True]
    assert len({record["cache_key"] for record in records}) == 1
    tokenized = [entry.name for entry in cache_dir.iterdir() if entry.is_dir() and entry.name not in KEPT_BESIDE]
    assert tokenized == [records[0]["cache_key"]]


@pytest.mark.long
def test_a_sigterm_to_the_sweeps_process_stops_every_running_job_with_a_checkpoint(model_cache, tmp_path):
    sweep_dir = tmp_path / "sweep"
    overrides = [
        "launcher=joblib",
        "train.max_steps=200",
        "train.save_steps=1000",
        "train.learning_rate=1e-3,2e-3,3e-3",
    ]
    sweep = subprocess.Popen(
        sweep_command(sweep_dir, model_cache, *overrides),
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    running = [sweep_dir / str(number) / "status.json" for number in range(2)]
    wait_until(lambda: all(path.exists() and read_json(path)["current_step"] >= 2 for path in running), sweep)

    sweep.send_signal(signal.SIGTERM)  # to the sweep's process alone, as `kill PID` does

    assert sweep.wait(timeout=300) == EXIT_INTERRUPTED
    assert [row["status"] for row in summary_rows(sweep_dir)] == ["interrupted", "interrupted", "not started"]
    for number in range(2):
        assert read_json(sweep_dir / str(number) / "result.json")["last_checkpoint_path"]
    # No worker trains on without its sweep.
    workers = {read_json(path)["pid"] for path in running}
    wait_until(lambda: not any(process_exists(pid) for pid in workers))


def wait_until(condition, process: subprocess.Popen | None = None, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process is None or process.poll() is None, "the sweep ended before the moment the test waits for"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
