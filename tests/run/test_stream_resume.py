"""A streaming run killed and resumed sees exactly the examples an uninterrupted run sees."""

from __future__ import annotations

import json

import pytest

from tests.helpers import kill_at_checkpoint, losses_by_step, read_json, resume
from trainer.run.outcome import EXIT_USER_ERROR

# 336 training records (64 held out) and 32 per step: the second pass over the file starts at step 11.
RUN = [
    "data.streaming=true", "data.packing=true", "train.per_device_train_batch_size=32",
    "train.max_steps=12", "train.save_steps=4", "train.logging_steps=1", "train.eval_steps=100",
]  # fmt: skip


@pytest.mark.long
@pytest.mark.slow
def test_a_killed_streaming_run_resumes_with_the_losses_of_an_uninterrupted_one(run_cli, model_cache, tmp_path):
    reference = tmp_path / "reference"
    completed = run_cli(*RUN, f"hydra.run.dir={reference}", cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Pass 1 over" in completed.stdout

    killed = tmp_path / "killed"
    kill_at_checkpoint(model_cache, killed, 4, *RUN)
    checkpoint = read_json(killed / "checkpoints" / "checkpoint-4" / "trainer_state.json")
    assert checkpoint["stateful_callbacks"]["StreamPosition"]["attributes"] == {
        "examples": 128, "pass_number": 0, "draws": 128,
    }  # fmt: skip

    resumed = resume(killed)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Stream resumes at pass 1, draw" in resumed.stdout
    losses = losses_by_step(killed)
    assert [step for step, _ in losses] == list(range(1, 13))
    assert [loss for _, loss in losses] == pytest.approx([loss for _, loss in losses_by_step(reference)], abs=1e-5)


def test_streaming_without_max_steps_is_refused_in_one_line(run_cli, tmp_path):
    completed = run_cli("data.streaming=true", "train.max_steps=-1", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert completed.returncode == EXIT_USER_ERROR
    errors = [line for line in completed.stdout.splitlines() + completed.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "data.streaming=true needs train.max_steps > 0 (got -1)" in errors[0]
    assert json.loads((tmp_path / "run" / "result.json").read_text())["error_type"] == "config_error"
