"""Chat templates: the tokenizer's own where it suits, ChatML (with its tokens) otherwise."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from trainer.errors import UserError
from trainer.modeling.chat_template import CHATML_TEMPLATE, ensure_chat_template

OWN_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"


def word_tokenizer(chat_template: str | None = None) -> PreTrainedTokenizerFast:
    """A tokenizer that knows none of ChatML's tokens and has no pad token."""
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "</s>": 1, "hello": 2}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="</s>")
    wrapped.chat_template = chat_template
    return wrapped


def test_chatml_adds_its_tokens_when_the_tokenizer_lacks_them():
    tokenizer = word_tokenizer()
    assert ensure_chat_template(tokenizer, "chatml") == ["<|im_start|>", "<|im_end|>"]
    assert tokenizer.chat_template == CHATML_TEMPLATE
    assert tokenizer("<|im_start|>hello<|im_end|>")["input_ids"] == [3, 2, 4]
    assert tokenizer.pad_token == "</s>"


@pytest.mark.parametrize(
    ("template", "expected"),
    [(OWN_TEMPLATE, OWN_TEMPLATE), (None, CHATML_TEMPLATE), ("<think></think>" + OWN_TEMPLATE, CHATML_TEMPLATE)],
)
def test_auto_keeps_the_own_template_unless_missing_or_thinking(template, expected):
    tokenizer = word_tokenizer(template)
    ensure_chat_template(tokenizer, "auto")
    assert tokenizer.chat_template == expected


def test_the_tokenizers_own_template_is_kept_even_when_it_thinks():
    tokenizer = word_tokenizer("<think></think>" + OWN_TEMPLATE)
    assert ensure_chat_template(tokenizer, "tokenizer") == []
    assert tokenizer.chat_template.startswith("<think>")


def test_asking_for_a_missing_own_template_is_a_user_error():
    with pytest.raises(UserError) as caught:
        ensure_chat_template(word_tokenizer(), "tokenizer")
    assert str(caught.value).startswith("model.chat_template=tokenizer, but this tokenizer has no chat template")
