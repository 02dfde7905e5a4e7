"""Tokenizing a conversation with labels on assistant tokens only.

The conversation is rendered once with the run's chat template; the template module says where
each assistant answer lies in that text (its rendered content plus the end-of-turn text that
closes it), and the tokens inside those spans are learned. A pure function of the tokenizer and
the messages: every assistant turn is learned, including its end-of-turn token(s).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def tokenize_with_assistant_mask(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict], max_length: int
) -> TokenizedExample:
    return tokenize_conversations(tokenizer, [messages], max_length)[0]


def tokenize_conversations(
    tokenizer: PreTrainedTokenizerBase, conversations: list[list[dict]], max_length: int
) -> list[TokenizedExample]:
    """Each conversation rendered once, all of them tokenized in one call (a fast tokenizer
    spreads a batch over its threads), labels from each one's answer spans."""
    rendered = [assistant_answer_spans(tokenizer, messages) for messages in conversations]
    encodings = tokenizer([text for text, _ in rendered], add_special_tokens=False, return_offsets_mapping=True)
    return [
        truncated_example(input_ids, assistant_labels(input_ids, offsets, spans), max_length)
        for input_ids, offsets, (_, spans) in zip(
            encodings["input_ids"], encodings["offset_mapping"], rendered, strict=True
        )
    ]


def truncated_example(input_ids: list[int], labels: list[int], max_length: int) -> TokenizedExample:
    return TokenizedExample(input_ids[:max_length], labels[:max_length], truncated=len(input_ids) > max_length)


def assistant_labels(input_ids: list[int], offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    """Each token's id where it lies inside an answer span, IGNORE_INDEX elsewhere; one pass over
    tokens and spans together, both in text order."""
    labels, remaining = [], iter(spans)
    span = next(remaining, None)
    for token, (start, end) in zip(input_ids, offsets, strict=True):
        while span is not None and start >= span[1]:
            span = next(remaining, None)
        inside = span is not None and span[0] <= start and end <= span[1]
        labels.append(token if inside else IGNORE_INDEX)
    return labels
