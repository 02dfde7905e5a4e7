"""`RunDirectory`: the one owner of a run's directory layout and of the files written into it."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
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


@dataclass(frozen=True)
class RunDirectory:
    root: Path

    @property
    def log_file(self) -> Path:
        return self.root / "trainer.log"

    @property
    def tensorboard_dir(self) -> Path:
        return self.root / "tensorboard"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def final_model_dir(self) -> Path:
        return self.root / "final_model"

    @property
    def tokenized_dir(self) -> Path:
        return self.root / "tokenized"

    @property
    def previews_file(self) -> Path:
        return self.root / "previews.jsonl"

    @property
    def preview_tensorboard_dir(self) -> Path:
        return self.tensorboard_dir / "previews"

    @property
    def result_file(self) -> Path:
        return self.root / "result.json"

    @property
    def env_file(self) -> Path:
        return self.root / "env.json"

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def read_result(self) -> dict[str, Any] | None:
        """result.json, or None where the run has not finished (or never started)."""
        try:
            return json.loads(self.result_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
