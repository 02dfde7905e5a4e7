"""Reading chat records from disk, each remembered with the file and line it came from."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.errors import UserError, describe_problems

SUPPORTED_SUFFIXES = (".jsonl",)
SAMPLE_DATA = Path(__file__).parent / "sample" / "arithmetic.jsonl"
# Enough to show a pattern without burying the user in a wall of lines.
MAX_REPORTED_PROBLEMS = 20


@dataclass(frozen=True)
class Record:
    example: Any
    source: str
    line: int

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}"


class DataError(UserError):
    error_type = "data_error"

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(describe_problems("Invalid data", problems, shown=MAX_REPORTED_PROBLEMS))


def resolve_data_path(path: str | None) -> Path:
    """The file named in the config, or the sample data shipped with trainer for None."""
    return SAMPLE_DATA if path is None else Path(path).expanduser()


def read_jsonl_records(path: Path) -> list[Record]:
    """Every non-blank line of a JSONL file; lines that are not JSON are reported together."""
    records, problems = [], []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(Record(json.loads(line), str(path), number))
            except json.JSONDecodeError as error:
                problems.append(f"{path}:{number}: invalid JSON ({error.msg} at column {error.colno})")
    if problems:
        raise DataError(problems)
    if not records:
        raise DataError([f"{path}: no records"])
    return records
