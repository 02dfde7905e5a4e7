"""The cache entry of tokenized data: both sets of a split tokenized once into the entry of
everything that shapes them, or read back from it."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy
import pyarrow
import pyarrow.compute
import pyarrow.ipc
from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from trainer.data.cache import cache_key, complete_dir, exclusive, load_cached, publish, scratch_dir, tokenizer_digest
from trainer.data.checking import process_count
from trainer.data.encoding import BATCH_SIZE, TOKENIZED_FEATURES, row_counts_of, tokenize_batch_columns, usable_rows
from trainer.data.records import RecordTable
from trainer.data.split import RecordSplit
from trainer.errors import DataError
from trainer.profiles.base import Profile

log = logging.getLogger(__name__)


@dataclass
class TokenizedData:
    train: Dataset
    validation: Dataset | None
    # Counts by name; a mixture adds `sources`, the counts of each source.
    stats: dict[str, Any] = field(default_factory=dict)
    # The cache entry the sets were read from, and whether it existed before this run asked.
    cache_entry: Path | None = None
    from_cache: bool = False
    # What the cache key names the tokenizer by (`tokenizer_digest`).
    tokenizer_digest: str | None = None

    def summary(self) -> dict[str, Any]:
        """What the run directory records of its data: the cache entry (its name is the key),
        whether it was read back, and the stats."""
        entry = self.cache_entry
        return {
            "cache_key": entry.name if entry else None,
            "cache_entry": str(entry) if entry else None,
            "read_from_cache": self.from_cache,
            "tokenizer_digest": self.tokenizer_digest,
            "stats": self.stats,
        }


def tokenize_split(
    split: RecordSplit,
    profile: Profile,
    system_prompt: str,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    cache_dir: Path | None = None,
    num_proc: int | None = None,
) -> TokenizedData:
    """Tokenize both sets into the cache entry of everything that shapes them, or read that entry
    back when it exists (another run, sweep job or the resumed run made it). Without `cache_dir`
    the sets are tokenized into a temporary entry and held in memory."""
    digest = tokenizer_digest(tokenizer)
    key = entry_key(split.train.digest, split.validation.digest, system_prompt, profile, digest, max_length)
    if cache_dir is None:
        with tempfile.TemporaryDirectory(prefix="trainer-tokenized-") as temporary:
            entry = Path(temporary) / key
            data = prepare_entry(entry, split, profile, system_prompt, tokenizer, max_length, num_proc, in_memory=True)
    else:
        entry = cache_dir.expanduser() / key
        data = prepare_entry(entry, split, profile, system_prompt, tokenizer, max_length, num_proc, in_memory=False)
    return replace(data, tokenizer_digest=digest)


def entry_key(
    train: str, validation: str, system_prompt: str, profile: Profile, tokenizer: str, max_length: int, **more: Any
) -> str:
    """The cache key of tokenized sets: the digests of their records and everything that shapes
    their tokens (`more`: what else does, e.g. that the records are preference pairs)."""
    return cache_key(
        train=train,
        validation=validation,
        system_prompt=system_prompt,
        profile=profile.metadata(),
        profile_seed=profile.seed,
        tokenizer=tokenizer,
        max_length=max_length,
        **more,
    )


def prepare_entry(
    entry: Path,
    split: RecordSplit,
    profile: Profile,
    system_prompt: str,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    num_proc: int | None,
    in_memory: bool,
) -> TokenizedData:

    def write_set(name: str, records: RecordTable, output: Path, stats: dict[str, Any]) -> None:
        tokenize_records(name, records, output, profile, system_prompt, tokenizer, max_length, num_proc, stats)

    sets = {"train": split.train, "validation": split.validation}
    datasets, stats, from_cache = cached_or_built(entry, in_memory, sets, split.skipped, write_set)
    warn_about_heavy_truncation(stats, max_length)
    return tokenized_data(datasets, stats, entry, from_cache)


def cached_or_built(
    entry: Path,
    in_memory: bool,
    sets: dict[str, Any],
    skipped: int,
    write_set: Callable[[str, Any, Path, dict[str, Any]], None],
) -> tuple[dict[str, Dataset], dict[str, Any], bool]:
    """The entry's sets and stats read back from the cache, or built: each non-empty one of `sets`
    written by `write_set(name, records, output, stats)` into a scratch entry published whole.
    Also whether they came from the cache."""
    with exclusive(entry):
        if (cached := load_cached(entry, in_memory)) is not None:
            log.info("Tokenized data read from the cache: %s", entry)
            return *cached, True
        # A directory there without its stats is no entry of ours: never read, replaced.
        shutil.rmtree(entry, ignore_errors=True)
        with scratch_dir(entry) as scratch:
            stats: dict[str, Any] = {"bad_records_skipped": skipped}
            complete_dir(scratch).mkdir()
            for name, records in sets.items():
                if records:
                    write_set(name, records, complete_dir(scratch) / f"{name}.arrow", stats)
            publish(entry, scratch, stats)
        log.info("Tokenized data saved to the cache: %s", entry)
        return *load_cached(entry, in_memory, verify=False), False


def tokenized_data(datasets: dict[str, Dataset], stats: dict[str, int], entry: Path, from_cache: bool) -> TokenizedData:
    """The sets as training reads them: the rows of conversations that kept an assistant token,
    without the bookkeeping columns."""
    usable = {name: usable_rows(dataset) for name, dataset in datasets.items()}
    return TokenizedData(usable["train"], usable.get("validation"), stats, entry, from_cache)


def tokenize_records(
    name: str,
    records: RecordTable,
    output: Path,
    profile: Profile,
    system_prompt: str,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    num_proc: int | None,
    stats: dict[str, int],
) -> None:
    """Tokenize `records` in batches, in `num_proc` processes, into the Arrow file `output` (one
    per process): memory holds a batch, never the whole set. Conversations left without an
    assistant token keep a row, marked `kept=False`, so that they are counted."""
    started = time.monotonic()
    processes = process_count(num_proc, len(records))
    tokenized = records.dataset.map(
        tokenize_batch_columns,
        batched=True,
        batch_size=BATCH_SIZE,
        num_proc=processes if processes > 1 else None,
        fn_kwargs={
            "profile": profile,
            "system_prompt": system_prompt,
            "tokenizer": tokenizer,
            "max_length": max_length,
        },
        remove_columns=records.dataset.column_names,
        features=TOKENIZED_FEATURES,
        cache_file_name=str(output),
        # The cache key already names these inputs; hashing the tokenizer again would cost seconds.
        new_fingerprint=f"{output.parent.parent.name}-{name}",
        desc=f"Tokenizing the {name} set",
    )
    table = tokenized.data.table
    examples = int(pyarrow.compute.sum(table.column("kept")).as_py() or 0)
    if not examples:
        raise DataError([f"{name} set: no example keeps an assistant token within data.max_length={max_length}"])
    # Only the offsets of input_ids are read: dropped rows are empty, so they add nothing.
    tokens = int(pyarrow.compute.sum(pyarrow.compute.list_value_length(table.column("input_ids"))).as_py())
    truncated = int(pyarrow.compute.sum(table.column("truncated")).as_py() or 0)
    stats |= {
        **row_counts_of(name, examples, tokens, truncated, len(records) - examples),
        **heavy_truncation_stats(name, table.column("length").to_numpy(), max_length),
    }
    log.info(
        "%s set: %d examples, %d tokens, %d truncated to %d tokens, %d dropped (no assistant token left)",
        name,
        examples,
        tokens,
        stats[f"{name}_truncated"],
        max_length,
        stats[f"{name}_dropped"],
    )
    seconds = max(time.monotonic() - started, 1e-9)
    log.info(
        "%s set tokenized in %.1f s by %d process(es): %.0f conversations/s, %.0f tokens/s",
        name,
        seconds,
        processes,
        len(records) / seconds,
        tokens / seconds,
    )


def heavy_truncation_stats(name: str, lengths: numpy.ndarray, max_length: int) -> dict[str, float]:
    """How many conversations lost more than half their tokens to max_length, and the largest share
    one lost."""
    longest = int(lengths.max()) if len(lengths) else 0
    return {
        f"{name}_truncated_over_half": int((lengths > 2 * max_length).sum()),
        f"{name}_worst_truncation": round(1 - max_length / longest, 3) if longest > max_length else 0.0,
    }


def warn_about_heavy_truncation(stats: dict[str, float], max_length: int) -> None:
    """A warning per set where truncation cut more than half of some conversation: the model learns
    from a fragment of each (a one-line count would pass unnoticed)."""
    for name in ("train", "validation"):
        if count := stats.get(f"{name}_truncated_over_half"):
            log.warning(
                "%s set: %d conversation(s) lost more than half their tokens to data.max_length=%d (the worst "
                "lost %.0f%%); raise data.max_length or split long conversations",
                name,
                count,
                max_length,
                100 * stats[f"{name}_worst_truncation"],
            )
