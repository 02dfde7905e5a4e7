"""Assistant-only labels, located in one rendering of the conversation by the chat template's
own layout: exactly each answer as the template renders it plus its end-of-turn, for the real
templates of popular families."""

from __future__ import annotations

import pytest

from tests.helpers import learned_text
from tests.template_families import CONVERSATION, FAMILIES, NO_SYSTEM, UNICODE, family_tokenizer, rendered_answer
from trainer.data.tokenization import IGNORE_INDEX, tokenize_with_assistant_mask
from trainer.modeling.template_layout import TemplateError
from trainer.modeling.tiny import build_tokenizer


def with_marker_text(family: str) -> list[dict[str, str]]:
    """Turns that quote the template's own markers: neither may be taken for a real turn."""
    markers = FAMILIES[family].generation_prompt + "x" + FAMILIES[family].end_of_turn
    return [
        {"role": "user", "content": f"Repeat after me: {markers} then say 4"},
        {"role": "assistant", "content": f"You said {markers} and 4."},
        {"role": "user", "content": "Thanks."},
        {"role": "assistant", "content": f"{markers}"},
    ]


def expected_answers(family: str, messages: list[dict[str, str]]) -> list[str]:
    answers = [message["content"] for message in messages if message["role"] == "assistant"]
    return [rendered_answer(family, answer, last=i == len(answers) - 1) for i, answer in enumerate(answers)]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(512)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("messages", [CONVERSATION, NO_SYSTEM, UNICODE], ids=["system", "no-system", "unicode"])
def test_each_answer_and_its_end_of_turn_is_learned_token_exact(family, messages):
    tokenizer = family_tokenizer(family)
    example = tokenize_with_assistant_mask(tokenizer, messages, max_length=4096)
    assert learned_text(tokenizer, example) == expected_answers(family, messages)


@pytest.mark.parametrize("family", FAMILIES)
def test_marker_text_inside_turns_is_neither_a_turn_nor_missed(family):
    tokenizer = family_tokenizer(family)
    messages = with_marker_text(family)
    example = tokenize_with_assistant_mask(tokenizer, messages, max_length=4096)
    assert learned_text(tokenizer, example) == expected_answers(family, messages)


def test_a_template_that_raises_on_a_conversation_is_a_template_error():
    tokenizer = family_tokenizer("gemma-2")
    two_users = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, *NO_SYSTEM[1:2]]
    with pytest.raises(TemplateError, match=r"^the Gemma chat template refuses this conversation \(Conversation roles"):
        tokenize_with_assistant_mask(tokenizer, two_users, max_length=512)


def test_labels_equal_input_ids_where_learned(tokenizer):
    example = tokenize_with_assistant_mask(tokenizer, CONVERSATION, max_length=512)
    assert len(example.labels) == len(example.input_ids)
    assert all(label in (IGNORE_INDEX, token) for label, token in zip(example.labels, example.input_ids, strict=True))


def test_an_assistant_phrase_inside_a_user_turn_is_not_learned(tokenizer):
    messages = [
        {"role": "user", "content": "<|im_start|>assistant\nsay 2 + 2 = 4<|im_end|>"},
        {"role": "assistant", "content": "4"},
    ]
    example = tokenize_with_assistant_mask(tokenizer, messages, max_length=512)
    assert learned_text(tokenizer, example) == ["4<|im_end|>"]


def test_truncation_cuts_to_max_length_and_is_reported(tokenizer):
    example = tokenize_with_assistant_mask(tokenizer, CONVERSATION, max_length=20)
    assert len(example.input_ids) == len(example.labels) == 20
    assert example.truncated and not example.has_assistant_tokens


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("qwen3", ["Paris.<|im_end|>", "<think>\nThe capital.\n</think>\n\nRome.<|im_end|>"]),
        # DeepSeek-R1 keeps what follows </think> as it is, blank lines included.
        ("deepseek-r1", ["\n\nParis.<｜end▁of▁sentence｜>", "Rome.<｜end▁of▁sentence｜>"]),
    ],
)
def test_reasoning_is_learned_only_where_the_template_keeps_it(family, expected):
    messages = [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "<think>\nIt is Paris.\n</think>\n\nParis."},
        {"role": "user", "content": "And of Italy?"},
        {"role": "assistant", "content": "<think>The capital.</think>Rome."},
    ]
    tokenizer = family_tokenizer(family)
    assert learned_text(tokenizer, tokenize_with_assistant_mask(tokenizer, messages, max_length=512)) == expected
