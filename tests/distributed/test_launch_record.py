"""What the launcher records for an outcome no rank got to write: as the harness records a refused
job, result.json goes only into a directory made for the job, never into a run's."""

from __future__ import annotations

import json
import sys

import pytest

import trainer.distributed.launch
from trainer.distributed.launch import run_under_torchrun

# The directory of a job before it starts: made for it (by Hydra, with its .hydra/), or a run's.
DIRECTORIES = {
    "made for the job": {".hydra/config.yaml": "{}"},
    "a finished run's": {"result.json": '{"success": true}'},
    "a killed run's": {"status.json": '{"status": "training"}', "checkpoints/checkpoint-2/model.safetensors": ""},
}
OUTCOMES = {
    "a config mistake": ("train.learning_rate=-1", "config_error"),
    "torchrun failing": ("train.learning_rate=1e-4", "launch_failed"),
}


@pytest.fixture
def failing_torchrun(monkeypatch):
    """torchrun stands for a launch that dies before any rank writes anything."""
    monkeypatch.setattr(
        trainer.distributed.launch,
        "torchrun_command",
        lambda *arguments: [sys.executable, "-c", "raise SystemExit(1)"],
    )


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("directory", DIRECTORIES)
def test_the_launcher_records_a_failure_only_in_a_directory_made_for_the_job(
    make_config, tmp_path, failing_torchrun, directory, outcome
):
    run_dir = tmp_path / "run"
    for name, content in DIRECTORIES[directory].items():
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_text(content)
    override, error_type = OUTCOMES[outcome]
    config = make_config("distributed.nproc_per_node=2", override)

    result = run_under_torchrun(config, [], "train")

    assert (result.success, result.error_type) == (False, error_type)
    if directory == "made for the job":
        assert json.loads((run_dir / "result.json").read_text())["error_type"] == error_type
    else:
        files = {str(path.relative_to(run_dir)): path.read_text() for path in run_dir.rglob("*") if path.is_file()}
        assert files == DIRECTORIES[directory]
