"""A run saved before a key was renamed stays resumable: its saved config is read under the new name."""

from __future__ import annotations

import logging

import pytest
from omegaconf import OmegaConf

from tests.helpers import read_json, resume
from trainer.config import load
from trainer.config.load import KeyRename, load_saved_config, to_trainer_config
from trainer.errors import ConfigError


@pytest.fixture
def saved_config(tmp_path):
    """Write `text` as a run's .hydra/config.yaml and return its path."""

    def write(text: str):
        path = tmp_path / ".hydra" / "config.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write


def test_a_renamed_key_is_read_under_its_new_name_and_logged(monkeypatch, saved_config, caplog):
    monkeypatch.setattr(load, "KEY_RENAMES", (KeyRename("train.lr", "train.learning_rate", "2026-12-01"),))
    path = saved_config("train:\n  lr: 0.0007\n  max_steps: 5\nrun:\n  output_dir: out\n")
    with caplog.at_level(logging.INFO, logger="trainer.config.load"):
        config = to_trainer_config(load_saved_config(path))
    assert (config.train.learning_rate, config.train.max_steps) == (pytest.approx(7e-4), 5)
    assert caplog.messages == [f"{path}: read train.lr as train.learning_rate, its name since 2026-12-01"]


def test_a_new_key_already_present_wins_over_the_old_one(monkeypatch, saved_config):
    monkeypatch.setattr(load, "KEY_RENAMES", (KeyRename("train.lr", "train.learning_rate", "2026-12-01"),))
    path = saved_config("train:\n  lr: 0.0007\n  learning_rate: 0.003\nrun:\n  output_dir: out\n")
    assert to_trainer_config(load_saved_config(path)).train.learning_rate == pytest.approx(3e-3)


def test_a_section_renamed_as_a_whole_moves_with_its_keys(monkeypatch, saved_config):
    monkeypatch.setattr(load, "KEY_RENAMES", (KeyRename("training", "train", "2026-12-01"),))
    path = saved_config("training:\n  max_steps: 9\nrun:\n  output_dir: out\n")
    assert to_trainer_config(load_saved_config(path)).train.max_steps == 9


def test_keys_never_renamed_are_still_refused(saved_config):
    path = saved_config("train:\n  lr: 0.0007\nrun:\n  output_dir: out\n")
    with pytest.raises(ConfigError) as caught:
        to_trainer_config(load_saved_config(path))
    assert caught.value.problems == ["train.lr: Key 'lr' not in 'TrainConfig'"]


def test_the_shipped_table_reads_sweep_skip_completed_as_run_resume(saved_config):
    migrated = load_saved_config(saved_config("sweep:\n  skip_completed: true\nrun:\n  output_dir: out\n"))
    assert OmegaConf.to_container(migrated) == {"sweep": {}, "run": {"output_dir": "out", "resume": True}}


@pytest.mark.slow
def test_a_run_saved_with_an_old_key_resumes(run_cli, tmp_path):
    run_dir = tmp_path / "run"
    completed = run_cli("train.max_steps=2", "train.save_steps=2", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    # The run as a trainer from before the rename (f8a036e) saved it: sweep.skip_completed, no run.resume.
    saved = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    del saved.run["resume"]
    saved.sweep.skip_completed = False
    OmegaConf.save(saved, run_dir / ".hydra" / "config.yaml")

    resumed = resume(run_dir, "train.max_steps=3")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "read sweep.skip_completed as run.resume" in resumed.stdout
    assert read_json(run_dir / "result.json")["global_step"] == 3
