"""Row encoding: a batch of checked examples shaped by the profile, tokenized with the assistant
mask and written as Arrow columns (the rows both data paths train on)."""

from __future__ import annotations

import json
from typing import Any

import numpy
import pyarrow
import pyarrow.compute
from datasets import Dataset, Features, List, Value
from transformers import PreTrainedTokenizerBase

from trainer.data.formats import is_raw_text
from trainer.data.loading import Record
from trainer.data.tokenization import tokenize_examples
from trainer.modeling.template_layout import TemplateError, assistant_answer_spans
from trainer.profiles.base import Profile

# Conversations per tokenizer call: large enough for the fast tokenizer's threads, small enough
# that a batch of their tokens is a few megabytes.
BATCH_SIZE = 256


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
# What each set of tokenized rows reports, on both data paths, as `{set}_{count}` (train_examples,
# validation_tokens, stream_dropped): the examples kept, their tokens, those truncated to
# max_length and those dropped (no assistant token left within it).
ROW_COUNTS = ("examples", "tokens", "truncated", "dropped")


def row_counts_of(name: str, examples: int, tokens: int, truncated: int, dropped: int) -> dict[str, int]:
    """The `ROW_COUNTS` of the set `name`, by their stats keys."""
    return dict(zip((f"{name}_{count}" for count in ROW_COUNTS), (examples, tokens, truncated, dropped), strict=True))


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
