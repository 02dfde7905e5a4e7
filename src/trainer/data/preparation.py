"""From the data config to tokenized train/validation sets, in two steps: records are read and
checked before any model loads, then tokenized once the tokenizer exists."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy
import pyarrow
import pyarrow.compute
import pyarrow.ipc
from datasets import Dataset, Features, List, Value
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from trainer.config.schema import DataConfig, format_suffix
from trainer.config.sources import DataSource
from trainer.data.cache import (
    cache_key,
    complete_dir,
    exclusive,
    load_cached,
    publish,
    scratch_dir,
    tokenized_cache_dir,
    tokenizer_digest,
)
from trainer.data.formats import RecordShapeError, is_raw_text, shape_problems, to_chat_example
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
from trainer.data.sources import configured_source, reads_repository, repository_records
from trainer.data.tokenization import tokenize_examples
from trainer.errors import DataError
from trainer.modeling.template_layout import TemplateError, assistant_answer_spans
from trainer.profiles.base import Profile

log = logging.getLogger(__name__)

# Conversations per tokenizer call: large enough for the fast tokenizer's threads, small enough
# that a batch of their tokens is a few megabytes.
BATCH_SIZE = 256
# Fewer rows than this per process and starting the processes costs more than they save.
MIN_ROWS_PER_PROCESS = 2000
# Token ids fit in 32 bits; int64, what Python ints become by default, would double the files.
TOKENIZED_FEATURES = Features(
    {
        "input_ids": List(Value("int32")),
        "attention_mask": List(Value("int8")),
        "labels": List(Value("int32")),
        "truncated": Value("bool"),
        # Tokens before truncation: how much of a conversation max_length cut off.
        "length": Value("int32"),
        "kept": Value("bool"),
    }
)
# Bookkeeping columns of a cache entry, counted, never trained on.
BOOKKEEPING_COLUMNS = ("kept", "truncated", "length")


@dataclass
class RecordSplit:
    # (index in its file, record): the index keys the profile's per-example choices.
    train: RecordTable
    validation: RecordTable
    # Bad records left out under data.on_bad_record=skip.
    skipped: int = 0


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
    problems, total = [], 0
    name = source.name if isinstance(source, Path) else source
    records = tqdm(read or iter_records(source), desc=f"Reading {name}", unit=" records", disable=None)
    for index, record in enumerate(records):
        total += 1
        example, found = checked_example(record, profile)
        if found:
            problems.append(record_problem(record, index, found))
        else:
            # The position in the file, not among the kept records: skipping one record never
            # changes the profile's per-example choices for the others.
            keep(index, replace(record, example=example))
    return report_bad_records(source, problems, total, on_bad_record)


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


def checked_example(record: Record, profile: Profile) -> tuple[Any, list[str]]:
    """The record's example in the internal form, and what is wrong with it (empty when valid)."""
    if record.error is not None:
        return None, [record.error]
    try:
        example = to_chat_example(record.example)
    except RecordShapeError as error:
        return None, [str(error)]
    return example, shape_problems(example, profile)


def record_problem(record: Record, index: int, found: list[str]) -> str:
    """What is wrong with a bad record, at its place in its file."""
    return f"{record.location} (example {index}): {'; '.join(found)}"


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
    with exclusive(entry):
        if (cached := load_cached(entry, in_memory)) is not None:
            log.info("Tokenized data read from the cache: %s", entry)
            warn_about_heavy_truncation(cached[1], max_length)
            return tokenized_data(*cached, entry, from_cache=True)
        # A directory there without its stats is no entry of ours: never read, replaced.
        shutil.rmtree(entry, ignore_errors=True)
        with scratch_dir(entry) as scratch:
            stats: dict[str, int] = {"bad_records_skipped": split.skipped}
            complete_dir(scratch).mkdir()
            for name, records in (("train", split.train), ("validation", split.validation)):
                if records:
                    output = complete_dir(scratch) / f"{name}.arrow"
                    tokenize_records(
                        name, records, output, profile, system_prompt, tokenizer, max_length, num_proc, stats
                    )
            publish(entry, scratch, stats)
        warn_about_heavy_truncation(stats, max_length)
        log.info("Tokenized data saved to the cache: %s", entry)
        return tokenized_data(*load_cached(entry, in_memory, verify=False), entry, from_cache=False)


def tokenized_data(datasets: dict[str, Dataset], stats: dict[str, int], entry: Path, from_cache: bool) -> TokenizedData:
    """The sets as training reads them: the rows of conversations that kept an assistant token,
    without the bookkeeping columns."""
    usable = {name: usable_rows(dataset) for name, dataset in datasets.items()}
    return TokenizedData(usable["train"], usable.get("validation"), stats, entry, from_cache)


