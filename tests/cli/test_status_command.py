"""`python -m trainer.status`: one screen per run, one line per sweep job, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trainer.__main__ import main as trainer_main
from trainer.cli import status as status_command
from trainer.run.outcome import EXIT_USER_ERROR
from trainer.run.status import Alert, StatusWriter


def write_status(run_dir: Path, **fields) -> None:
    writer = StatusWriter(run_dir / "status.json", interval_sec=0)
    writer.update(**fields)


def write_job(sweep: Path, number: int, overrides: list[str], **fields) -> None:
    job = sweep / str(number)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {override}\n" for override in overrides))
    write_status(job, **fields)


def test_a_run_gets_one_screen_with_progress_speed_and_alerts(tmp_path, capsys):
    write_status(
        tmp_path,
        status="training",
        current_step=30,
        total_steps=120,
        loss=1.2345,
        loss_trend="improving",
        validation_loss=1.5,
        tokens_per_sec=12345.6,
        eta_sec=185,
        alerts=[Alert("throughput_drop", "600 tokens/s is 60% below this run's best")],
    )
    assert status_command.main([str(tmp_path)]) == 0
    screen = capsys.readouterr().out
    assert "Status    training" in screen
    assert "30/120 steps (25%)" in screen
    assert "Loss      1.2345 (improving)   validation 1.5000" in screen
    assert "Speed     12,346 tokens/s   ETA 3m05s" in screen
    assert "Alerts    throughput_drop: 600 tokens/s is 60% below this run's best" in screen
    assert "Error" not in screen
    assert "Eval" not in screen, "no generation eval line before the run has one"


def test_a_crashed_run_shows_its_error(tmp_path, capsys):
    write_status(tmp_path, status="crashed", error_type="nan_loss", error_message="the loss of step 4 is nan")
    status_command.main([str(tmp_path)])
    assert "Error     nan_loss: the loss of step 4 is nan" in capsys.readouterr().out


def test_a_sweep_gets_one_line_per_job_with_its_overrides(tmp_path, capsys):
    write_job(tmp_path, 0, ["train.learning_rate=1e-4"], status="completed", current_step=12, total_steps=12, loss=1.5)
    write_job(tmp_path, 1, ["train.learning_rate=2e-4"], status="training", current_step=5, total_steps=12, loss=2.0)
    write_job(tmp_path, 10, ["train.learning_rate=3e-4"], status="idle")
    assert status_command.main([str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["job", "status", "step", "loss", "val_loss", "tokens/s", "eta", "alerts", "overrides"]
    assert [line.split()[:4] for line in lines[1:]] == [
        ["0", "completed", "12/12", "1.5000"],
        ["1", "training", "5/12", "2.0000"],
        ["10", "idle", "0/?", "-"],
    ]
    assert [line.split()[-1] for line in lines[1:]] == [f"train.learning_rate={n}e-4" for n in (1, 2, 3)]


def test_watch_stops_once_the_run_has_finished(tmp_path, capsys):
    write_status(tmp_path, status="completed", current_step=12, total_steps=12)
    assert status_command.main([str(tmp_path), "--watch", "0.01"]) == 0
    assert capsys.readouterr().out.count("Status    completed") == 1


def test_a_directory_that_is_not_a_run_exits_non_zero_without_a_traceback(tmp_path):
    (tmp_path / "0").mkdir()
    completed = subprocess.run(
        [sys.executable, "-m", "trainer.status", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == EXIT_USER_ERROR
    assert completed.stderr == (
        f"error: {tmp_path} is not a run directory (it holds no status.json) "
        "nor a sweep directory (it holds no numbered job directories with one)\n"
    )


def test_trainer_status_is_the_status_command(tmp_path, capsys, monkeypatch):
    write_status(tmp_path, status="idle")
    monkeypatch.setattr(sys, "argv", ["trainer", "status", str(tmp_path)])
    with pytest.raises(SystemExit) as exited:
        trainer_main()
    assert exited.value.code == 0
    assert "Status    idle" in capsys.readouterr().out


def test_watch_ends_on_a_run_whose_process_was_killed_and_calls_it_stale(tmp_path):
    # A "run" that writes status.json as training, then dies by SIGKILL without a word.
    killed_run = (
        "import os, signal, sys\nfrom pathlib import Path\n"
        "from trainer.run.status import StatusWriter\n"
        "StatusWriter(Path(sys.argv[1]), interval_sec=2).mark_training(current_step=5, total_steps=40)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", killed_run, str(tmp_path / "status.json")], timeout=60)
    watched = subprocess.run(
        [sys.executable, "-m", "trainer.status", str(tmp_path), "--watch", "0.1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert watched.returncode == 0
    assert "Status    stale (last written as training; its process " in watched.stdout
    assert "is gone)" in watched.stdout


def test_a_sweep_lists_its_jobs_as_its_summary_does_planned_ones_included(tmp_path, capsys):
    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n"
        "  sweeper:\n    _target_: hydra._internal.core_plugins.basic_sweeper.BasicSweeper\n"
        "  overrides:\n    task: ['train.max_steps=4,8,12', 'run.resume=true']\n"
    )
    write_job(tmp_path, 0, ["train.max_steps=4", "run.resume=true"], status="interrupted", current_step=3)
    write_job(tmp_path, 1, ["train.max_steps=8", "run.resume=true"], status="training", current_step=1)
    assert status_command.main([str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines[1:]] == [
        ["0", "interrupted", "3/?", "-", "-", "-", "-", "-", "train.max_steps=4"],
        ["1", "training", "1/?", "-", "-", "-", "-", "-", "train.max_steps=8"],
        ["2", "not", "started", "-", "-", "-", "-", "-", "-", "train.max_steps=12"],
    ]


def test_a_run_shows_its_latest_generation_eval(tmp_path, capsys):
    writer = StatusWriter(tmp_path / "status.json", interval_sec=0)
    writer.update(status="training", current_step=40, total_steps=80)
    writer.record_eval(40, {"eval/exact_match": 0.125, "eval/well_formed_answer": 0.5})
    assert status_command.main([str(tmp_path)]) == 0
    assert "Eval      step 40   eval/exact_match 0.125   eval/well_formed_answer 0.500" in capsys.readouterr().out
