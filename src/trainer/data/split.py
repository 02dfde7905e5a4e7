"""The split of a run's records into training and validation sets, made before any model loads, the
same for both data paths but for where the training records stay: one source (a seeded share held
out, or data.validation), a mixture (each source's share held out), or a stream (the first valid
records held out; the training records left in their sources for the stream to read)."""

from __future__ import annotations

import math
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy

from trainer.config.schema import DataConfig
from trainer.config.sources import DataSource, is_mixture
from trainer.data.cache import tokenized_cache_dir
from trainer.data.checking import BadRecords, checked_table
from trainer.data.loading import Record, resolve_data_path
from trainer.data.records import RecordTable, RecordTableWriter
from trainer.data.sources import configured_source, configured_sources, stream_name, streamed_records
from trainer.errors import DataError
from trainer.profiles.base import Profile


def record_split(config: DataConfig, profile: Profile, seed: int) -> RecordSplit | MixtureSplit:
    """The run's records, read before any model loads: every record checked and the validation set
    split off (one source, or each of a mixture's); streaming, only the validation set, the training
    records left in their sources for the stream to read."""
    return (held_out_split if config.streaming else load_data_split)(config, profile, seed)


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


@dataclass
class StreamSplit(RecordSplit):
    # Records of each training source before this index were held out for validation.
    first_indices: tuple[int, ...] = ()


def held_out_split(config: DataConfig, profile: Profile, seed: int) -> StreamSplit:
    """The validation records, read before any model loads: `data.validation`, or the first
    `data.validation_max_samples` valid records of the training source (a split by share needs
    its length), shared out among a mixture's sources. The training records stay in the sources,
    read by the stream."""
    sources = configured_sources(config.train, "data.train")
    if config.validation is not None:
        validation, skipped = checked_table(
            configured_source(config.validation, "data.validation"), profile, config.on_bad_record
        )
        return StreamSplit(RecordTableWriter().close(), validation, skipped, (0,) * len(sources))
    wanted = math.ceil(config.validation_max_samples / len(sources))
    writer, first_indices, skipped = RecordTableWriter(), [], 0
    for source in sources:
        bad_records = BadRecords(config.on_bad_record, stop_at_first=True)
        first_indices.append(hold_out(source, wanted, writer, bad_records, profile))
        skipped += bad_records.skipped
    return StreamSplit(RecordTableWriter().close(), writer.close(), skipped, tuple(first_indices))


def hold_out(
    source: DataSource, wanted: int, writer: RecordTableWriter, bad_records: BadRecords, profile: Profile
) -> int:
    """The first `wanted` valid records of `source` written to `writer`; the index of the record after them."""
    held_out = 0
    for index, record in enumerate(streamed_records(source)) if wanted else ():
        if (checked := bad_records.checked(index, record, profile)) is not None:
            writer.add(index, checked)
            held_out += 1
        if held_out == wanted:
            return index + 1
    if held_out < wanted:
        raise DataError(
            [f"{stream_name(source)}: too few valid records ({held_out}) to hold out {wanted} for validation"]
        )
    return 0


@dataclass
class MixtureSplit:
    """Each source's checked records, with the validation set: held out of each source, or the
    whole of data.validation given with the first source."""

    parts: list[tuple[DataSource, RecordSplit]]
    seed: int

    @property
    def skipped(self) -> int:
        return sum(part.skipped for _, part in self.parts)

    @property
    def validation(self) -> list[tuple[int, Record]]:
        """Every source's validation records (what previews draw their prompts from)."""
        return [pair for _, part in self.parts for pair in part.validation]

    @property
    def train(self) -> list[tuple[int, Record]]:
        return [pair for _, part in self.parts for pair in part.train]


def load_data_split(config: DataConfig, profile: Profile, seed: int) -> RecordSplit | MixtureSplit:
    """`load_record_split` for one source; for a mixture, each source's records checked on their own."""
    if not is_mixture(config.train):
        return load_record_split(config, profile, seed)
    scratch = tokenized_cache_dir(config, Path(tempfile.gettempdir()))
    # With the shared cache, the checked records of an unchanged file are read back from it.
    cache = scratch if config.cache else None
    sources = configured_sources(config.train, "data.train")
    validation = None
    if config.validation is not None:
        source = configured_source(config.validation, "data.validation")
        validation = checked_table(source, profile, config.on_bad_record, config.num_proc, scratch, cache)
    parts = []
    for position, source in enumerate(sources):
        train, skipped = checked_table(source, profile, config.on_bad_record, config.num_proc, scratch, cache)
        if validation is None:
            # The held-out share of each source, within one validation_max_samples for all of them.
            limit = math.ceil(config.validation_max_samples / len(sources))
            split = split_off(train, min(math.ceil(len(train) * config.validation_split), limit), seed, source, skipped)
        elif position == 0:
            split = RecordSplit(train, validation[0], skipped + validation[1])
        else:
            split = RecordSplit(train, RecordTableWriter(scratch).close(), skipped)
        parts.append((source, split))
    return MixtureSplit(parts, seed)
