"""A tokenized-data cache directory that cannot be written is a user error (exit 2) naming the keys
that fix it, data.cache_dir and data.cache=false; with the cache off the run does not need it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import trainer_command
from trainer.run.outcome import EXIT_USER_ERROR


def train(model_cache: Path, tmp_path: Path, environ: dict[str, str], *overrides: str) -> subprocess.CompletedProcess:
    command = trainer_command(model_cache, "train.max_steps=1", f"run.output_dir={tmp_path / 'run'}", *overrides)
    return subprocess.run(command, cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=600)


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    """Root ignores permission bits, not this: a directory cannot be made under a regular file."""
    file = tmp_path / "not-a-directory"
    file.write_text("")
    return file


@pytest.mark.parametrize("where", ["default", "data.cache_dir"])
def test_an_unwritable_cache_directory_is_a_user_error_naming_the_keys(model_cache, tmp_path, a_file, where):
    environ = {**os.environ, "XDG_CACHE_HOME": str(a_file / "cache")}
    overrides = [f"data.cache_dir={a_file / 'tokenized'}"] if where == "data.cache_dir" else []
    completed = train(model_cache, tmp_path, environ, *overrides)
    assert completed.returncode == EXIT_USER_ERROR, completed.stdout + completed.stderr
    errors = [line for line in completed.stdout.splitlines() if "[ERROR]" in line]
    assert any("data.cache_dir" in line and "data.cache=false" in line and str(a_file) in line for line in errors)
    assert "Traceback" not in completed.stdout + completed.stderr
    assert json.loads((tmp_path / "run" / "result.json").read_text())["user_error"]


def test_with_the_cache_off_an_unwritable_cache_directory_is_never_used(model_cache, tmp_path, a_file):
    environ = {**os.environ, "XDG_CACHE_HOME": str(a_file / "cache")}
    completed = train(model_cache, tmp_path, environ, "data.cache=false", "monitoring.tensorboard=false")
    assert completed.returncode == 0, completed.stdout + completed.stderr
