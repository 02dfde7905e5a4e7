"""Where a run's records come from: `data.train` and `data.validation` each name a source, as a
string (a file, a directory, or a Hub dataset id) or as an object with the keys below.

A local file or a directory written by `save_to_disk` is read as before; a directory laid out
like a Hub dataset repository (data files, a README.md with `configs:`) and a Hub dataset id both
go through `datasets.load_dataset`, the same call, with the source's subset, split and revision.
This module imports no datasets: it only parses and checks what the config says.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from trainer.config.schema import SUPPORTED_FORMATS, SUPPORTED_SUFFIXES, format_suffix

# The default split of each data key when a source names none.
DEFAULT_SPLITS = {"data.train": "train", "data.validation": "validation"}
# What a Hub dataset id looks like: `name` or `owner/name`, letters, digits, `-`, `_` and `.`.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
# What `save_to_disk` writes into a directory (a Dataset, a DatasetDict).
SAVED_DATASET_FILES = ("state.json", "dataset_dict.json")


@dataclass(frozen=True)
class DataSource:
    # A data file, a directory (saved dataset or dataset repository) or a Hub dataset id;
    # None: the sample data shipped with trainer.
    path: str | None = None
    # The dataset's configuration (`load_dataset(path, name=subset)`); None: its default one.
    subset: str | None = None
    # The split to read; None: "train" for data.train, "validation" for data.validation.
    split: str | None = None
    # A Hub branch, tag or commit; pin it for a run that resumes and reproduces on the same data.
    revision: str | None = None
    # In a mixture (data.train a list of sources), each source has a weight or a number of
    # examples. weight: its share of the mixture's assistant tokens (what the model learns from),
    # against the other weighted sources; the mixture holds as many assistant tokens as they do.
    weight: float | None = None
    # ...or exactly this many of its examples, drawn at random (repeated when it has fewer).
    examples: int | None = None

    @property
    def name(self) -> str:
        """How messages and logs name the source: its path, with the keys that narrow it."""
        narrowing = [f"{key} {value}" for key in NARROWING_KEYS if (value := getattr(self, key)) is not None]
        return f"{self.path or 'sample'}" + (f" ({', '.join(narrowing)})" if narrowing else "")


SOURCE_KEYS = tuple(item.name for item in fields(DataSource))
NARROWING_KEYS = ("subset", "split", "revision")
MIXTURE_KEYS = ("weight", "examples")


def parse_sources(value: Any, key: str) -> tuple[list[DataSource], list[str]]:
    """The sources `value` of `key` names: one (a string, an object with `SOURCE_KEYS`, None for the
    sample data) or, for data.train, a mixture (a list of them, each with a weight or a number of
    examples); and what is wrong with them."""
    if not isinstance(value, list | tuple):
        source, problems = parse_source(value, key)
        if source is not None and (mixing := [name for name in MIXTURE_KEYS if getattr(source, name) is not None]):
            problems = [f"{key}.{mixing[0]} applies to a source of a mixture (data.train as a list of sources)"]
        return ([source] if source and not problems else []), problems
    if key != "data.train":
        return [], [f"{key} is one source, not a list: mixtures are made in data.train"]
    if not value:
        return [], [f"{key} is an empty list: a mixture is a non-empty list of sources in data.train"]
    sources, problems = [], []
    for position, item in enumerate(value):
        source, found = parse_source(item, f"{key}[{position}]")
        problems += found or mixture_problems(source, f"{key}[{position}]")
        sources += [source] if source and not found else []
    return (sources if not problems else []), problems


def mixture_problems(source: DataSource, key: str) -> list[str]:
    if (source.weight is None) == (source.examples is None):
        return [f"{key} needs either a weight (> 0) or a number of examples (>= 1) to be mixed"]
    if source.weight is not None and not (isinstance(source.weight, int | float) and source.weight > 0):
        return [f"{key}.weight must be a number > 0 (got {source.weight!r})"]
    if source.examples is not None and not (isinstance(source.examples, int) and source.examples >= 1):
        return [f"{key}.examples must be an integer >= 1 (got {source.examples!r})"]
    return []


def parse_source(value: Any, key: str) -> tuple[DataSource | None, list[str]]:
    """The one source `value` of `key`, or None and what is wrong with it."""
    if value == "":
        return None, [f"{key} is empty: name a file, a directory or a Hub dataset id"]
    if value is None or isinstance(value, str):
        return DataSource(value), []
    if not isinstance(value, dict):
        return None, [f"{key} must be a path, a Hub dataset id or an object with {', '.join(SOURCE_KEYS)}"]
    if unknown := [name for name in value if name not in SOURCE_KEYS]:
        return None, [
            f"{key} has unknown key(s) {', '.join(map(repr, unknown))}; a source takes {', '.join(SOURCE_KEYS)}"
        ]
    if not isinstance(value.get("path"), str) or not value["path"]:
        return None, [f"{key} needs a 'path': a file, a directory or a Hub dataset id"]
    if wrong := [name for name in NARROWING_KEYS if value.get(name) is not None and not isinstance(value[name], str)]:
        return None, [f"{key}.{name} must be a string (got {value[name]!r})" for name in wrong]
    return DataSource(**value), []


def data_sources(value: Any, key: str) -> list[DataSource]:
    """The sources of a validated config's `key`."""
    sources, problems = parse_sources(value, key)
    assert not problems, problems
    return sources


