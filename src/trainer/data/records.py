"""Checked records kept in a memory-mapped Arrow file instead of Python objects, so a data set of
any size costs a batch of memory; read back as (index, Record) pairs wherever they are needed.

The files live in a scratch directory that the process holds a lock on while it uses them: it is
removed when the tables are done with, and one left behind by a killed process (its lock free)
is removed by the next process that makes one beside it."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import overload

import numpy
import pyarrow
import pyarrow.ipc
from datasets import Dataset, Features, Value

from trainer.data.loading import Record

log = logging.getLogger(__name__)

# Records buffered before they are written out as one Arrow batch.
WRITE_BATCH = 1000
SCHEMA = pyarrow.schema(
    [
        ("index", pyarrow.int64()),
        ("source", pyarrow.string()),
        ("line", pyarrow.int64()),
        ("unit", pyarrow.string()),
        # JSON keeps every example exactly as read, where Arrow columns would add a null for
        # each key one message has and another lacks.
        ("example", pyarrow.large_string()),
    ]
)
# The lines of a JSON Lines file as read, before they are parsed and checked.
LINES_SCHEMA = pyarrow.schema([("index", pyarrow.int64()), ("line", pyarrow.int64()), ("text", pyarrow.large_binary())])
# Checked records: the columns of `SCHEMA`, the example null and `problem` set for a bad one.
CHECKED_FEATURES = Features(
    {
        "index": Value("int64"),
        "source": Value("string"),
        "line": Value("int64"),
        "unit": Value("string"),
        "example": Value("large_string"),
        "problem": Value("string"),
    }
)
SCRATCH_PREFIX = ".trainer-records-"
LOCK_FILE = "lock"


class RecordTable(Sequence[tuple[int, Record]]):
    """(index in its file, record) pairs in an Arrow file; `dataset` is that file, rows selected."""

    def __init__(self, dataset: Dataset, digest: str, owner: RecordTable | ScratchDirectory | None) -> None:
        self.dataset = dataset
        # A digest of what the rows were read from, taken as it was written (reading the rows
        # back for it would bring the whole file into memory).
        self.digest = digest
        # The table whose file this one's rows select from, or the directory of the file: kept
        # alive as long as this one. None for a file that outlives the process (a cache entry).
        self.owner = owner

    def __len__(self) -> int:
        return len(self.dataset)

    @overload
    def __getitem__(self, position: int) -> tuple[int, Record]: ...
    @overload
    def __getitem__(self, position: slice) -> list[tuple[int, Record]]: ...
    def __getitem__(self, position: int | slice) -> tuple[int, Record] | list[tuple[int, Record]]:
        if isinstance(position, slice):
            return [self[item] for item in range(len(self))[position]]
        return to_pair(self.dataset[position])

    def __iter__(self) -> Iterator[tuple[int, Record]]:
        for batch in self.dataset.iter(batch_size=WRITE_BATCH):
            for row in zip(*batch.values(), strict=True):
                yield to_pair(dict(zip(batch, row, strict=True)))

    def release(self) -> None:
        """Remove the scratch file now, not when the last table reading it is collected: a copy
        in the cache replaces it. The table is not read afterwards."""
        if isinstance(self.owner, RecordTable):
            self.owner.release()
        elif self.owner is not None:
            self.owner.remove()

    def select(self, positions: Sequence[int] | numpy.ndarray) -> RecordTable:
        positions = numpy.asarray(positions, dtype=numpy.int64)
        digest = hashlib.sha256(self.digest.encode() + positions.tobytes()).hexdigest()
        # Every row in order (no validation split): `Dataset.select` would take seconds at a
        # million rows to find out, in a Python loop over the positions.
        every_row = len(positions) == len(self) and bool((positions == numpy.arange(len(self))).all())
        return RecordTable(self.dataset if every_row else self.dataset.select(positions), digest, owner=self)


def to_pair(row: dict) -> tuple[int, Record]:
    return row["index"], Record(json.loads(row["example"]), row["source"], row["line"], row["unit"])


def record_columns(pairs: Sequence[tuple[int, Record]]) -> dict[str, list]:
    """(index, record) pairs as the columns of `SCHEMA`, the batch that tokenization reads."""
    return {
        "index": [index for index, _ in pairs],
        "source": [record.source for _, record in pairs],
        "line": [record.line for _, record in pairs],
        "unit": [record.unit for _, record in pairs],
        # ASCII JSON: any text the reader let through is stored, and read back, unchanged.
        "example": [json.dumps(record.example, default=str) for _, record in pairs],
    }


class ScratchDirectory:
    """A new directory under `parent` (the temporary directory by default), locked while this
    object lives and removed when it is collected or the interpreter exits; abandoned ones
    beside it are removed first."""

    def __init__(self, parent: Path | None = None) -> None:
        parent = Path(parent or tempfile.gettempdir())
        parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned_scratch(parent)
        self.path = Path(tempfile.mkdtemp(dir=parent, prefix=SCRATCH_PREFIX))
        lock = os.open(self.path / f"{LOCK_FILE}.new", os.O_CREAT | os.O_WRONLY, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Put in place locked: another process never finds this directory's lock free.
        os.rename(self.path / f"{LOCK_FILE}.new", self.path / LOCK_FILE)
        # Called when this object is collected, or earlier by `RecordTable.release`.
        self.remove = weakref.finalize(self, remove_scratch, self.path, lock)


def remove_scratch(path: Path, lock: int) -> None:
    shutil.rmtree(path, ignore_errors=True)
    os.close(lock)


def remove_abandoned_scratch(parent: Path) -> None:
    """Remove the scratch directories under `parent` whose lock is free: the process that held
    it was killed before it could remove them (the lock dies with its process)."""
    for directory in parent.glob(f"{SCRATCH_PREFIX}*"):
        try:
            lock = os.open(directory / LOCK_FILE, os.O_RDONLY)
        except OSError:  # not locked yet by the process making it, gone, or another user's
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its process is alive
            continue
        else:
            log.info("Removing %s, left behind by an interrupted process", directory)
            shutil.rmtree(directory, ignore_errors=True)
        finally:
            os.close(lock)


def write_lines(lines: Iterable[tuple[int, bytes]], path: Path) -> tuple[Dataset, str]:
    """(line number, text) pairs into the Arrow file `path`, indexed in order, and a digest of
    their text. A batch of lines is all that memory holds."""
    digest, numbered = hashlib.sha256(), enumerate(lines)
    with pyarrow.OSFile(str(path), "wb") as sink, pyarrow.ipc.new_stream(sink, LINES_SCHEMA) as writer:
        while batch := list(islice(numbered, WRITE_BATCH)):
            texts = [text for _, (_, text) in batch]
            digest.update(b"\n".join(texts) + b"\n")
            columns = [[index for index, _ in batch], [number for _, (number, _) in batch], texts]
            writer.write_batch(pyarrow.record_batch(columns, schema=LINES_SCHEMA))
    return Dataset.from_file(str(path)), digest.hexdigest()


class RecordTableWriter:
    """Collects records into a new Arrow file in a scratch directory (under `parent`) that lives as
    long as the table read from it."""

    def __init__(self, parent: Path | None = None) -> None:
        self.directory = ScratchDirectory(parent)
        self.path = self.directory.path / "records.arrow"
        self.sink = pyarrow.OSFile(str(self.path), "wb")
        self.writer = pyarrow.ipc.new_stream(self.sink, SCHEMA)
        self.pending: list[tuple[int, Record]] = []
        self.hash = hashlib.sha256()

    def add(self, index: int, record: Record) -> None:
        self.pending.append((index, record))
        if len(self.pending) >= WRITE_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        columns = record_columns(self.pending)
        for index, example in zip(columns["index"], columns["example"], strict=True):
            self.hash.update(f"{index}\t{example}\n".encode())
        self.writer.write_batch(pyarrow.record_batch(list(columns.values()), schema=SCHEMA))
        self.pending = []

    def close(self) -> RecordTable:
        self.flush()
        self.writer.close()
        self.sink.close()
        return RecordTable(Dataset.from_file(str(self.path)), self.hash.hexdigest(), owner=self.directory)
