"""The harness around the recipe: a config refused by validation starts nothing."""

from __future__ import annotations

import json

from trainer.engine import TrainerEngine


def test_a_config_refused_by_validation_creates_no_run_directory(make_config, tmp_path):
    result = TrainerEngine().run_job(make_config("train.learning_rate=-1"))
    assert (result.success, result.user_error, result.error_type) == (False, True, "config_error")
    assert "train.learning_rate" in result.error_message
    assert not (tmp_path / "run").exists()


def test_a_refused_config_is_recorded_in_a_fresh_directory_made_for_the_job(make_config, tmp_path):
    # Hydra makes the job's directory (and its .hydra/) before the job runs: a sweep's summary
    # reads the refusal from its result.json.
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    TrainerEngine().run_job(make_config("train.learning_rate=-1"))
    assert json.loads((tmp_path / "run" / "result.json").read_text())["error_type"] == "config_error"
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == [".hydra", "result.json"]


def test_a_refused_config_leaves_an_existing_runs_result_alone(make_config, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "result.json").write_text('{"success": true}')
    TrainerEngine().run_job(make_config("train.learning_rate=-1"))
    assert (tmp_path / "run" / "result.json").read_text() == '{"success": true}'
