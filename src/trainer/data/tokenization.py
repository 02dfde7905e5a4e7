"""Tokenizing conversations with labels on assistant tokens only.

Each conversation is rendered once with the run's chat template; the template module says where
each assistant answer lies in that text (its rendered content plus the end-of-turn text that
closes it), and the tokens inside those spans are learned. A pure function of the tokenizer and
the messages: every assistant turn is learned, including its end-of-turn token(s).

Raw text (continued pretraining) is no conversation: its tokens and the end-of-sequence token,
without chat template, all learned.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy
from tokenizers import Encoding
from transformers import PreTrainedTokenizerBase

from trainer.data.formats import is_raw_text
from trainer.modeling.template_layout import assistant_answer_spans

IGNORE_INDEX = -100


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    truncated: bool

    @property
    def has_assistant_tokens(self) -> bool:
        return any(label != IGNORE_INDEX for label in self.labels)


@dataclass
class TokenizedBatch:
    """Conversations tokenized, as columns: each row's ids and labels (int32) are views into one
    buffer per column, cut at max_length."""

    input_ids: list[numpy.ndarray]
    labels: list[numpy.ndarray]
    truncated: numpy.ndarray
    # Each conversation's length in tokens before truncation.
    lengths: numpy.ndarray
    # Whether the row keeps an assistant token within max_length (a row without one teaches nothing).
    has_assistant_tokens: numpy.ndarray


# The fields of `TokenizedBatch` in order: two lists of rows, then one array each.
BATCH_COLUMNS = ("input_ids", "labels", "truncated", "lengths", "has_assistant_tokens")


def tokenize_with_assistant_mask(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict], max_length: int
) -> TokenizedExample:
    batch = tokenize_conversations(tokenizer, [messages], max_length)
    return TokenizedExample(batch.input_ids[0].tolist(), batch.labels[0].tolist(), bool(batch.truncated[0]))


def tokenize_examples(tokenizer: PreTrainedTokenizerBase, examples: list[dict], max_length: int) -> TokenizedBatch:
    """Examples in the internal form (formats.py), in order: chats, with the `tools` they may
    call, by `tokenize_conversations`; raw text by `tokenize_texts`."""
    texts = [position for position, example in enumerate(examples) if is_raw_text(example)]
    chats = [position for position, example in enumerate(examples) if not is_raw_text(example)]
    if texts:
        text_batch = tokenize_texts(tokenizer, [examples[position]["text"] for position in texts], max_length)
        if not chats:
            return text_batch
    conversations = [examples[position]["messages"] for position in chats]
    tools = [examples[position].get("tools") for position in chats]
    chat_batch = tokenize_conversations(tokenizer, conversations, max_length, tools)
    return interleaved([(texts, text_batch), (chats, chat_batch)]) if texts else chat_batch


def interleaved(parts: list[tuple[list[int], TokenizedBatch]]) -> TokenizedBatch:
    """Batches of rows at the given positions merged into one batch in position order."""
    rows = sorted(
        (position, *(getattr(batch, name)[row] for name in BATCH_COLUMNS))
        for positions, batch in parts
        for row, position in enumerate(positions)
    )
    columns = list(zip(*rows, strict=True))[1:]
    return TokenizedBatch(list(columns[0]), list(columns[1]), *(numpy.array(column) for column in columns[2:]))


def tokenize_texts(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int) -> TokenizedBatch:
    """Each text's tokens and the end-of-sequence token, every one learned."""
    encoded = tokenizer(texts, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False)
    rows = [numpy.array([*ids, tokenizer.eos_token_id], dtype=numpy.int32) for ids in encoded["input_ids"]]
    lengths = numpy.array([len(row) for row in rows], dtype=numpy.int64)
    return TokenizedBatch(
        input_ids=[row[:max_length] for row in rows],
        labels=[row[:max_length].copy() for row in rows],
        truncated=lengths > max_length,
        lengths=lengths,
        has_assistant_tokens=numpy.ones(len(rows), dtype=bool),
    )


def tokenize_conversations(
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[list[dict]],
    max_length: int,
    tools: list[list[dict] | None] | None = None,
) -> TokenizedBatch:
    """Each conversation rendered once (with its `tools`, None for none), all of them tokenized in
    one call (a fast tokenizer spreads a batch over its threads), labels from each one's answer
    spans. The tokens of a span are found from its two ends (`token_range`): asking for every
    token's offsets would cost half as much again as tokenizing."""
    rendered = [
        assistant_answer_spans(tokenizer, messages, calls)
        for messages, calls in zip(conversations, tools or [None] * len(conversations), strict=True)
    ]
    return tokenize_rendered(tokenizer, rendered, max_length)


