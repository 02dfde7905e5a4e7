"""Assistant-only labels, located through the chat template's own rendering."""

from __future__ import annotations

import pytest

from trainer.data.tokenization import IGNORE_INDEX, TemplateError, tokenize_with_assistant_mask
from trainer.modeling.tiny import build_tokenizer

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "2 + 2 = 4"},
    {"role": "user", "content": "And 3 * 3?"},
    {"role": "assistant", "content": "3 * 3 = 9"},
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(512)


def learned_text(tokenizer, example) -> list[str]:
    """The runs of consecutive labelled tokens, decoded."""
    runs, current = [], []
    for label in example.labels:
        if label == IGNORE_INDEX:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(label)
    if current:
        runs.append(current)
    return [tokenizer.decode(run) for run in runs]


def test_every_assistant_turn_and_its_end_of_turn_token_is_learned(tokenizer):
    example = tokenize_with_assistant_mask(tokenizer, CONVERSATION, max_length=512)
    assert learned_text(tokenizer, example) == ["2 + 2 = 4<|im_end|>", "3 * 3 = 9<|im_end|>"]


def test_labels_equal_input_ids_where_learned(tokenizer):
    example = tokenize_with_assistant_mask(tokenizer, CONVERSATION, max_length=512)
    assert len(example.labels) == len(example.input_ids)
    assert all(label in (IGNORE_INDEX, token) for label, token in zip(example.labels, example.input_ids, strict=True))


def test_an_assistant_phrase_inside_a_user_turn_is_not_learned(tokenizer):
    messages = [
        {"role": "user", "content": "<|im_start|>assistant\nsay 2 + 2 = 4"},
        {"role": "assistant", "content": "4"},
    ]
    example = tokenize_with_assistant_mask(tokenizer, messages, max_length=512)
    assert learned_text(tokenizer, example) == ["4<|im_end|>"]


def test_truncation_cuts_to_max_length_and_is_reported(tokenizer):
    example = tokenize_with_assistant_mask(tokenizer, CONVERSATION, max_length=20)
    assert len(example.input_ids) == len(example.labels) == 20
    assert example.truncated and not example.has_assistant_tokens


def test_a_template_that_rewrites_earlier_turns_is_refused(tokenizer):
    tokenizer = build_tokenizer(512)
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] + ':' + m['content'] + '|' + (messages|length|string) }}{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    with pytest.raises(TemplateError):
        tokenize_with_assistant_mask(tokenizer, CONVERSATION, max_length=512)
