"""`RunDirectory`: the one owner of a run's directory layout and of the files written into it."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.errors import UserError
from trainer.overrides import tensorboard_run_name

# Where a checkpoint is written before it is renamed into checkpoints/: a kill during a save leaves
# only this, never a checkpoint-N that looks complete but is not.
CHECKPOINT_STAGING = ".staging"
CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")


def checkpoint_step(checkpoint: str | None) -> int | None:
    """The global step a checkpoint directory was saved at."""
    return int(CHECKPOINT_NAME.fullmatch(Path(checkpoint).name).group(1)) if checkpoint else None


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

    def log_file_of(self, rank: int) -> Path:
        """trainer.log for rank 0 (the only one of a single process); trainer.rankN.log for the others."""
        return self.log_file if rank == 0 else self.root / f"trainer.rank{rank}.log"

    @property
    def tensorboard_dir(self) -> Path:
        """The run's event files, in a directory named after the overrides that set the run apart:
        TensorBoard names a run by its directory, so `tensorboard --logdir multirun/DATE/TIME`
        shows `0/tensorboard/profile=plain,train.learning_rate=0.001`, not `0/tensorboard`."""
        return self.root / "tensorboard" / tensorboard_run_name(self.root)

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
    def merged_model_dir(self) -> Path:
        """Base + adapter as one full model, written when `peft.merge_on_save` is on."""
        return self.final_model_dir / "merged"

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

    @property
    def status_file(self) -> Path:
        return self.root / "status.json"

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def claim(self, resume: bool) -> Iterator[None]:
        """Hold the directory for one job: never shared by two live runs, and never a second run
        over a finished or started one unless it resumes it."""
        try:
            self.create()
            lock = (self.root / ".lock").open("w")
        except OSError as error:
            raise UserError(f"Cannot write the run directory {self.root}: {error.strerror}") from error
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as error:
                raise UserError(f"{self.root} is in use by another run") from error
            if not resume and self.holds_run():
                raise UserError(
                    f"{self.root} already holds a run; continue it with `python -m trainer resume={self.root}` "
                    "or start a new run in another directory"
                )
            yield

    def holds_run(self) -> bool:
        return self.result_file.exists() or self.status_file.exists() or self.checkpoints_dir.exists()

    def newest_checkpoint(self) -> str | None:
        """The newest complete checkpoint; an interrupted save's leftovers are removed."""
        shutil.rmtree(self.checkpoints_dir / CHECKPOINT_STAGING, ignore_errors=True)
        steps = {
            int(match.group(1)): path
            for path in (self.checkpoints_dir.iterdir() if self.checkpoints_dir.is_dir() else ())
            if (match := CHECKPOINT_NAME.fullmatch(path.name)) and path.is_dir()
        }
        return str(steps[max(steps)]) if steps else None

    def read_result(self) -> dict[str, Any] | None:
        """result.json, or None where the run has not finished (or never started)."""
        try:
            return json.loads(self.result_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
