"""`distributed.nproc_per_node=N`: the job's own torchrun, into the job's own run directory."""

from __future__ import annotations

import json

from trainer.distributed.launch import torchrun_command
from trainer.run.outcome import EXIT_USER_ERROR


def test_torchrun_reruns_the_job_with_its_overrides_into_its_run_directory(make_config, tmp_path):
    config = make_config("distributed.nproc_per_node=4")
    command = torchrun_command(config, ["distributed.nproc_per_node=4", "train.learning_rate=1e-4"], "train")
    assert command[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", "-m"]
    assert command[6:] == [
        "trainer", "--config-name=train", "distributed.nproc_per_node=4", "train.learning_rate=1e-4",
        f"hydra.run.dir={tmp_path / 'run'}", "hydra.output_subdir=null",
    ]  # fmt: skip


def test_a_config_mistake_is_reported_once_before_any_process_starts(run_cli, tmp_path):
    missing = tmp_path / "nope.jsonl"
    completed = run_cli("distributed.nproc_per_node=2", f"data.train={missing}", "hydra.run.dir=run", cwd=tmp_path)
    assert completed.returncode == EXIT_USER_ERROR
    output = completed.stdout + completed.stderr
    assert output.count(f"data.train={missing} does not exist") == 1
    assert "torch.distributed.run" not in output
    assert json.loads((tmp_path / "run" / "result.json").read_text())["error_type"] == "config_error"
