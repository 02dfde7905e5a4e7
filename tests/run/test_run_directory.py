"""The run directory's claim, its checkpoints, and the checks made before a run starts."""

from __future__ import annotations

import fcntl
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

import trainer.engine
from trainer.errors import UserError
from trainer.run.layout import RunDirectory, checkpoint_step, write_checkpoint_manifest


def test_a_directory_is_never_shared_by_two_live_runs(tmp_path):
    run_dir = RunDirectory(tmp_path / "run")
    with (
        run_dir.claim(resume=False),
        pytest.raises(UserError, match="is in use by another run"),
        run_dir.claim(resume=True),
    ):
        pass


def test_a_finished_run_is_not_overwritten_unless_resumed(tmp_path):
    run_dir = RunDirectory(tmp_path / "run")
    run_dir.create()
    run_dir.result_file.write_text("{}")
    refused = pytest.raises(UserError, match="already holds a run; continue it with `python -m trainer resume=")
    with refused, run_dir.claim(resume=False):
        pass
    with run_dir.claim(resume=True):
        pass


def test_an_unwritable_run_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with (
        pytest.raises(UserError, match="Cannot create or write the run directory"),
        RunDirectory(blocker / "run").claim(False),
    ):
        pass


def make_checkpoint(run_dir: RunDirectory, name: str) -> Path:
    checkpoint = run_dir.checkpoints_dir / name
    checkpoint.mkdir(parents=True)
    (checkpoint / "optimizer.pt").write_bytes(b"state")
    write_checkpoint_manifest(checkpoint)
    return checkpoint


def test_the_newest_complete_checkpoint_wins_and_its_owner_removes_a_half_save(tmp_path):
    run_dir = RunDirectory(tmp_path)
    for name in ("checkpoint-4", "checkpoint-12", "checkpoint-8", ".staging/checkpoint-16"):
        make_checkpoint(run_dir, name)
    newest = run_dir.newest_checkpoint()
    assert newest == str(run_dir.checkpoints_dir / "checkpoint-12")
    assert checkpoint_step(newest) == 12
    run_dir.remove_unfinished_save()
    assert not (run_dir.checkpoints_dir / ".staging").exists()
    assert RunDirectory(tmp_path / "empty").newest_checkpoint() is None


def test_a_checkpoint_that_is_not_whole_is_skipped_for_the_newest_complete_one(tmp_path, caplog):
    run_dir = RunDirectory(tmp_path)
    make_checkpoint(run_dir, "checkpoint-4")
    (make_checkpoint(run_dir, "checkpoint-8") / "optimizer.pt").write_bytes(b"")
    (run_dir.checkpoints_dir / "checkpoint-12").mkdir()
    assert run_dir.newest_checkpoint() == str(run_dir.checkpoints_dir / "checkpoint-4")
    assert [record.getMessage().split(": ", 1)[1] for record in caplog.records] == [
        "it has neither manifest.json nor trainer_state.json",
        "optimizer.pt is 0 bytes, not 5",
    ]


def test_a_checkpoint_saved_before_manifests_is_resumed_from_when_its_files_are_not_empty(tmp_path):
    run_dir = RunDirectory(tmp_path)
    for name in ("checkpoint-4", "checkpoint-8"):
        legacy = make_checkpoint(run_dir, name)
        (legacy / "manifest.json").unlink()
        (legacy / "trainer_state.json").write_text("{}")
    assert run_dir.newest_checkpoint() == str(run_dir.checkpoints_dir / "checkpoint-8")
    (run_dir.checkpoints_dir / "checkpoint-8" / "optimizer.pt").write_bytes(b"")
    assert run_dir.newest_checkpoint() == str(run_dir.checkpoints_dir / "checkpoint-4")


def test_a_claim_made_before_hydra_refuses_a_directory_holding_a_saved_config(tmp_path):
    run_dir = RunDirectory(tmp_path)
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("seed: 1\n")
    with pytest.raises(UserError, match="already holds a run"), run_dir.claim(resume=False, before_hydra=True):
        pass
    # Claimed before Hydra, the directory is the job's own when its engine claims it.
    with run_dir.claim(resume=True, before_hydra=True), run_dir.claim(resume=False):
        pass


def test_saves_go_through_staging_and_keep_the_newest_save_total_limit(make_config):
    config = make_config("train.max_steps=6", "train.save_steps=2", "train.save_total_limit=2")
    result = trainer.engine.TrainerEngine().run_job(config)
    checkpoints = RunDirectory(Path(config.run.output_dir)).checkpoints_dir
    assert result.success
    assert sorted(path.name for path in checkpoints.iterdir()) == ["checkpoint-4", "checkpoint-6"]
    assert (checkpoints / "checkpoint-6" / "manifest.json").is_file()


def test_a_disk_too_small_for_the_checkpoints_is_refused_before_training(make_config, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 2**20, 2**20))
    result = trainer.engine.TrainerEngine().run_job(make_config())
    assert not result.success and result.user_error and result.global_step == 0
    assert result.error_message.startswith("Not enough disk space in ")
    assert "MiB needed for 3 more checkpoint(s) (train.save_total_limit=2) and the final model" in result.error_message


def test_a_claim_made_before_hydra_can_be_handed_to_the_jobs_own_torchrun(tmp_path):
    run_dir = RunDirectory(tmp_path / "run")
    with run_dir.claim(resume=False, before_hydra=True), (run_dir.root / ".lock").open() as lock:
        with pytest.raises(BlockingIOError):
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        run_dir.hand_over_claim()
        # The lock torchrun's rank 0 takes, from its own process, is free now.
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
