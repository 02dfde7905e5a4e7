"""Tokenizing a conversation with labels on assistant tokens only.

The assistant spans come from the chat template itself: each assistant turn is the text that
rendering the conversation up to and including that turn adds after the generation prompt of the
conversation before it. Every assistant turn is learned, including its end-of-turn token.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100


class TemplateError(Exception):
    """The chat template renders a conversation differently from its own prefixes."""


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    truncated: bool

    @property
    def has_assistant_tokens(self) -> bool:
        return any(label != IGNORE_INDEX for label in self.labels)


def render(tokenizer: PreTrainedTokenizerBase, messages: list[dict], generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def assistant_char_spans(tokenizer: PreTrainedTokenizerBase, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the [start, end) character span of each assistant turn."""
    text = render(tokenizer, messages)
    spans = []
    for position, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render(tokenizer, messages[:position], generation_prompt=True)
        through_turn = render(tokenizer, messages[: position + 1])
        if not (through_turn.startswith(prompt) and text.startswith(through_turn)):
            raise TemplateError(
                "the chat template does not render conversations as extensions of their prefixes, "
                "so assistant turns cannot be located; use a ChatML-style template"
            )
        # Whitespace after the end-of-turn token belongs to the template, not to the answer.
        spans.append((len(prompt), len(through_turn.rstrip())))
    return text, spans


def tokenize_with_assistant_mask(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict], max_length: int
) -> TokenizedExample:
    text, spans = assistant_char_spans(tokenizer, messages)
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = encoding["input_ids"]
    labels = [
        token if any(start <= token_start and token_end <= end for start, end in spans) else IGNORE_INDEX
        for token, (token_start, token_end) in zip(input_ids, encoding["offset_mapping"], strict=True)
    ]
    return TokenizedExample(input_ids[:max_length], labels[:max_length], truncated=len(input_ids) > max_length)
