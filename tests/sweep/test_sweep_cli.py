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
from omegaconf import OmegaConf

from tests.helpers import file_hashes, losses_by_step, run_sweep, sweep_command
from trainer.run.layout import RunDirectory
from trainer.run.outcome import EXIT_INTERRUPTED

pytestmark = pytest.mark.slow


def resume_sweep(sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer.sweep", f"resume={sweep_dir}", *overrides],
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


@pytest.mark.long
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


@pytest.mark.long
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
    records = [sweep_dir / "multirun.yaml", sweep_dir / "0" / ".hydra" / "config.yaml"]
    recorded = [path.read_bytes() for path in records]

    resumed = resume_sweep(sweep_dir)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [row["status"] for row in summary_rows(sweep_dir)] == ["completed"] * 3
    assert first_result.read_bytes() == finished_first
    assert "already completed; its result is reused" in resumed.stdout
    # The resume's own record goes beside the sweep's and the jobs', never over them.
    assert [path.read_bytes() for path in records] == recorded
    assert (sweep_dir / "0" / ".hydra" / "resume" / "overrides.yaml").is_file()


@pytest.mark.long
def test_a_sweep_resume_refuses_overrides_that_change_what_was_trained_and_writes_nothing(model_cache, tmp_path):
    sweep_dir = tmp_path / "sweep"
    assert run_sweep(sweep_dir, model_cache, "train.learning_rate=1e-3,2e-3").returncode == 0
    before = file_hashes(sweep_dir)
    refused = resume_sweep(sweep_dir, "train.weight_decay=0.3", "data.on_bad_record=skip")
    assert refused.returncode == 2
    assert refused.stderr.startswith("Cannot resume with train.weight_decay=0.3 data.on_bad_record=skip: ")
    assert file_hashes(sweep_dir) == before
    again = subprocess.run(
        sweep_command(sweep_dir, model_cache, "train.learning_rate=1e-3,2e-3"), capture_output=True, text=True
    )
    assert again.returncode == 2
    assert again.stderr.startswith(
        f"{sweep_dir} already holds a sweep; continue it with `python -m trainer.sweep resume="
    )
    assert file_hashes(sweep_dir) == before


@pytest.mark.long
def test_a_signal_stops_the_whole_sweep_and_its_resume_runs_the_rest(model_cache, tmp_path):
    sweep_dir = tmp_path / "sweep"
    sweep = subprocess.Popen(
        sweep_command(sweep_dir, model_cache, "train.max_steps=200", "train.save_steps=1000", "train.learning_rate=1e-3,2e-3"),
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    status_file = sweep_dir / "0" / "status.json"
    deadline = time.monotonic() + 300
    while not (status_file.exists() and json.loads(status_file.read_text())["current_step"] >= 2):
        assert sweep.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    sweep.send_signal(signal.SIGTERM)
    assert sweep.wait(timeout=300) == EXIT_INTERRUPTED
    assert [row["status"] for row in summary_rows(sweep_dir)] == ["interrupted", "not started"]
    assert not (sweep_dir / "1").exists()

    resumed = resume_sweep(sweep_dir)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [row["status"] for row in summary_rows(sweep_dir)] == ["completed"] * 2
    assert [json.loads((sweep_dir / str(n) / "result.json").read_text())["global_step"] for n in range(2)] == [200] * 2
    assert (sweep_dir / "1" / ".hydra" / "config.yaml").is_file()


def test_resume_of_a_directory_that_is_not_a_sweep_is_a_clear_error(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "trainer.sweep", f"resume={tmp_path}"], capture_output=True, text=True
    )
    assert completed.returncode == 2
    assert completed.stderr.strip() == f"Cannot resume: {tmp_path} is not a sweep directory: it has no multirun.yaml"


@pytest.mark.long
def test_jobs_shorter_than_logging_steps_report_their_last_step_loss_and_share_the_sweep_date(model_cache, tmp_path):
    sweep_dir = tmp_path / "sweep"
    completed = run_sweep(
        sweep_dir, model_cache, "train.max_steps=3", "train.logging_steps=10", "train.learning_rate=1e-3,2e-2"
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    rows = summary_rows(sweep_dir)
    for number, row in enumerate(rows):
        steps, losses = zip(*losses_by_step(sweep_dir / str(number)), strict=True)
        assert steps == (1, 3)
        assert float(row["final_loss"]) == losses[-1]
    assert rows[0]["final_loss"] != rows[1]["final_loss"]
    # Every job of a sweep is dated at the sweep's start.
    dates = [OmegaConf.load(sweep_dir / str(number) / ".hydra" / "config.yaml").run.date for number in range(2)]
    assert (
        dates[0] == dates[1]
        and f"run.date={dates[0]}" in OmegaConf.load(sweep_dir / "multirun.yaml").hydra.overrides.task
    )
