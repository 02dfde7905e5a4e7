"""Two CPU processes (gloo) training the tiny model, started by torchrun directly and by
`distributed.nproc_per_node=2`: one run directory, rank 0's files, one global batch, one model."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from trainer.distributed.strategy import parameter_checksum

pytestmark = pytest.mark.slow

PER_DEVICE_BATCH = 4
SHORT_RUN = [
    "train.max_steps=4", "train.logging_steps=1", "train.eval_steps=4", "train.save_steps=4",
    f"train.per_device_train_batch_size={PER_DEVICE_BATCH}", "monitoring.status_interval_sec=0",
]  # fmt: skip
LAUNCHES = {
    # --standalone: a free port, where the bare `torchrun --nproc_per_node=2` takes 29500.
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "trainer"],
    "nproc_per_node": [sys.executable, "-m", "trainer", "distributed.nproc_per_node=2"],
}
CHECKSUM = re.compile(r"Parameter checksum on rank (\d): (\w+)")


@pytest.fixture(scope="module", params=list(LAUNCHES))
def workdir(request, model_cache, tmp_path_factory) -> Path:
    """The directory a two-process run was started in, as a user would start it."""
    workdir = tmp_path_factory.mktemp(request.param)
    completed = subprocess.run(
        [*LAUNCHES[request.param], *SHORT_RUN, f"model.cache_dir={model_cache}"],
        cwd=workdir, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return workdir


@pytest.fixture(scope="module")
def run_dir(workdir) -> Path:
    (only,) = (workdir / "outputs").glob("*/*")
    return only


def test_both_ranks_write_into_one_run_directory(workdir):
    assert [path.relative_to(workdir).parts[0] for path in workdir.iterdir()] == ["outputs"]
    assert len(list((workdir / "outputs").glob("*/*"))) == 1


def test_one_result_json_reports_success(run_dir):
    result = json.loads((run_dir / "result.json").read_text())
    assert result["success"] is True and result["global_step"] == 4
    assert json.loads((run_dir / "status.json").read_text())["status"] == "completed"


def test_rank_zero_alone_writes_tensorboard_and_the_other_rank_logs_to_its_own_file(run_dir):
    writers = {path.name.split(".")[-2] for path in (run_dir / "tensorboard").rglob("events.out.tfevents.*")}
    assert len(writers) == 1  # one process id in every event file's name, wherever it is
    assert sorted(path.name for path in run_dir.glob("trainer*.log")) == ["trainer.log", "trainer.rank1.log"]
    assert "Parameter checksum on rank 0" in (run_dir / "trainer.log").read_text()
    assert "Parameter checksum on rank 1" in (run_dir / "trainer.rank1.log").read_text()


def test_each_step_takes_one_batch_from_each_rank(run_dir):
    examples = json.loads((run_dir / "result.json").read_text())["summary"]["train_examples"]
    history = json.loads((run_dir / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]
    steps = [entry for entry in history if "loss" in entry]
    assert [entry["step"] for entry in steps] == [1, 2, 3, 4]
    assert {round(entry["epoch"] * examples / entry["step"]) for entry in steps} == {2 * PER_DEVICE_BATCH}


def test_both_ranks_end_with_the_parameters_of_the_saved_model(run_dir):
    logs = (run_dir / "trainer.log").read_text() + (run_dir / "trainer.rank1.log").read_text()
    checksums = dict(CHECKSUM.findall(logs))
    saved = parameter_checksum(AutoModelForCausalLM.from_pretrained(run_dir / "final_model"))
    assert checksums == {"0": saved, "1": saved}
