"""Checked records kept in a memory-mapped Arrow file instead of Python objects, so a data set of
any size costs a batch of memory; read back as (index, Record) pairs wherever they are needed."""

from __future__ import annotations

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

    def __init__(self, dataset: Dataset, owner: RecordTable | None = None) -> None:
        self.dataset = dataset
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

    def keyed_examples(self) -> Iterator[tuple[int, str]]:
        """(index, example as JSON) of every row, for the cache key: read, never parsed."""
        for batch in self.dataset.select_columns(["index", "example"]).iter(batch_size=WRITE_BATCH):
            yield from zip(batch["index"], batch["example"], strict=True)

    def select(self, positions: Sequence[int] | numpy.ndarray) -> RecordTable:
        return RecordTable(self.dataset.select(positions), owner=self)


def to_pair(row: dict) -> tuple[int, Record]:
    return row["index"], Record(json.loads(row["example"]), row["source"], row["line"], row["unit"])


class RecordTableWriter:
    """Collects records into a new Arrow file in a temporary directory that lives as long as the
    table read from it."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="trainer-records-")
        self.path = Path(self.directory) / "records.arrow"
        self.sink = pyarrow.OSFile(str(self.path), "wb")
        self.writer = pyarrow.ipc.new_stream(self.sink, SCHEMA)
        self.pending: list[tuple[int, Record]] = []

    def add(self, index: int, record: Record) -> None:
        self.pending.append((index, record))
        if len(self.pending) >= WRITE_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        columns = [
            [index for index, _ in self.pending],
            [record.source for _, record in self.pending],
            [record.line for _, record in self.pending],
            [record.unit for _, record in self.pending],
            [json.dumps(record.example, ensure_ascii=False, default=str) for _, record in self.pending],
        ]
        self.writer.write_batch(pyarrow.record_batch(columns, schema=SCHEMA))
        self.pending = []

    def close(self) -> RecordTable:
        self.flush()
        self.writer.close()
        self.sink.close()
        table = RecordTable(Dataset.from_file(str(self.path)))
        weakref.finalize(table, shutil.rmtree, self.directory, ignore_errors=True)
        return table
