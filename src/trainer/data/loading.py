"""Reading chat records from disk, each remembered with the file and line (or row) it came from.

Accepted: JSON Lines, a JSON array (both also compressed, decompressed as they are read, as
`datasets` reads them), Parquet, and a directory written by `datasets`' `save_to_disk`.
Text is UTF-8, with or without a byte order mark. An entry that cannot be read at all (invalid
UTF-8 or JSON, a lone surrogate, absurd nesting) is kept as a record with its error, so the caller
reports it beside the other bad records, or skips it, and every record keeps its position.
"""

from __future__ import annotations

import codecs
import json
import lzma
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from trainer.config.schema import COMPRESSION_SUFFIXES, SUPPORTED_FORMATS, format_suffix
from trainer.errors import DataError, first_line

SAMPLE_DATA = Path(__file__).parent / "sample" / "arithmetic.jsonl"
# Chat records nest a few levels (record > messages > message > content parts); far deeper is
# a broken or hostile file, and recursive code later on (copies, templates) would overflow.
MAX_NESTING = 32
Entry = TypeVar("Entry")
# fsspec's name of each compression (the library datasets reads compressed files with).
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd", ".lz4": "lz4"}
COMPRESSION_PACKAGES = {".zst": "zstandard", ".lz4": "lz4"}
# What a damaged compressed file raises as it is read, beside OSError (gzip, bz2).
DECOMPRESSION_ERRORS = (EOFError, lzma.LZMAError)


@dataclass(frozen=True)
class Record:
    example: Any
    source: str
    line: int
    # "line" in text files; "row" in Parquet files, JSON arrays and saved datasets.
    unit: str = "line"
    # Why the entry could not be read at all, e.g. invalid JSON; None for a readable entry.
    error: str | None = None

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}" if self.unit == "line" else f"{self.source} row {self.line}"


def resolve_data_path(path: str | None) -> Path:
    """The file named in the config, or the sample data shipped with trainer for None."""
    return SAMPLE_DATA if path is None else Path(path).expanduser()


def read_records(path: Path) -> list[Record]:
    """Every record of a data file or saved dataset directory, in order."""
    return list(iter_records(path))


def iter_records(path: Path) -> Iterator[Record]:
    """The records of `path` one by one, read as they are asked for (a JSON array excepted,
    which is parsed whole): memory holds what the caller keeps, not the file."""
    return read_entries(path, records_by_format)


def iter_json_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, text) of each record of a JSON Lines file, not parsed: `parse_json_line`
    reads them afterwards, e.g. in worker processes, as `read_jsonl_records` would."""
    return read_entries(path, json_lines)


def read_entries(path: Path, read: Callable[[Path], Iterator[Entry]]) -> Iterator[Entry]:
    """What `read` finds in `path`; a path that is missing, unreadable or empty is a `DataError`."""
    if not path.exists():
        raise DataError([f"{path} does not exist"])
    empty = True
    try:
        for entry in read(path):
            empty = False
            yield entry
    except OSError as error:
        raise DataError([f"{path} cannot be read: {error.strerror or error}"]) from error
    except DECOMPRESSION_ERRORS as error:
        raise DataError([f"{path} cannot be decompressed: {error}"]) from error
    if empty:
        raise DataError([f"{path} is empty: it holds no records"])


def records_by_format(path: Path) -> Iterator[Record]:
    if path.is_dir():
        return read_saved_dataset(path)
    if format_suffix(path.name) == ".jsonl":
        return read_jsonl_records(path)
    if format_suffix(path.name) == ".json":
        return read_json_records(path)
    if path.suffix == ".parquet":
        return read_parquet_records(path)
    raise DataError([f"{path} has an unsupported format; use {SUPPORTED_FORMATS}"])


def read_jsonl_records(path: Path) -> Iterator[Record]:
    """Every non-blank line of a JSON Lines file (UTF-8, with or without a byte order mark)."""
    for number, line in json_lines(path):
        example, problem = parse_json_line(line)
        yield Record(example, str(path), number, error=problem)


def json_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of every non-blank line, without byte order mark or trailing whitespace."""
    with open_data(path) as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                # Not only on line 1: concatenated files keep their byte order marks.
                yield number, line.removeprefix(codecs.BOM_UTF8).rstrip()


def open_data(path: Path) -> AbstractContextManager[BinaryIO]:
    """The bytes of a data file, decompressed as they are read where its suffix names a compression
    (by fsspec, as datasets reads them)."""
    if path.suffix not in COMPRESSION_SUFFIXES:
        return path.open("rb")
    import fsspec
    import fsspec.compression

    name = COMPRESSIONS[path.suffix]
    if name not in fsspec.compression.compr:
        package = COMPRESSION_PACKAGES[path.suffix]
        raise DataError([f"{path}: reading {path.suffix} files needs the {package} package (pip install {package})"])
    return fsspec.open(str(path), "rb", compression=name)


