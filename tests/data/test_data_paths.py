"""A data path is a regular file or a directory (saved by `datasets`, or a dataset repository);
anything else (a FIFO, a socket, a device) is refused by validation, before a byte of it is read."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import problems_of, trainer_command
from trainer.config.schema import SUPPORTED_FORMATS
from trainer.run.outcome import EXIT_USER_ERROR


def fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "chats.jsonl")
    return tmp_path / "chats.jsonl"


def link_to_a_fifo(tmp_path: Path) -> Path:
    (tmp_path / "link.jsonl").symlink_to(fifo(tmp_path))
    return tmp_path / "link.jsonl"


def character_device(tmp_path: Path) -> Path:
    return Path("/dev/zero")


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    with socket.socket(socket.AF_UNIX) as listening:

        def bound(directory: Path) -> Path:
            listening.bind(str(directory / "chats.jsonl"))
            return directory / "chats.jsonl"

        yield bound


NOT_REGULAR = f"not a regular file; use {SUPPORTED_FORMATS}"
REFUSALS = [
    (fifo, f"is a named pipe (FIFO), {NOT_REGULAR}"),
    (link_to_a_fifo, f"is a named pipe (FIFO), {NOT_REGULAR}"),
    (character_device, f"is a character device, {NOT_REGULAR}"),
]


@pytest.mark.parametrize("key", ["data.train", "data.validation"])
@pytest.mark.parametrize(("make", "problem"), REFUSALS, ids=[make.__name__ for make, _ in REFUSALS])
def test_a_data_path_that_is_no_regular_file_nor_saved_dataset_is_refused(make_config, tmp_path, key, make, problem):
    path = make(tmp_path)
    assert problems_of(make_config(f"{key}={path}")) == [f"{key}={path} {problem}"]


def test_a_socket_is_refused(make_config, tmp_path, unix_socket):
    path = unix_socket(tmp_path)
    [problem] = problems_of(make_config(f"data.train={path}"))
    assert problem.startswith(f"data.train={path} is a socket, not a regular file")


def test_a_fifo_as_data_ends_at_once_with_exit_2_and_writes_nothing(model_cache, tmp_path):
    """Before, reading the FIFO for the data's fingerprint waited for a writer forever."""
    path = fifo(tmp_path)
    command = trainer_command(model_cache, f"data.train={path}", f"run.output_dir={tmp_path / 'run'}")
    completed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert completed.returncode == EXIT_USER_ERROR, completed.stdout + completed.stderr
    assert f"data.train={path} is a named pipe (FIFO), not a regular file" in completed.stdout
    assert not (tmp_path / "run").exists()
