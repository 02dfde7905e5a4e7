"""Mixtures: `data.train` as a list of sources, each with a weight (its share of the assistant
tokens, what the model learns from) or a fixed number of examples, made into one training set.

Each source is read, checked and tokenized on its own, into its own cache entry, which no weight
is part of: changing a weight re-tokenizes nothing. The mixing happens after, on the tokenized
rows, where each example's assistant tokens are known: the weighted sources share as many
assistant tokens as they hold together, each taking its share by whole examples in an order drawn
with the run's seed and its position (whole passes first where it needs more than it has). The
same config makes the same training set on every run and resume.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy
import pyarrow
from datasets import Dataset, concatenate_datasets

from trainer.config.sources import DataSource
from trainer.data.cache_entry import TokenizedData, tokenize_split
from trainer.data.encoding import row_counts_of
from trainer.data.split import MixtureSplit, RecordSplit
from trainer.data.tokenization import IGNORE_INDEX

log = logging.getLogger(__name__)

# What a mixture reports of each source beside its name and weight (`sources` in its stats), eager
# or streamed (there: what the source handed out, read-ahead included).
SOURCE_COUNTS = ("examples", "tokens", "assistant_tokens", "truncated", "dropped", "skipped")


def tokenize_data_split(split: RecordSplit | MixtureSplit, *arguments: Any, **options: Any) -> TokenizedData:
    """`tokenize_split(split, *arguments, **options)` for one source; a mixture's sources each
    tokenized so, into their own cache entry, then mixed."""
    if not isinstance(split, MixtureSplit):
        return tokenize_split(split, *arguments, **options)
    tokenized = [tokenize_split(part, *arguments, **options) for _, part in split.parts]
    sources = [source for source, _ in split.parts]
    learned = [row_counts(data.train) for data in tokenized]
    chosen = mixture_rows(sources, [assistant for _, assistant in learned], split.seed)
    train = concatenate_datasets([data.train.select(rows) for data, rows in zip(tokenized, chosen, strict=True)])
    train = train.select(numpy.random.default_rng([split.seed, len(sources)]).permutation(len(train)))
    validations = [data.validation for data in tokenized if data.validation is not None and len(data.validation)]
    accounts = [
        source_account(source, part, data, rows, counts)
        for (source, part), data, rows, counts in zip(split.parts, tokenized, chosen, learned, strict=True)
    ]
    log_mixture(accounts)
    stats = {
        "bad_records_skipped": split.skipped,
        **row_counts_of(
            "train",
            len(train),
            *(sum(account[count] for account in accounts) for count in ("tokens", "truncated", "dropped")),
        ),
        "train_assistant_tokens": sum(account["assistant_tokens"] for account in accounts),
        "validation_examples": sum(len(validation) for validation in validations),
        # Per source: its name, weight or examples, cache entry, and what it gave to the mixture.
        "sources": accounts,
    }
    return TokenizedData(
        train=train,
        validation=concatenate_datasets(validations) if validations else None,
        stats=stats,
        from_cache=all(data.from_cache for data in tokenized),
    )


def row_counts(dataset: Dataset) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Each row's tokens and assistant (learned) tokens, read from the label column's offsets."""
    labels = dataset.select_columns(["labels"]).with_format("arrow")[:]["labels"].combine_chunks()
    if isinstance(labels, pyarrow.ChunkedArray):  # an empty column stays chunked
        labels = pyarrow.array([], type=pyarrow.list_(pyarrow.int32()))
    offsets = labels.offsets.to_numpy()
    learned = numpy.concatenate([[0], numpy.cumsum(labels.values.to_numpy() != IGNORE_INDEX)])
    return numpy.diff(offsets), learned[offsets[1:]] - learned[offsets[:-1]]


def mixture_rows(sources: list[DataSource], learned: list[numpy.ndarray], seed: int) -> list[numpy.ndarray]:
    """The rows each source gives: a weighted one, whole examples up to its share of the weighted
    sources' assistant tokens; one with `examples`, that many."""
    weighted = [position for position, source in enumerate(sources) if source.weight is not None]
    total = sum(int(learned[position].sum()) for position in weighted)
    weights = sum(sources[position].weight for position in weighted)
    rows = []
    for position, (source, counts) in enumerate(zip(sources, learned, strict=True)):
        rng = numpy.random.default_rng([seed, position])
        if source.weight is None:
            rows.append(drawn_order(len(counts), source.examples, rng)[: source.examples])
            continue
        budget = total * source.weight / weights
        order = drawn_order(len(counts), math.ceil(budget / max(int(counts.sum()), 1) * len(counts)) + 1, rng)
        reached = numpy.cumsum(counts[order])
        take = int(numpy.searchsorted(reached, budget))
        # The example that crosses the budget is taken where that comes closer to it.
        if take < len(order) and (take == 0 or reached[take] - budget < budget - reached[take - 1]):
            take += 1
        rows.append(order[:take])
    return rows


def drawn_order(size: int, wanted: int, rng: numpy.random.Generator) -> numpy.ndarray:
    """At least `wanted` row positions of `size`: seeded permutations one after the other."""
    passes = max(1, math.ceil(wanted / max(size, 1)))
    return numpy.concatenate([rng.permutation(size) for _ in range(passes)])


def source_account(
    source: DataSource,
    part: RecordSplit,
    data: TokenizedData,
    rows: numpy.ndarray,
    counts: tuple[numpy.ndarray, numpy.ndarray],
) -> dict[str, Any]:
    """What a source holds and what it gave to the mixture."""
    tokens, learned = counts
    return {
        "name": source.name,
        "weight": source.weight,
        "examples_wanted": source.examples,
        "available_examples": len(data.train),
        "examples": len(rows),
        "tokens": int(tokens[rows].sum()),
        "assistant_tokens": int(learned[rows].sum()),
        "truncated": data.stats.get("train_truncated", 0),
        "dropped": data.stats.get("train_dropped", 0),
        "skipped": part.skipped,
        "cache_key": data.cache_entry.name if data.cache_entry else None,
        "read_from_cache": data.from_cache,
    }


def log_mixture(accounts: list[dict[str, Any]]) -> None:
    learned = sum(account["assistant_tokens"] for account in accounts) or 1
    for account in accounts:
        log.info(
            "Mixture: %s gives %d of its %d examples, %d tokens, %d assistant tokens (%.1f%%); "
            "%d truncated, %d dropped, %d bad records skipped",
            account["name"],
            account["examples"],
            account["available_examples"],
            account["tokens"],
            account["assistant_tokens"],
            100 * account["assistant_tokens"] / learned,
            account["truncated"],
            account["dropped"],
            account["skipped"],
        )
