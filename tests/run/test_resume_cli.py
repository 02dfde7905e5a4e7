"""Runs that die or are stopped lose at most the steps since their last checkpoint."""

from __future__ import annotations

import signal
import subprocess

import pytest

from tests.helpers import kill_at_checkpoint, losses_by_step, read_json, resume, trainer_command, wait_for
from trainer.run.outcome import EXIT_INTERRUPTED, EXIT_USER_ERROR

pytestmark = pytest.mark.slow

RUN = ["train.max_steps=12", "train.save_steps=4", "train.logging_steps=1", "train.eval_steps=6"]


def test_a_run_killed_during_a_save_resumes_with_the_losses_of_an_uninterrupted_run(run_cli, model_cache, tmp_path):
    reference = tmp_path / "reference"
    completed = run_cli(*RUN, f"hydra.run.dir={reference}", cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr

    killed = tmp_path / "killed"
    kill_at_checkpoint(model_cache, killed, 4, *RUN)
    # What a kill in the middle of the next save leaves behind: a half-written checkpoint, staged.
    half_written = killed / "checkpoints" / ".staging" / "checkpoint-8"
    half_written.mkdir(parents=True, exist_ok=True)
    (half_written / "model.safetensors").write_bytes(b"\0" * 10)

    resumed = resume(killed)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    result = read_json(killed / "result.json")
    assert result["success"] and result["global_step"] == 12
    assert read_json(killed / "status.json")["status"] == "completed"
    assert not (killed / "checkpoints" / ".staging").exists()
    losses = losses_by_step(killed)
    assert [step for step, _ in losses] == list(range(1, 13))
    assert [loss for _, loss in losses] == pytest.approx([loss for _, loss in losses_by_step(reference)], abs=1e-5)


@pytest.mark.long
def test_sigterm_checkpoints_the_current_step_marks_the_run_interrupted_and_it_resumes(model_cache, tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        trainer_command(model_cache, "train.max_steps=500", "train.save_steps=1000", f"hydra.run.dir={run_dir}"),
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    status_file = run_dir / "status.json"
    wait_for(lambda: status_file.exists() and read_json(status_file)["current_step"] >= 2, process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=300) == EXIT_INTERRUPTED

    result = read_json(run_dir / "result.json")
    step = result["global_step"]
    assert not result["success"] and result["error_type"] == "interrupted"
    assert result["last_checkpoint_path"] == str(run_dir / "checkpoints" / f"checkpoint-{step}")
    assert (run_dir / "checkpoints" / f"checkpoint-{step}" / "optimizer.pt").is_file()
    assert read_json(status_file)["status"] == "interrupted"

    resumed = resume(run_dir, f"train.max_steps={step + 2}")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert read_json(run_dir / "result.json")["global_step"] == step + 2
    assert f"Resuming from {run_dir / 'checkpoints' / f'checkpoint-{step}'}" in resumed.stdout


def test_resume_of_a_directory_that_is_not_a_run_is_one_clear_line(tmp_path):
    completed = resume(tmp_path)
    assert completed.returncode == EXIT_USER_ERROR
    assert completed.stderr == f"Cannot resume: {tmp_path} is not a run directory (it has no .hydra/config.yaml)\n"


def test_resume_refuses_to_change_the_model(tmp_path):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("seed: 1\n")
    completed = resume(tmp_path, "model=qwen3-0.6b")
    assert completed.returncode == EXIT_USER_ERROR
    assert completed.stderr.startswith("Cannot resume with model=qwen3-0.6b: a resumed run keeps the config")
    assert completed.stderr.count("\n") == 1