def data_source(value: Any, key: str) -> DataSource:
    """The one source of a validated config's `key` (the first of a mixture)."""
    return data_sources(value, key)[0]


def is_mixture(value: Any) -> bool:
    return isinstance(value, list | tuple)


def source_name(value: Any, key: str) -> str:
    """How logs and TensorBoard name the source(s) of a validated config's `key` ("sample": the
    sample data), a mixture's with their weights."""
    sources = data_sources(value, key)
    if not is_mixture(value):
        return sources[0].name
    shares = [f"weight {source.weight}" if source.weight else f"{source.examples} examples" for source in sources]
    return " + ".join(f"{source.name} [{share}]" for source, share in zip(sources, shares, strict=True))


def source_problems(value: Any, key: str) -> list[str]:
    """What is wrong with the source(s) of `key`, as far as the config and the file system tell."""
    sources, problems = parse_sources(value, key)
    keys = [f"{key}[{position}]" if is_mixture(value) else key for position in range(len(sources))]
    for source, name in zip(sources, keys, strict=True):
        problems += path_problems(source, name)
    return problems


def path_problems(source: DataSource, key: str) -> list[str]:
    if source.path is None:
        return []
    local = Path(source.path).expanduser()
    if local.is_file():
        if format_suffix(local.name) not in SUPPORTED_SUFFIXES:
            return [f"{key}={source.path} has an unsupported format; use {SUPPORTED_FORMATS}"]
        if narrowing := [name for name in NARROWING_KEYS if getattr(source, name) is not None]:
            return [
                f"{key}: {', '.join(narrowing)} select(s) within a dataset repository or Hub dataset, "
                f"not within the file {source.path}; remove it"
            ]
        return []
    if not local.exists() and not is_hub_id(source.path):
        return [f"{key}={source.path} does not exist"]
    if local.exists() and not local.is_dir():
        # Reading a FIFO or a device would block or never end: refused before any byte is read.
        return [f"{key}={source.path} is a {special_file_kind(local)}, not a regular file; use {SUPPORTED_FORMATS}"]
    return []


def special_file_kind(path: Path) -> str:
    mode = path.stat().st_mode
    kinds = {
        stat.S_ISFIFO: "named pipe (FIFO)",
        stat.S_ISSOCK: "socket",
        stat.S_ISCHR: "character device",
        stat.S_ISBLK: "block device",
    }
    return next((kind for test, kind in kinds.items() if test(mode)), "special file")


def is_hub_id(path: str) -> bool:
    """A string that can only be a Hub dataset id: no path that exists, no data file suffix."""
    return bool(HUB_ID.fullmatch(path)) and format_suffix(path) not in SUPPORTED_SUFFIXES and not Path(path).exists()


def reads_repository(source: DataSource) -> bool:
    """Whether `source` is read by `datasets.load_dataset`: a Hub id (no such local path) or a
    directory that is no `save_to_disk` output."""
    if source.path is None:
        return False
    local = Path(source.path).expanduser()
    if local.is_dir():
        return not any((local / name).is_file() for name in SAVED_DATASET_FILES)
    return not local.exists()
