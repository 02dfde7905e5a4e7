"""The split of a run's records into training and validation sets, made before any model loads."""

from __future__ import annotations

import math
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy

from trainer.config.schema import DataConfig
from trainer.config.sources import DataSource
from trainer.data.cache import tokenized_cache_dir
from trainer.data.checking import checked_table
from trainer.data.loading import resolve_data_path
from trainer.data.records import RecordTable
from trainer.data.sources import configured_source
from trainer.errors import DataError
from trainer.profiles.base import Profile


@dataclass
class RecordSplit:
    # (index in its file, record): the index keys the profile's per-example choices.
    train: RecordTable
    validation: RecordTable
    # Bad records left out under data.on_bad_record=skip.
    skipped: int = 0


def load_record_split(config: DataConfig, profile: Profile, seed: int) -> RecordSplit:
    """Read and validate the configured files into Arrow tables; split off a seeded validation
    set when none is given."""
    # The tables' files go beside the tokenized cache (a place chosen for its space), or to the
    # temporary directory with the cache off.
    scratch = tokenized_cache_dir(config, Path(tempfile.gettempdir()))
    # With the shared cache, the checked records of an unchanged file are read back from it.
    cache = scratch if config.cache else None
    source = configured_source(config.train, "data.train")
    train, skipped = checked_table(source, profile, config.on_bad_record, config.num_proc, scratch, cache)
    if config.validation is not None:
        validation, skipped_validation = checked_table(
            configured_source(config.validation, "data.validation"),
            profile,
            config.on_bad_record,
            config.num_proc,
            scratch,
            cache,
        )
        return RecordSplit(train, validation, skipped + skipped_validation)
    count = min(math.ceil(len(train) * config.validation_split), config.validation_max_samples)
    return split_off(train, count, seed, source, skipped)


def split_off(train: RecordTable, count: int, seed: int, source: DataSource, skipped: int) -> RecordSplit:
    """`count` records of `train`, drawn with `seed`, held out as the validation set."""
    if count >= len(train):
        name = source.name if source.path else resolve_data_path(None)
        raise DataError([f"{name}: too few records ({len(train)}) to split off {count}"])
    held_out = held_out_mask(len(train), count, seed)
    return RecordSplit(
        train=train.select(numpy.flatnonzero(~held_out)),
        validation=train.select(numpy.flatnonzero(held_out)),
        skipped=skipped,
    )


def held_out_mask(size: int, count: int, seed: int) -> numpy.ndarray:
    """Which of `size` records the seeded validation split holds out: `count` of them, none
    without a shuffle of all of them when `count` is 0."""
    held_out = numpy.zeros(size, dtype=bool)
    if count:
        # A list, not an array: the shuffle swaps elements one at a time, far cheaper in a list.
        order = list(range(size))
        random.Random(seed).shuffle(order)
        held_out[order[:count]] = True
    return held_out