def parse_json_line(line: bytes) -> tuple[Any, str | None]:
    """The value of one line of JSON, or None and why it cannot be used."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, f"not valid UTF-8 (byte 0x{line[error.start]:02x} at column {error.start + 1})"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return None, f"invalid JSON ({error.msg} at column {error.colno})"
    except RecursionError:
        return None, f"nested deeper than {MAX_NESTING} levels"
    except ValueError as error:
        # e.g. an integer of more digits than Python converts (sys.get_int_max_str_digits()).
        return None, f"unreadable JSON ({first_line(error)})"
    return value, value_problem(value) if may_be_unusable(line) else None


def may_be_unusable(line: bytes) -> bool:
    """Whether `value_problem` could find anything in the value of `line`, decided from the text
    alone: deep nesting needs that many brackets, a lone surrogate a \\uD800-\\uDFFF escape (raw
    surrogate bytes are invalid UTF-8). Most lines are neither, and skip the walk over their value."""
    return line.count(b"[") + line.count(b"{") >= MAX_NESTING or b"\\ud" in line.lower()


def value_problem(value: Any) -> str | None:
    """Why a parsed JSON value cannot be trained on: nesting no record needs (every later step
    walks it recursively), or text that is not Unicode (a lone surrogate escape such as \\ud800)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_NESTING:
            return f"nested deeper than {MAX_NESTING} levels"
        if isinstance(item, dict):
            pending += [(key, depth) for key in item] + [(child, depth + 1) for child in item.values()]
        elif isinstance(item, list):
            pending += [(child, depth + 1) for child in item]
        elif isinstance(item, str) and not is_unicode(item):
            return "a string holds a lone surrogate (e.g. \\ud800), which is not valid Unicode"
    return None


def is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_json_records(path: Path) -> Iterator[Record]:
    """The elements of a JSON array; a `.json` file holding JSON Lines is read as such."""
    with open_data(path) as file:
        data = file.read().removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError([f"{path}:{line}: not valid UTF-8 (byte 0x{data[error.start]:02x})"]) from error
    if not text.strip():
        return iter(())
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":
            return read_jsonl_records(path)
        raise DataError([f"{path}:{error.lineno}: invalid JSON ({error.msg} at column {error.colno})"]) from error
    except RecursionError as error:
        raise DataError([f"{path}: nested deeper than {MAX_NESTING} levels"]) from error
    except ValueError as error:
        raise DataError([f"{path}: unreadable JSON ({first_line(error)})"]) from error
    if not isinstance(document, list):
        raise DataError([f"{path}: expected a JSON array of records (or JSON Lines), got {type(document).__name__}"])
    return (
        Record(item, str(path), row, unit="row", error=value_problem(item))
        for row, item in enumerate(document, start=1)
    )


def read_parquet_records(path: Path) -> Iterator[Record]:
    """The rows of a Parquet file, a row group at a time."""
    import pyarrow
    import pyarrow.parquet

    try:
        batches = pyarrow.parquet.ParquetFile(path).iter_batches()
        yield from columnar_records((row for batch in batches for row in batch.to_pylist()), path)
    except pyarrow.ArrowException as error:
        raise DataError([f"{path} is not a readable Parquet file: {error}"]) from error


def read_saved_dataset(path: Path) -> Iterator[Record]:
    """A `Dataset.save_to_disk` directory; a `DatasetDict` must be narrowed to one of its splits."""
    if (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
        raise DataError([f"{path} holds the splits {', '.join(splits)}; point at one of them, e.g. {path / splits[0]}"])
    if not (path / "state.json").is_file():
        raise DataError([f"{path} is a directory without a saved dataset (no state.json from save_to_disk)"])
    from datasets import load_from_disk

    try:
        dataset = load_from_disk(str(path))
    except Exception as error:
        # A damaged directory surfaces as anything from JSONDecodeError to an Arrow error.
        raise DataError(
            [f"{path} is not a readable saved dataset ({type(error).__name__}: {first_line(error)})"]
        ) from error
    return columnar_records(iter(dataset), path)


def columnar_records(rows: Iterable[dict[str, Any]], path: Path) -> Iterator[Record]:
    """Columnar formats give every row every column, null where a record lacked it: drop those
    nulls so each row reads as the record that was written."""
    return (
        Record({key: value for key, value in row.items() if value is not None}, str(path), number, unit="row")
        for number, row in enumerate(rows, start=1)
    )
