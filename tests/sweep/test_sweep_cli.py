"""Real `--multirun` sweeps through the CLI: isolated job dirs, the summary, failures, resume."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FAST_RUN
from trainer.run_dir import RunDirectory

pytestmark = pytest.mark.slow

QUICK_JOB = [*FAST_RUN, "train.max_steps=6"]


def sweep_command(sweep_dir: Path, model_cache: Path, *overrides: str) -> list[str]:
    return [
        sys.executable, "-m", "trainer", "--multirun", *QUICK_JOB, *overrides,
        f"model.cache_dir={model_cache}", f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip


def run_sweep(sweep_dir: Path, model_cache: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        sweep_command(sweep_dir, model_cache, *overrides),
        cwd=sweep_dir.parent, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def summary_rows(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "summary.csv").open() as file:
        return list(csv.DictReader(file))


def test_a_two_by_two_sweep_gives_four_job_dirs_a_summary_and_a_plot(model_cache, tmp_path):
    sweep_dir = tmp_path / "sweep"
    completed = run_sweep(sweep_dir, model_cache, "profile=emoji_think,regime3", "train.learning_rate=1e-3,2e-3")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    rows = summary_rows(sweep_dir)
    assert [row["overrides"] for row in rows] == [
        "profile=emoji_think train.learning_rate=0.001",
        "profile=emoji_think train.learning_rate=0.002",
        "profile=regime3 train.learning_rate=0.001",
        "profile=regime3 train.learning_rate=0.002",
    ]
    assert [row["status"] for row in rows] == ["completed"] * 4
    assert [row["best"] for row in rows].count("True") == 1
    for number in range(4):
        assert json.loads((sweep_dir / str(number) / "result.json").read_text())["success"]
        assert list(RunDirectory(sweep_dir / str(number)).tensorboard_dir.glob("events.out.tfevents.*"))
    assert (sweep_dir / "summary.png").read_bytes().startswith(b"\x89PNG")
    assert "★" in (sweep_dir / "summary.md").read_text()


def test_a_failing_job_is_recorded_and_the_sweep_goes_on(model_cache, tmp_path):
    sweep_dir = tmp_path / "sweep"
    completed = run_sweep(sweep_dir, model_cache, "train.learning_rate=1e-3,2e-3,-1,3e-3")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    statuses = [row["status"] for row in summary_rows(sweep_dir)]
    assert statuses == ["completed", "completed", "failed (config_error)", "completed"]


def test_fail_fast_stops_the_sweep_at_the_first_failure(model_cache, tmp_path):
    sweep_dir = tmp_path / "sweep"
    completed = run_sweep(sweep_dir, model_cache, "train.learning_rate=-1,1e-3", "sweep.fail_fast=true")
    assert completed.returncode != 0
    assert not (sweep_dir / "1").exists()


def test_a_killed_sweep_resumes_without_rerunning_finished_jobs(model_cache, tmp_path):
    sweep_dir = tmp_path / "sweep"
    sweep = subprocess.Popen(
        sweep_command(sweep_dir, model_cache, "train.learning_rate=1e-3,2e-3,3e-3"),
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    first_result = sweep_dir / "0" / "result.json"
    deadline = time.monotonic() + 300
    while not first_result.exists() and sweep.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    sweep.send_signal(signal.SIGKILL)
    sweep.wait()
    assert first_result.exists() and not (sweep_dir / "2" / "result.json").exists()
    finished_first = first_result.read_bytes()

    resumed = subprocess.run(
        [sys.executable, "-m", "trainer.sweep", f"resume={sweep_dir}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [row["status"] for row in summary_rows(sweep_dir)] == ["completed"] * 3
    assert first_result.read_bytes() == finished_first
    assert "already completed; its result is reused" in resumed.stdout


def test_resume_of_a_directory_that_is_not_a_sweep_is_a_clear_error(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "trainer.sweep", f"resume={tmp_path}"], capture_output=True, text=True
    )
    assert completed.returncode == 2
    assert completed.stderr.strip() == f"Cannot resume: {tmp_path} is not a sweep directory: it has no multirun.yaml"
