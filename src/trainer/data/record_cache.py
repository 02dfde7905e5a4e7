"""Checked records kept in the shared cache, found again by the quick fingerprint of the file
they were read from: a rerun, resume or sweep job on an unchanged file reads and checks none of
its records again, and memory-maps the table the first run wrote.

The quick fingerprint is the file's size, its modification time in nanoseconds and a digest of
`SAMPLES` blocks spread over its content, each file of a saved-dataset directory alike. Any write
through the file system moves the modification time, so a changed file gets a new fingerprint
and is read and checked again; the sampled digest catches a copy of other data whose time was
set back to the old one, unless it differs only between the sampled blocks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow
import pyarrow.ipc
from datasets import Dataset

from trainer.data.cache import cache_key, complete_dir, exclusive, intact_or_removed, scratch_dir, write_checksums
from trainer.data.records import WRITE_BATCH, RecordTable
from trainer.profiles.base import Profile
from trainer.run.files import staged_directory, write_json_atomic

log = logging.getLogger(__name__)

RECORDS_DIR = "records"
DIGESTS_DIR = "digests"
TABLE_FILE = "records.arrow"
SUMMARY_FILE = "records.json"
SAMPLES = 64
SAMPLE_BYTES = 1 << 16
# Raised when the checks or the table's layout change, so entries of older checks are not reused.
CHECKS_VERSION = 1


def quick_fingerprint(path: Path) -> dict[str, Any]:
    """Name, size, modification time (ns) and sampled-content digest of a file, or of each file of
    a directory in name order: read in `SAMPLES` blocks whatever the size of the data."""
    files = sorted(item for item in path.rglob("*") if item.is_file()) if path.is_dir() else [path]
    return {
        "path": str(path.resolve()),
        "files": [
            {
                "name": str(item.relative_to(path)) if path.is_dir() else "",
                "size": item.stat().st_size,
                "mtime_ns": item.stat().st_mtime_ns,
                "sampled_sha256": sampled_digest(item),
            }
            for item in files
        ],
    }


def sampled_digest(path: Path) -> str:
    """sha256 of `SAMPLES` blocks of `SAMPLE_BYTES` spread evenly from the start to the end of
    the file; of the whole file when it is no larger than that."""
    size, digest = path.stat().st_size, hashlib.sha256()
    stride = max(SAMPLE_BYTES, -(-size // SAMPLES))
    with path.open("rb") as file:
        for offset in range(0, size, stride):
            file.seek(min(offset, max(size - SAMPLE_BYTES, 0)))
            digest.update(file.read(SAMPLE_BYTES))
    return digest.hexdigest()


def remembered_sha256(cache_dir: Path, path: Path, compute: Callable[[], str]) -> str:
    """`compute()`, the full content digest of `path`, remembered in `cache_dir` under the quick
    fingerprint of `path`: computed again only once the file has changed."""
    memo = cache_dir.expanduser() / DIGESTS_DIR / f"{cache_key(fingerprint=quick_fingerprint(path))}.json"
    if memo.is_file():
        return json.loads(memo.read_text(encoding="utf-8"))["sha256"]
    digest = compute()
    memo.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(memo, {"sha256": digest, "path": str(path.resolve())})
    return digest


def cached_checked_table(
    cache_dir: Path,
    source: Path,
    profile: Profile,
    on_bad_record: str,
    read: Callable[[], tuple[RecordTable, int]],
) -> tuple[RecordTable, int]:
    """`read()`'s checked records of `source` and how many bad ones it skipped, read from the
    cache entry of `source`'s quick fingerprint when there is one, else read, saved there and
    memory-mapped from it."""
    key = cache_key(
        fingerprint=quick_fingerprint(source),
        profile=profile.metadata(),
        profile_seed=profile.seed,
        on_bad_record=on_bad_record,
        checks=CHECKS_VERSION,
    )
    entry = cache_dir.expanduser() / RECORDS_DIR / key
    with exclusive(entry):
        if (found := load_checked_table(entry)) is not None:
            log.info("%s is unchanged: its checked records are reused from %s", source, entry)
            if skipped := found[1]:
                log.warning(
                    "Skipped %d bad records of %s (data.on_bad_record=skip), as when it was read", skipped, source
                )
            return found
        # A directory there without its summary is no entry of ours: never read, replaced.
        shutil.rmtree(entry, ignore_errors=True)
        table, skipped = read()
        with scratch_dir(entry) as scratch, staged_directory(entry, scratch=complete_dir(scratch)) as complete:
            write_rows(table.dataset, complete / TABLE_FILE)
            write_json_atomic(
                complete / SUMMARY_FILE, {"digest": table.digest, "skipped": skipped, "source": str(source)}
            )
            write_checksums(complete)
    return load_checked_table(entry, verify=False)


def load_checked_table(entry: Path, verify: bool = True) -> tuple[RecordTable, int] | None:
    """The memory-mapped table of `entry` and its count of skipped records; None without a
    complete entry (an entry is renamed into place whole) or, checked with `verify`, for one
    damaged since it was written (removed)."""
    if not (entry / SUMMARY_FILE).is_file():
        return None
    if verify and not intact_or_removed(entry, "reading the records again"):
        return None
    summary = json.loads((entry / SUMMARY_FILE).read_text(encoding="utf-8"))
    table = RecordTable(Dataset.from_file(str(entry / TABLE_FILE)), summary["digest"], owner=None)
    return table, summary["skipped"]


def write_rows(dataset: Dataset, path: Path) -> None:
    """The rows of `dataset` (its selection applied) into the Arrow file `path`, a batch at a time."""
    with pyarrow.OSFile(str(path), "wb") as sink, pyarrow.ipc.new_stream(sink, dataset.data.schema) as writer:
        for batch in dataset.with_format("arrow").iter(batch_size=WRITE_BATCH):
            writer.write_table(batch)