def tokenize_rendered(
    tokenizer: PreTrainedTokenizerBase, rendered: list[tuple[str, list[tuple[int, int]]]], max_length: int
) -> TokenizedBatch:
    """Rendered conversations, each with the [start, end) character spans to learn, tokenized in
    one call, the tokens inside the spans labelled (`tokenize_conversations`)."""
    encoded = tokenizer(
        [text for text, _ in rendered],
        add_special_tokens=False,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    lengths = numpy.fromiter(map(len, encoded["input_ids"]), dtype=numpy.int64, count=len(rendered))
    total = int(lengths.sum())
    ids = numpy.fromiter(chain.from_iterable(encoded["input_ids"]), dtype=numpy.int32, count=total)
    row_starts = numpy.cumsum(lengths) - lengths
    learned = numpy.zeros(total, dtype=bool)
    for encoding, (_, spans), row_start in zip(encoded.encodings, rendered, row_starts.tolist(), strict=True):
        row = learned[row_start : row_start + len(encoding)]
        ranges = [token_range(encoding, start, end) for start, end in spans]
        if None in ranges:  # a span end that no token covers: every token's offsets decide
            row[:] = inside_spans(numpy.array(encoding.offsets, dtype=numpy.int64).reshape(-1, 2), numpy.array(spans, dtype=numpy.int64).reshape(-1, 2))  # fmt: skip
            continue
        for first, stop in ranges:
            row[first:stop] = True
    labels = numpy.where(learned, ids, IGNORE_INDEX).astype(numpy.int32)
    rows = numpy.repeat(numpy.arange(len(rendered)), lengths)
    within = numpy.arange(total) - row_starts[rows] < max_length
    return TokenizedBatch(
        input_ids=cut_rows(ids, row_starts, lengths, max_length),
        labels=cut_rows(labels, row_starts, lengths, max_length),
        truncated=lengths > max_length,
        lengths=lengths,
        has_assistant_tokens=numpy.bincount(rows[within & learned], minlength=len(rendered)) > 0,
    )


def token_range(encoding: Encoding, start: int, end: int) -> tuple[int, int] | None:
    """The [first, stop) tokens that `inside_spans` finds inside the span [start, end): those
    starting at or after `start`, ending at or before `end` and starting before it (offsets are
    in text order, so they are consecutive). Found from the tokens holding the span's first and
    last characters, moved over neighbours (several byte tokens can hold one character); None
    when no token holds one of them."""
    if start >= end:
        return 0, 0
    first, last = encoding.char_to_token(start), encoding.char_to_token(end - 1)
    if first is None or last is None:
        return None
    while first > 0 and encoding.token_to_chars(first - 1)[0] >= start:
        first -= 1
    while first <= last and encoding.token_to_chars(first)[0] < start:
        first += 1
    while last + 1 < len(encoding) and inside_end(encoding.token_to_chars(last + 1), end):
        last += 1
    while last >= first and not inside_end(encoding.token_to_chars(last), end):
        last -= 1
    return first, max(first, last + 1)


def inside_end(offsets: tuple[int, int], end: int) -> bool:
    return offsets[1] <= end and offsets[0] < end


def inside_spans(offsets: numpy.ndarray, spans: numpy.ndarray) -> numpy.ndarray:
    """Whether each token (its [start, end) offsets) lies inside a span; both in text order, spans
    disjoint: the only span that can hold a token is the first one ending after its start."""
    if not len(spans):
        return numpy.zeros(len(offsets), dtype=bool)
    starts, ends = offsets[:, 0], offsets[:, 1]
    candidate = numpy.searchsorted(spans[:, 1], starts, side="right")
    found = candidate < len(spans)
    candidate = numpy.minimum(candidate, len(spans) - 1)
    return found & (spans[candidate, 0] <= starts) & (ends <= spans[candidate, 1])


def cut_rows(
    values: numpy.ndarray, starts: numpy.ndarray, lengths: numpy.ndarray, max_length: int
) -> list[numpy.ndarray]:
    return [values[start : start + min(length, max_length)] for start, length in zip(starts.tolist(), lengths.tolist(), strict=True)]  # fmt: skip
