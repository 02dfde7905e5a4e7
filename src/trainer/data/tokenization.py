"""Tokenizing conversations with labels on assistant tokens only.

Each conversation is rendered once with the run's chat template; the template module says where
each assistant answer lies in that text (its rendered content plus the end-of-turn text that
closes it), and the tokens inside those spans are learned. A pure function of the tokenizer and
the messages: every assistant turn is learned, including its end-of-turn token(s).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy
from transformers import PreTrainedTokenizerBase

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
    # Whether the row keeps an assistant token within max_length (a row without one teaches nothing).
    has_assistant_tokens: numpy.ndarray


def tokenize_with_assistant_mask(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict], max_length: int
) -> TokenizedExample:
    batch = tokenize_conversations(tokenizer, [messages], max_length)
    return TokenizedExample(batch.input_ids[0].tolist(), batch.labels[0].tolist(), bool(batch.truncated[0]))


def tokenize_conversations(
    tokenizer: PreTrainedTokenizerBase, conversations: list[list[dict]], max_length: int
) -> TokenizedBatch:
    """Each conversation rendered once, all of them tokenized in one call (a fast tokenizer
    spreads a batch over its threads), labels from each one's answer spans, computed for the whole
    batch at once: its texts are laid end to end, so tokens and spans are in one text order."""
    rendered = [assistant_answer_spans(tokenizer, messages) for messages in conversations]
    texts = [text for text, _ in rendered]
    encodings = tokenizer(
        texts,
        add_special_tokens=False,
        return_offsets_mapping=True,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    lengths = numpy.fromiter(map(len, encodings["input_ids"]), dtype=numpy.int64, count=len(texts))
    total = int(lengths.sum())
    ids = numpy.fromiter(chain.from_iterable(encodings["input_ids"]), dtype=numpy.int32, count=total)
    offsets = numpy.fromiter(
        chain.from_iterable(chain.from_iterable(encodings["offset_mapping"])), dtype=numpy.int64, count=2 * total
    ).reshape(total, 2)
    text_starts = numpy.cumsum([0] + [len(text) for text in texts[:-1]], dtype=numpy.int64)
    offsets += numpy.repeat(text_starts, lengths)[:, None]
    spans = numpy.array(
        [(start + base, end + base) for (_, found), base in zip(rendered, text_starts.tolist(), strict=True) for start, end in found],
        dtype=numpy.int64,
    ).reshape(-1, 2)  # fmt: skip
    labels = numpy.where(inside_spans(offsets, spans), ids, IGNORE_INDEX).astype(numpy.int32)
    row_starts = numpy.cumsum(lengths) - lengths
    rows = numpy.repeat(numpy.arange(len(texts)), lengths)
    within = numpy.arange(total) - row_starts[rows] < max_length
    learned = numpy.bincount(rows[within & (labels != IGNORE_INDEX)], minlength=len(texts)) > 0
    return TokenizedBatch(
        input_ids=cut_rows(ids, row_starts, lengths, max_length),
        labels=cut_rows(labels, row_starts, lengths, max_length),
        truncated=lengths > max_length,
        has_assistant_tokens=learned,
    )


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
