"""A refused or resumed run never damages a run that exists: through the CLI, as a user runs it."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import (
    file_hashes,
    patched_trainer,
    read_json,
    resume,
    trainer_command,
    tree_digest,
    wait_for,
)
from trainer.config.load import to_trainer_config
from trainer.data.loading import SAMPLE_DATA
from trainer.engine import TrainerEngine
from trainer.run.layout import RunDirectory
from trainer.run.outcome import EXIT_INTERRUPTED, EXIT_USER_ERROR
from trainer.run.resume import saved_config_resumed

pytestmark = pytest.mark.slow

RUN = ["train.max_steps=8", "train.save_steps=4", "train.logging_steps=1", "train.eval_steps=4"]


@pytest.fixture(scope="module")
def finished_run(run_cli, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished 8-step run with checkpoints 4 and 8; each test works on its own copy."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    completed = run_cli(*RUN, f"hydra.run.dir={run_dir}", cwd=run_dir.parent)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return run_dir


@pytest.fixture
def run_dir(finished_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def lose_the_end_of(run_dir: Path) -> None:
    """What a SIGTERM right after the last checkpoint leaves: no final model, an interrupted result."""
    shutil.rmtree(run_dir / "final_model")
    result = read_json(run_dir / "result.json") | {"success": False, "error_type": "interrupted"}
    (run_dir / "result.json").write_text(json.dumps(result))


def test_a_new_run_refused_over_an_existing_one_leaves_every_file_byte_identical(run_cli, run_dir):
    before = file_hashes(run_dir)
    refused = run_cli(
        f"hydra.run.dir={run_dir}", "train.weight_decay=0.3", "data.on_bad_record=skip", cwd=run_dir.parent
    )
    assert refused.returncode == EXIT_USER_ERROR
    assert refused.stderr == (
        f"{run_dir} already holds a run; continue it with `python -m trainer resume={run_dir}` "
        "or start a new run in another directory\n"
    )
    assert file_hashes(run_dir) == before


def test_a_resume_at_max_steps_trains_nothing_and_saves_the_final_model_of_the_checkpoint(run_dir, finished_run):
    lose_the_end_of(run_dir)
    resumed = resume(run_dir)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "checkpoint-8 is at train.max_steps=8: no step left to train" in resumed.stdout
    assert "Run completed: 8 steps" in resumed.stdout
    result = read_json(run_dir / "result.json")
    assert result["success"] and result["global_step"] == 8
    # No step ran in this segment: no tokens/s, rather than all the run's tokens over no time.
    assert result["summary"]["tokens_per_sec"] is None
    weights = "final_model/model.safetensors"
    assert (run_dir / weights).read_bytes() == (finished_run / weights).read_bytes()


def test_a_resume_below_the_checkpoint_is_refused_and_writes_nothing(run_dir):
    before = file_hashes(run_dir)
    refused = resume(run_dir, "train.max_steps=4")
    assert refused.returncode == EXIT_USER_ERROR
    assert refused.stderr == (
        f"Cannot resume with train.max_steps=4: {run_dir} has trained 8 steps "
        f"({run_dir / 'checkpoints' / 'checkpoint-8'}); give train.max_steps=8 or more\n"
    )
    assert file_hashes(run_dir) == before


def test_an_emptied_newest_checkpoint_falls_back_to_the_previous_one_and_ends_as_the_run_did(run_dir, finished_run):
    lose_the_end_of(run_dir)
    (run_dir / "checkpoints" / "checkpoint-8" / "optimizer.pt").write_bytes(b"")
    resumed = resume(run_dir)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Skipping " in resumed.stdout and "optimizer.pt is 0 bytes" in resumed.stdout
    assert f"Resuming from {run_dir / 'checkpoints' / 'checkpoint-4'}" in resumed.stdout
    result = read_json(run_dir / "result.json")
    assert result["global_step"] == 8
    # tokens/s counts the 4 steps of this segment only, not the 8 of the whole run.
    tokens_at_4 = read_json(finished_run / "checkpoints" / "checkpoint-4" / "trainer_state.json")
    summary = result["summary"]
    assert summary["segment_tokens"] == summary["train_tokens_seen"] - tokens_at_4["num_input_tokens_seen"]
    assert result["final_loss"] == pytest.approx(read_json(finished_run / "result.json")["final_loss"], abs=1e-5)


def test_multirun_resume_is_refused_with_the_sweep_resume_to_use(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "trainer", "--multirun", f"resume={tmp_path}"], capture_output=True, text=True
    )
    assert completed.returncode == EXIT_USER_ERROR
    assert (
        completed.stderr == f"Cannot resume a sweep with --multirun: use `python -m trainer.sweep resume={tmp_path}`\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_start_up_ends_the_run_as_interrupted(model_cache, tmp_path):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        trainer_command(model_cache, *RUN, f"hydra.run.dir={run_dir}"),
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for(lambda: (run_dir / "status.json").exists(), process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=300) == EXIT_INTERRUPTED
    result = read_json(run_dir / "result.json")
    assert result["error_type"] == "interrupted" and result["error_message"].startswith("Stopped by SIGTERM")
    assert read_json(run_dir / "status.json")["status"] == "interrupted"


@pytest.mark.long
def test_a_resume_on_changed_data_is_refused_unless_allowed_and_then_recorded(run_cli, tmp_path):
    data = tmp_path / "chats.jsonl"
    shutil.copy(SAMPLE_DATA, data)
    run_dir = tmp_path / "run"
    first = run_cli(*RUN, "train.max_steps=4", f"data.train={data}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    data.write_text("".join(data.read_text().splitlines(keepends=True)[1:]))
    before = tree_digest(run_dir)

    refused = resume(run_dir, "train.max_steps=6")
    assert refused.returncode == EXIT_USER_ERROR
    assert f"Cannot resume: the data changed since the run started ({data}); resume with data.allow_changed=true" in (
        refused.stderr
    )
    assert tree_digest(run_dir) == before

    allowed = resume(run_dir, "train.max_steps=6", "data.allow_changed=true")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert f"Resuming on changed data (data.allow_changed=true): {data}" in allowed.stdout
    record = read_json(run_dir / "data.json")
    assert [len(files) for files in record["allowed_changes"]] == [1]
    assert read_json(run_dir / "result.json")["global_step"] == 6


def with_free_disk_space(mebibytes: float) -> str:
    """A process whose disk reports `mebibytes` free."""
    return (
        "import shutil; real = shutil.disk_usage; "
        f"shutil.disk_usage = lambda path: real(path)._replace(free={int(mebibytes * 2**20)})"
    )


@pytest.mark.long
def test_a_resume_refused_for_disk_space_writes_nothing_and_counts_only_what_it_adds(run_dir):
    before = tree_digest(run_dir)
    refused = patched_trainer(with_free_disk_space(1), f"resume={run_dir}", "train.max_steps=10", cwd=run_dir.parent)
    assert refused.returncode == EXIT_USER_ERROR
    assert refused.stderr.startswith(f"Not enough disk space in {run_dir}: 1 MiB free")
    assert tree_digest(run_dir) == before

    # Its two checkpoints and final model are on disk already: one more checkpoint is all it adds.
    checkpoint = sum(path.stat().st_size for path in (run_dir / "checkpoints" / "checkpoint-8").iterdir())
    enough = patched_trainer(
        with_free_disk_space(1.5 * checkpoint / 2**20), f"resume={run_dir}", "train.max_steps=10", cwd=run_dir.parent
    )
    assert enough.returncode == 0, enough.stdout + enough.stderr
    assert read_json(run_dir / "result.json")["global_step"] == 10


DISK_FULL = {
    "OSError": "OSError(errno.ENOSPC, 'No space left on device')",
    "torch's zip writer": "RuntimeError('[enforce fail at inline_container.cc:672] . unexpected pos 4480 vs 4374')",
}


@pytest.mark.long
@pytest.mark.parametrize("raised", DISK_FULL.values(), ids=DISK_FULL.keys())
def test_a_full_disk_during_a_checkpoint_save_is_a_user_error_and_keeps_the_previous_checkpoint(
    model_cache, tmp_path, raised
):
    run_dir = tmp_path / "run"
    # The optimizer state of every checkpoint after the first fails to write.
    patch = (
        "import errno, torch; real = torch.save; saved = []\n"
        "def save(value, file, *args, **kwargs):\n"
        "    if str(file).endswith('optimizer.pt'):\n"
        "        if saved: raise " + raised + "\n"
        "        saved.append(file)\n"
        "    real(value, file, *args, **kwargs)\n"
        "torch.save = save"
    )
    full = patched_trainer(
        patch, f"model.cache_dir={model_cache}", *RUN, "train.max_steps=4", "train.save_steps=2",
        f"hydra.run.dir={run_dir}", cwd=tmp_path,
    )  # fmt: skip
    assert full.returncode == EXIT_USER_ERROR, full.stdout + full.stderr
    checkpoints = run_dir / "checkpoints"
    assert f"The disk is full: writing {checkpoints / 'checkpoint-4'} needs about " in full.stdout
    assert f"the newest checkpoint, {checkpoints / 'checkpoint-2'}, is intact" in full.stdout
    assert "Traceback" not in full.stdout + full.stderr
    assert RunDirectory(run_dir).newest_checkpoint() == str(checkpoints / "checkpoint-2")
    assert not (checkpoints / "checkpoint-4").exists()
    assert read_json(run_dir / "result.json")["error_type"] == "disk_full"


def test_a_resume_refused_by_its_config_writes_nothing(run_dir):
    saved = run_dir / ".hydra" / "config.yaml"
    saved.write_text(saved.read_text().replace("learning_rate: 0.002", "learning_rate: -1"))
    before = tree_digest(run_dir)
    refused = resume(run_dir, "train.max_steps=10")
    assert refused.returncode == EXIT_USER_ERROR
    assert refused.stderr == "Invalid configuration: train.learning_rate must be > 0 (got -1.0)\n"
    assert tree_digest(run_dir) == before


def test_a_resume_from_python_refused_for_disk_space_writes_nothing(run_dir, monkeypatch):
    config = to_trainer_config(saved_config_resumed(run_dir, ["train.max_steps=10"]))
    before = tree_digest(run_dir)
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=2**20))
    result = TrainerEngine().run_job(config)
    assert (result.success, result.user_error) == (False, True)
    assert result.error_message.startswith(f"Not enough disk space in {run_dir}: 1 MiB free")
    assert tree_digest(run_dir) == before
