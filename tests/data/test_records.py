"""Record tables' scratch files: beside the tokenized cache, gone with the tables that use them
(or once the cache keeps the table), and swept by the next run when a killed process could not
remove them."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

from trainer.config.schema import DataConfig, ProfileConfig
from trainer.data.records import SCRATCH_PREFIX, ScratchDirectory
from trainer.data.split import load_record_split
from trainer.profiles.plain import PlainProfile

PROFILE = PlainProfile(ProfileConfig(), seed=0)
# Reads the sample data with its scratch in the temporary directory, then dies as `kill -9` would.
KILLED_SCRIPT = """
import os, signal
from trainer.config.schema import DataConfig, ProfileConfig
from trainer.data.split import load_record_split
from trainer.profiles.plain import PlainProfile
split = load_record_split(DataConfig(cache=False), PlainProfile(ProfileConfig(), seed=0), seed=0)
os.kill(os.getpid(), signal.SIGKILL)
"""


def scratch_dirs(parent: Path) -> list[Path]:
    return sorted(parent.glob(f"{SCRATCH_PREFIX}*"))


def temporary_directory(path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(path))
    monkeypatch.setattr("tempfile.tempdir", None)


def test_the_records_scratch_lives_as_long_as_the_split(tmp_path, monkeypatch):
    temporary_directory(tmp_path, monkeypatch)
    split = load_record_split(DataConfig(cache=False), PROFILE, seed=0)
    (scratch,) = scratch_dirs(tmp_path)
    assert list(scratch.glob("checked*.arrow")) and not (scratch / "lines.arrow").exists()
    del split
    gc.collect()
    assert not scratch.exists()


def test_with_the_cache_the_checked_records_live_in_its_entry_and_no_scratch_is_left(tmp_path):
    split = load_record_split(DataConfig(cache_dir=str(tmp_path)), PROFILE, seed=0)
    gc.collect()
    assert not scratch_dirs(tmp_path) and len(split.train) > 0
    (entry,) = (path for path in (tmp_path / "records").iterdir() if path.is_dir())
    assert [Path(file["filename"]).parent for file in split.train.dataset.cache_files] == [entry]


def test_with_the_cache_off_the_records_scratch_is_a_temporary_directory(tmp_path, monkeypatch):
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr("tempfile.tempdir", None)
    split = load_record_split(DataConfig(cache=False, cache_dir=str(tmp_path / "cache")), PROFILE, seed=0)
    assert len(scratch_dirs(tmp_path / "tmp")) == 1 and not (tmp_path / "cache").exists()
    assert len(split.train) > 0


def test_the_scratch_a_killed_process_left_is_removed_by_the_next_run(tmp_path, monkeypatch):
    temporary_directory(tmp_path, monkeypatch)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = subprocess.run([sys.executable, "-c", KILLED_SCRIPT], env=environment, check=False)
    assert killed.returncode == -9
    (left,) = scratch_dirs(tmp_path)
    split = load_record_split(DataConfig(cache=False), PROFILE, seed=0)
    assert not left.exists() and len(scratch_dirs(tmp_path)) == 1 and len(split.train) > 0


def test_the_scratch_of_a_live_table_is_never_swept(tmp_path):
    first = ScratchDirectory(tmp_path)
    second = ScratchDirectory(tmp_path)
    assert first.path.is_dir() and second.path.is_dir() and first.path != second.path
