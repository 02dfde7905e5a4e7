"""The records of a data source (trainer.config.sources). Files and `save_to_disk` directories are
read by data/loading.py; a directory laid out like a Hub dataset repository and a Hub dataset id
both go through `datasets.load_dataset`, the same call, so tests over local repositories exercise
the Hub path's code."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from trainer.config.sources import DEFAULT_SPLITS, DataSource, data_sources, reads_repository
from trainer.data.loading import Record
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


def repository_records(source: DataSource) -> Iterator[Record]:
    """The rows of the source's split, each a record named by the source and its row number."""
    dataset = load_repository(source)
    if not len(dataset):
        raise DataError([f"{source.name} is empty: it holds no records"])
    for row, example in enumerate(dataset, start=1):
        yield Record(without_nulls(example), source.name, row, unit="row")


def load_repository(source: DataSource) -> Any:
    """`load_dataset` of the source; what it raises for a source it cannot load is one `DataError`
    line that names the source and what to do."""
    from datasets import load_dataset
    from datasets.exceptions import DatasetNotFoundError

    try:
        return load_dataset(source.path, name=source.subset, split=source.split, revision=source.revision)
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
