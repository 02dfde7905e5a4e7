"""The disk a run writes to: the space it will add, checked before it starts (a resume's from the
checkpoints already on disk, before anything is written), and a disk that fills while it saves,
reported as what the user can fix instead of a library's crash."""

from __future__ import annotations

import errno
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.errors import DiskFullError, UserError, first_line
from trainer.run.layout import CHECKPOINT_NAME, RunDirectory

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# AdamW keeps two fp32 moments per trainable parameter.
OPTIMIZER_BYTES_PER_PARAMETER = 8
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# How libraries report a full disk without an errno: torch's zip writer ("[enforce fail at
# inline_container.cc:672] . unexpected pos", "file write failed") and safetensors' Rust errors.
DISK_FULL_WORDS = (
    "unexpected pos",
    "file write failed",
    "No space left on device",
    "Disk quota exceeded",
    "StorageFull",
)
# The weights of a saved model (or adapter), as transformers and peft name them.
WEIGHT_FILE_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "adapter_model*.bin")
MIB = 2**20


def model_sizes(model: PreTrainedModel) -> tuple[int, int]:
    """(bytes of a checkpoint, bytes of the weights alone) of `model`, before one is saved:
    weights plus two AdamW states per trainable parameter."""
    weights = sum(parameter.numel() * parameter.element_size() for parameter in model.parameters())
    trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    return weights + trainable * OPTIMIZER_BYTES_PER_PARAMETER, weights


def checkpoint_bytes(run_dir: RunDirectory, model: PreTrainedModel) -> int:
    """What a checkpoint of the run takes: as the newest one saved, else as estimated."""
    newest = run_dir.newest_checkpoint()
    return saved_sizes(Path(newest))[0] if newest else model_sizes(model)[0]


def saved_sizes(checkpoint: Path) -> tuple[int, int]:
    """(bytes of a checkpoint, bytes of its weights) as saved on disk."""
    weights = sum(directory_bytes(path) for pattern in WEIGHT_FILE_PATTERNS for path in checkpoint.glob(pattern))
    return directory_bytes(checkpoint), weights


def directory_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def require_space_for(
    run_dir: RunDirectory, checkpoints: int, checkpoint: int, weights: int, save_total_limit: int
) -> None:
    """Refuse to start when the disk cannot hold `checkpoints` more checkpoints and, with `weights`,
    a final model."""
    needed = checkpoints * checkpoint + weights
    free = shutil.disk_usage(run_dir.root).free
    if free < needed:
        final_model = " and the final model" if weights else ""
        raise UserError(
            f"Not enough disk space in {run_dir.root}: {free / MIB:,.0f} MiB free, about {needed / MIB:,.0f} MiB "
            f"needed for {checkpoints} more checkpoint(s) (train.save_total_limit={save_total_limit}){final_model}"
        )


def check_space_for_new_run(run_dir: RunDirectory, model: PreTrainedModel, save_total_limit: int) -> None:
    """Refuse to start when the disk cannot hold what the run will write, estimated from the model:
    its checkpoints, one more while a save rotates out the oldest, and the final model."""
    checkpoint, weights = model_sizes(model)
    require_space_for(run_dir, save_total_limit + 1, checkpoint, weights, save_total_limit)


def check_space_for_resume(run_dir: RunDirectory, checkpoint: str, save_total_limit: int, steps_left: bool) -> None:
    """Refuse a resume the disk cannot hold, from its checkpoints on disk (read, never written):
    only what it adds counts, not the checkpoints and final model already there."""
    size, weights = saved_sizes(Path(checkpoint))
    kept = sum(1 for path in run_dir.checkpoints_dir.iterdir() if CHECKPOINT_NAME.fullmatch(path.name))
    new_checkpoints = max(0, save_total_limit + 1 - kept) if steps_left else 0
    final_model = 0 if run_dir.final_model_dir.is_dir() else weights
    require_space_for(run_dir, new_checkpoints, size, final_model, save_total_limit)


def is_disk_full(error: BaseException | None) -> bool:
    """Whether `error`, or one it was raised from, says the disk (or the user's quota) is full."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
            return True
        if any(words in str(error) for words in DISK_FULL_WORDS):
            return True
        error = error.__cause__ or error.__context__
    return False


@contextmanager
def disk_full_reported(run_dir: RunDirectory, target: Path, needed: Callable[[], int]) -> Iterator[None]:
    """A full disk while writing `target` raises `DiskFullError`, naming the path, the space it
    needs (`needed()` bytes) and the checkpoint a resume continues from; other errors pass."""
    try:
        yield
    except Exception as error:
        if not is_disk_full(error):
            raise
        free = shutil.disk_usage(run_dir.root).free
        newest = run_dir.newest_checkpoint()
        intact = (
            f"the newest checkpoint, {newest}, is intact: free space, then `python -m trainer resume={run_dir.root}`"
            if newest
            else "no checkpoint was saved before it"
        )
        raise DiskFullError(
            f"The disk is full: writing {target} needs about {needed() / MIB:,.1f} MiB, {free / MIB:,.1f} MiB free "
            f"({type(error).__name__}: {first_line(error)}); {intact}"
        ) from error