def usable_rows(dataset: Dataset) -> Dataset:
    kept = dataset.data.table.column("kept").to_numpy(zero_copy_only=False)
    if not kept.all():
        dataset = dataset.select(numpy.flatnonzero(kept))
    # Entries written before a column existed lack it.
    return dataset.remove_columns([name for name in BOOKKEEPING_COLUMNS if name in dataset.column_names])


def example_lengths(dataset: Dataset) -> numpy.ndarray:
    """The number of tokens of each row of a tokenized set, from the offsets of its input_ids
    column: not one token is read, whatever the size of the set."""
    lengths = pyarrow.compute.list_value_length(dataset.data.table.column("input_ids")).to_numpy()
    # A selection (`Dataset.select`) maps its rows through an indices table instead of copying them.
    if dataset._indices is not None:
        lengths = lengths[dataset._indices.column(0).to_numpy()]
    return lengths


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
    stats |= {
        f"{name}_examples": examples,
        f"{name}_truncated": int(pyarrow.compute.sum(table.column("truncated")).as_py() or 0),
        f"{name}_dropped": len(records) - examples,
        f"{name}_tokens": tokens,
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


def process_count(num_proc: int | None, rows: int) -> int:
    """`num_proc` (None: the cores this process may use), fewer for data too small to be worth
    starting processes for."""
    available = num_proc or len(os.sched_getaffinity(0))
    return max(1, min(available, rows // MIN_ROWS_PER_PROCESS))


def tokenize_batch(
    batch: dict[str, list],
    profile: Profile,
    system_prompt: str,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
) -> dict[str, list]:
    """One batch of examples shaped by the profile and tokenized; a conversation left without an
    assistant token is marked `kept=False` (its row is removed afterwards, once counted)."""
    examples = [
        example
        if is_raw_text(example := json.loads(text))
        else profile.transform_example(example, index, system_prompt)
        for index, text in zip(batch["index"], batch["example"], strict=True)
    ]
    try:
        tokenized = tokenize_examples(tokenizer, examples, max_length)
    except TemplateError:
        locations = [
            f"{Record(None, *place).location} (example {index})"
            for index, *place in zip(batch["index"], batch["source"], batch["line"], batch["unit"], strict=True)
        ]
        raise located_template_error(tokenizer, locations, examples) from None
    kept = tokenized.has_assistant_tokens.tolist()
    input_ids = [ids if keep else ids[:0] for ids, keep in zip(tokenized.input_ids, kept, strict=True)]
    return {
        "input_ids": input_ids,
        "attention_mask": [numpy.ones(len(ids), dtype=numpy.int8) for ids in input_ids],
        "labels": [labels if keep else labels[:0] for labels, keep in zip(tokenized.labels, kept, strict=True)],
        "truncated": tokenized.truncated.tolist(),
        "length": tokenized.lengths.astype(numpy.int32),
        "kept": kept,
    }


def tokenize_batch_columns(batch: dict[str, list], **arguments: Any) -> pyarrow.Table:
    """`tokenize_batch` as an Arrow table, each list column one buffer and its row offsets:
    datasets writes that as it is, where it would convert a list of rows row by row."""
    rows = tokenize_batch(batch, **arguments)
    return pyarrow.table(
        {
            name: list_array(values) if isinstance(TOKENIZED_FEATURES[name], List) else pyarrow.array(values)
            for name, values in rows.items()
        }
    )


def list_array(rows: list[numpy.ndarray]) -> pyarrow.ListArray:
    offsets = numpy.zeros(len(rows) + 1, dtype=numpy.int32)
    numpy.cumsum([len(row) for row in rows], out=offsets[1:])
    return pyarrow.ListArray.from_arrays(offsets, numpy.concatenate(rows) if rows else numpy.zeros(0, numpy.int32))


def located_template_error(
    tokenizer: PreTrainedTokenizerBase, locations: list[str], examples: list[dict]
) -> TemplateError:
    """The template's refusal of the first conversation of a batch it refuses, with its location."""
    for location, example in zip(locations, examples, strict=True):
        if is_raw_text(example):
            continue
        try:
            assistant_answer_spans(tokenizer, example["messages"], example.get("tools"))
        except TemplateError as error:
            return TemplateError(f"{location}: {error}")
    raise AssertionError("a batch the template refused renders conversation by conversation")
