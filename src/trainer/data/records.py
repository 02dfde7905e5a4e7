"""Checked records kept in a memory-mapped Arrow file instead of Python objects, so a data set of
any size costs a batch of memory; read back as (index, Record) pairs wherever they are needed."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import overload

import numpy
import pyarrow
import pyarrow.ipc
from datasets import Dataset

from trainer.data.loading import Record

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


class RecordTable(Sequence[tuple[int, Record]]):
    """(index in its file, record) pairs in an Arrow file; `dataset` is that file, rows selected."""

    def __init__(self, dataset: Dataset, digest: str, owner: RecordTable | None = None) -> None:
        self.dataset = dataset
        # A digest of the rows' indexes and examples, taken as they were written (reading them
        # back for it would bring the whole file into memory).
        self.digest = digest
        # The table whose file this one's rows select from: kept alive as long as this one.
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

    def select(self, positions: Sequence[int] | numpy.ndarray) -> RecordTable:
        positions = numpy.asarray(positions, dtype=numpy.int64)
        digest = hashlib.sha256(self.digest.encode() + positions.tobytes()).hexdigest()
        return RecordTable(self.dataset.select(positions), digest, owner=self)


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


class RecordTableWriter:
    """Collects records into a new Arrow file in a temporary directory that lives as long as the
    table read from it."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="trainer-records-")
        self.path = Path(self.directory) / "records.arrow"
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
        table = RecordTable(Dataset.from_file(str(self.path)), self.hash.hexdigest())
        weakref.finalize(table, shutil.rmtree, self.directory, ignore_errors=True)
        return table
