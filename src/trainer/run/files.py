"""Files and directories read by others while being written (status.json, result.json, manifests,
checkpoints, cache entries, built models): written aside and renamed into place."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def write_text_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def read_json(path: Path) -> Any | None:
    """A JSON file written by `write_json_atomic`, or None where there is none (or none readable)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@contextmanager
def staged_directory(target: Path, scratch: Path | None = None, replace: bool = False) -> Iterator[Path]:
    """Build the directory `target` in `scratch` (by default a fresh hidden directory beside it) and
    rename it to `target` when the block completes: a reader finds `target` whole or not at all,
    and an error removes the scratch instead. With `replace` an older `target` gives way; without,
    the rename fails (OSError) where another process has put a `target` in place first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if scratch is None:
        scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.staging-"))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        yield scratch
        if replace:
            shutil.rmtree(target, ignore_errors=True)
        scratch.rename(target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
