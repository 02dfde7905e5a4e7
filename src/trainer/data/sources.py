"""The records of a data source (trainer.config.sources). Files and `save_to_disk` directories are
read by data/loading.py; a directory laid out like a Hub dataset repository and a Hub dataset id
both go through `datasets.load_dataset`, the same call, so tests over local repositories exercise
the Hub path's code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from trainer.config.schema import DataConfig
from trainer.config.sources import DEFAULT_SPLITS, DataSource, data_sources, reads_repository
from trainer.data.loading import Record, iter_records, resolve_data_path
from trainer.errors import DataError, first_line


def configured_source(value: Any, key: str) -> DataSource:
    """The source a validated config's `key` names (the first of a mixture), as `configured_sources`."""
    return configured_sources(value, key)[0]


def configured_sources(value: Any, key: str) -> list[DataSource]:
    """The sources a validated config's `key` names; a dataset repository or Hub id gets the key's
    default split when it names none, so that messages name the split read."""
    return [
        replace(source, split=DEFAULT_SPLITS[key]) if reads_repository(source) and source.split is None else source
        for source in data_sources(value, key)
    ]


def repository_records(source: DataSource, streaming: bool = False) -> Iterator[Record]:
    """The rows of the source's split, each a record named by the source and its row number;
    `streaming`: read as they are asked for (`load_dataset(..., streaming=True)`), never whole."""
    dataset = load_repository(source, streaming)
    empty = True
    for row, example in enumerate(dataset, start=1):
        empty = False
        yield Record(without_nulls(example), source.name, row, unit="row")
    if empty:
        raise DataError([f"{source.name} is empty: it holds no records"])


def load_repository(source: DataSource, streaming: bool = False) -> Any:
    """`load_dataset` of the source; what it raises for a source it cannot load is one `DataError`
    line that names the source and what to do."""
    from datasets import load_dataset

    with repository_errors(source):
        return load_dataset(
            source.path, name=source.subset, split=source.split, revision=source.revision, streaming=streaming
        )


def check_repositories(config: DataConfig) -> None:
    """Every dataset repository or Hub id of `config`, its subset and split, found (in the local
    datasets cache when offline) before the run writes anything; what is not is one `DataError`
    line per source. Reads the repository's layout (its README's `configs:`), not its rows."""
    problems = []
    for key in ("data.train", "data.validation"):
        value = getattr(config, key.removeprefix("data."))
        sources = configured_sources(value, key) if key == "data.train" or value is not None else []
        for source in filter(reads_repository, sources):
            try:
                check_repository(source)
            except DataError as error:
                problems += error.problems
    if problems:
        raise DataError(problems)


def check_repository(source: DataSource) -> None:
    from datasets import load_dataset_builder

    with repository_errors(source):
        builder = load_dataset_builder(source.path, name=source.subset, revision=source.revision)
    files, splits = builder.config.data_files, builder.info.splits
    known = list(files or splits or [])
    if known and source.split not in known:
        # As `load_dataset` words it, so that the same mistake reads the same wherever it is met.
        raise DataError([f'{source.name}: Unknown split "{source.split}". Should be one of {known}.'])


@contextmanager
def repository_errors(source: DataSource) -> Iterator[None]:
    """What `datasets` raises for a source it cannot load, as one `DataError` line naming it."""
    from datasets.exceptions import DatasetNotFoundError

    try:
        yield
    except ConnectionError as error:
        raise DataError(
            [
                f"{source.name}: not in the local datasets cache, and the Hub cannot be reached ({first_line(error)}); "
                "load it once with network access (unset HF_DATASETS_OFFLINE), or point the source at a local copy"
            ]
        ) from None
    except DatasetNotFoundError as error:
        raise DataError(
            [f"{source.name}: {first_line(error)}; check the id, or log in (hf auth login) for a private dataset"]
        ) from None
    except (ValueError, FileNotFoundError) as error:
        # An unknown subset or split (datasets lists the known ones), a revision that does not exist.
        raise DataError([f"{source.name}: {first_line(error)}"]) from None


def without_nulls(value: Any) -> Any:
    """A row as the record that was written: Arrow gives every struct every field seen in the
    column, null where a record lacked it (a `tool_calls: null` on a message without calls)."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


def streamed_records(source: DataSource) -> Iterator[Record]:
    """The records of `source` as they are read: a file's or saved dataset's, or the rows of a
    dataset repository or Hub id, streamed by `load_dataset` (never downloaded whole)."""
    if reads_repository(source):
        return repository_records(source, streaming=True)
    return iter_records(resolve_data_path(source.path))


def stream_name(source: DataSource) -> str:
    """How the stream's logs and messages name the source: a file by its path, as read."""
    return source.name if reads_repository(source) else str(resolve_data_path(source.path))
