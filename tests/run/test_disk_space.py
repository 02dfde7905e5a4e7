"""A full disk is recognised however a library reports it, and nothing else is taken for one."""

from __future__ import annotations

import errno

import pytest

from trainer.run.disk_space import is_disk_full


def raised_from(cause: BaseException) -> RuntimeError:
    try:
        raise RuntimeError("saving the checkpoint failed") from cause
    except RuntimeError as error:
        return error


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4480 vs 4374"),
        RuntimeError(
            "[enforce fail at inline_container.cc:858] . PytorchStreamWriter failed writing file data/3: file write failed"
        ),
        Exception(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        ),
        raised_from(OSError(errno.ENOSPC, "No space left on device")),
    ],
    ids=["ENOSPC", "EDQUOT", "torch unexpected pos", "torch write failed", "safetensors", "as a cause"],
)
def test_a_full_disk_is_recognised_however_it_is_reported(error):
    assert is_disk_full(error)


@pytest.mark.parametrize(
    "error", [OSError(errno.EACCES, "Permission denied"), RuntimeError("CUDA out of memory"), ValueError("bad")]
)
def test_other_errors_are_not_taken_for_a_full_disk(error):
    assert not is_disk_full(error)
