"""Checking records: each record read from its source, converted to the internal chat form and
checked against the profile; bad records listed with their location, or skipped and counted."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy
import pyarrow
import pyarrow.compute
from tqdm.auto import tqdm

from trainer.config.schema import format_suffix
from trainer.config.sources import DataSource
from trainer.data.formats import RecordShapeError, shape_problems, to_chat_example
from trainer.data.loading import Record, iter_json_lines, iter_records, parse_json_line, resolve_data_path
from trainer.data.record_cache import cached_checked_table
from trainer.data.records import (
    CHECKED_FEATURES,
    WRITE_BATCH,
    RecordTable,
    RecordTableWriter,
    ScratchDirectory,
    write_lines,
)
from trainer.data.sources import reads_repository, repository_records
from trainer.errors import DataError
from trainer.profiles.base import Profile

log = logging.getLogger(__name__)


# Fewer rows than this per process and starting the processes costs more than they save.
MIN_ROWS_PER_PROCESS = 2000


def checked_table(
    path: str | DataSource | None,
    profile: Profile,
    on_bad_record: str,
    num_proc: int | None = None,
    scratch_parent: Path | None = None,
    cache_dir: Path | None = None,
) -> tuple[RecordTable, int]:
    """The valid records of `path`, as `checked_records` gives them, in an Arrow table in a scratch
    directory under `scratch_parent` (the temporary directory by default). JSON Lines are parsed
    and checked in batches in `num_proc` processes (None: the cores available); other formats,
    which their readers parse as they read, as they are read. A dataset repository or Hub id
    (data/sources.py) is read as its rows come. With `cache_dir`, the table of a local file is
    kept there and read back for as long as the file is unchanged."""
    if isinstance(path, DataSource) and reads_repository(path):
        writer = RecordTableWriter(scratch_parent)
        skipped = check_records(path.name, profile, on_bad_record, writer.add, repository_records(path))
        return writer.close(), skipped
    source = resolve_data_path(path.path if isinstance(path, DataSource) else path)
    # Only regular files and directories: a pipe read for its fingerprint would lose its records.
    if cache_dir is not None and (source.is_file() or source.is_dir()):
        return cached_checked_table(
            cache_dir,
            source,
            profile,
            on_bad_record,
            lambda: checked_table(path, profile, on_bad_record, num_proc, scratch_parent),
        )
    if source.is_file() and format_suffix(source.name) == ".jsonl":
        return checked_lines(source, profile, on_bad_record, num_proc, ScratchDirectory(scratch_parent))
    writer = RecordTableWriter(scratch_parent)
    skipped = check_records(source, profile, on_bad_record, writer.add)
    return writer.close(), skipped


def checked_records(
    path: str | None, profile: Profile, on_bad_record: str = "error"
) -> tuple[list[tuple[int, Record]], int]:
    """The valid records of `path` in the internal chat form, each with its position in the file,
    and how many bad ones were skipped. With on_bad_record="error" any bad record raises one
    `DataError` that lists every bad record with its location."""
    table, skipped = checked_table(path, profile, on_bad_record)
    return list(table), skipped


def check_records(
    source: Path | str,
    profile: Profile,
    on_bad_record: str,
    keep: Callable[[int, Record], None],
    read: Iterable[Record] | None = None,
) -> int:
    """Hand each valid record of `source` (of `read` where given) to `keep` as it is read; the
    number of bad ones skipped."""
    bad_records, total = BadRecords(on_bad_record), 0
    name = source.name if isinstance(source, Path) else source
    records = tqdm(read or iter_records(source), desc=f"Reading {name}", unit=" records", disable=None)
    for index, record in enumerate(records):
        total += 1
        if (checked := bad_records.checked(index, record, profile)) is not None:
            # The position in the file, not among the kept records: skipping one record never
            # changes the profile's per-example choices for the others.
            keep(index, checked)
    return report_bad_records(source, bad_records.problems, total, on_bad_record)


def checked_lines(
    source: Path, profile: Profile, on_bad_record: str, num_proc: int | None, scratch: ScratchDirectory
) -> tuple[RecordTable, int]:
    """The valid records of a JSON Lines file and how many bad ones were skipped. This process
    only copies the lines to an Arrow file; parsing and checking them, the costly part, is done
    by `check_lines` in batches, in `num_proc` processes."""
    started, lines_file = time.monotonic(), scratch.path / "lines.arrow"
    lines = tqdm(iter_json_lines(source), desc=f"Reading {source.name}", unit=" records", disable=None)
    table, digest = write_lines(lines, lines_file)
    processes = process_count(num_proc, len(table))
    checked = table.map(
        check_lines,
        batched=True,
        batch_size=WRITE_BATCH,
        num_proc=processes if processes > 1 else None,
        fn_kwargs={"profile": profile, "source": str(source)},
        remove_columns=table.column_names,
        features=CHECKED_FEATURES,
        cache_file_name=str(scratch.path / "checked.arrow"),
        # A fresh directory: nothing to find under any fingerprint, and none worth hashing the profile for.
        new_fingerprint=scratch.path.name,
        desc=f"Checking {source.name}",
    )
    lines_file.unlink()
    seconds = max(time.monotonic() - started, 1e-9)
    log.info(
        "%s: %d records read and checked in %.1f s by %d process(es): %.0f records/s",
        source,
        len(checked),
        seconds,
        processes,
        len(checked) / seconds,
    )
    problem = checked.data.table.column("problem")
    skipped = report_bad_records(source, pyarrow.compute.drop_null(problem).to_pylist(), len(checked), on_bad_record)
    records = checked.remove_columns(["problem"])
    if skipped:
        kept = numpy.flatnonzero(pyarrow.compute.is_null(problem).to_numpy(zero_copy_only=False))
        digest = hashlib.sha256(digest.encode() + kept.tobytes()).hexdigest()
        records = records.select(kept)
    return RecordTable(records, digest, owner=scratch), skipped


def check_lines(batch: dict[str, list], profile: Profile, source: str) -> dict[str, list]:
    """A batch of JSON Lines parsed and checked as `check_records` checks records: each row keeps
    its example as JSON text, or says what is wrong with it."""
    examples, problems = [], []
    for index, number, text in zip(batch["index"], batch["line"], batch["text"], strict=True):
        value, error = parse_json_line(text)
        record = Record(value, source, number, error=error)
        example, found = checked_example(record, profile)
        problems.append(record_problem(record, index, found) if found else None)
        # The line itself where it is the example already (no other shape to convert from).
        examples.append(None if found else text.decode() if example is value else json.dumps(example))
    rows = len(examples)
    return {
        "index": batch["index"],
        "source": [source] * rows,
        "line": batch["line"],
        "unit": ["line"] * rows,
        "example": examples,
        "problem": problems,
    }


def report_bad_records(source: Path | str, problems: list[str], total: int, on_bad_record: str) -> int:
    """Raise the bad records' problems (data.on_bad_record=error) or log that they are skipped;
    how many were skipped. No valid record at all is an error either way."""
    if problems and on_bad_record == "error":
        raise DataError(problems)
    if problems:
        log.warning(
            "Skipped %d bad records of %s (data.on_bad_record=skip), e.g. %s", len(problems), source, problems[0]
        )
    if len(problems) == total:
        raise DataError([f"{source}: none of its {total} records is valid"])
    return len(problems)


def checked_example(
    record: Record,
    profile: Profile,
    shape: Callable[[Any], Any] = to_chat_example,
    problems: Callable[[Any, Profile], list[str]] = shape_problems,
) -> tuple[Any, list[str]]:
    """The record's example in the internal form `shape` gives it (a chat, or a preference pair),
    and what `problems` finds wrong with it (empty when valid)."""
    if record.error is not None:
        return None, [record.error]
    try:
        example = shape(record.example)
    except RecordShapeError as error:
        return None, [str(error)]
    return example, problems(example, profile)


def record_problem(record: Record, index: int, found: list[str]) -> str:
    """What is wrong with a bad record, at its place in its file."""
    return f"{record.location} (example {index}): {'; '.join(found)}"


def process_count(num_proc: int | None, rows: int) -> int:
    """`num_proc` (None: the cores this process may use), fewer for data too small to be worth
    starting processes for."""
    available = num_proc or len(os.sched_getaffinity(0))
    return max(1, min(available, rows // MIN_ROWS_PER_PROCESS))


class BadRecords:
    """data.on_bad_record for records checked one at a time, on both data paths. A reader that
    reads its source whole gathers every bad record's problem (`problems`), reported together by
    `report_bad_records`: all of them raised under error, a count logged under skip. A stream
    (`stop_at_first`) cannot read on before it reports: the first bad record stops the run under
    error, and under skip they are left out, the first one logged, each counted once however many
    passes (and read-ahead) meet it."""

    def __init__(self, on_bad_record: str, stats: dict[str, int] | None = None, stop_at_first: bool = False) -> None:
        self.on_bad_record, self.stop_at_first = on_bad_record, stop_at_first
        # Counted into the stats the run reports.
        self.stats = {} if stats is None else stats
        self.stats.setdefault("bad_records_skipped", 0)
        self.seen: set[int] = set()
        self.problems: list[str] = []

    @property
    def skipped(self) -> int:
        return self.stats["bad_records_skipped"]

    def checked(self, index: int, record: Record, profile: Profile) -> Record | None:
        """The record in the internal chat form, or None for a bad one (met as the policy says)."""
        example, found = checked_example(record, profile)
        if not found:
            return replace(record, example=example)
        problem = record_problem(record, index, found)
        if not self.stop_at_first:
            self.problems.append(problem)
            return None
        if self.on_bad_record == "error":
            raise DataError([problem])
        if not self.skipped:
            log.warning(
                "Skipping bad records (data.on_bad_record=skip), counted in bad_records_skipped; e.g. %s", problem
            )
        if index not in self.seen:
            self.seen.add(index)
            self.stats["bad_records_skipped"] += 1
        return None
