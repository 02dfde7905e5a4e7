"""Chat templates: the tokenizer's own where it suits and can be masked, ChatML (with its tokens)
otherwise."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from tests.template_families import FAMILIES, family_tokenizer
from trainer.errors import UserError
from trainer.modeling.chat_template import CHATML_TEMPLATE, ensure_chat_template
from trainer.modeling.template_layout import TemplateError

# Closes each turn with </s>, so its answers can be located.
OWN_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '</s>' }}{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)
NO_END_OF_TURN = "{% for message in messages %}{{ message['content'] }}{% endfor %}"
RAISING = "{{ raise_exception('This template only renders tool calls') }}"
REWRITING = "{% for message in messages %}{{ message['content'] | lower + '</s>' }}{% endfor %}"


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
    [
        (OWN_TEMPLATE, OWN_TEMPLATE),
        (None, CHATML_TEMPLATE),
        ("<think></think>" + OWN_TEMPLATE, CHATML_TEMPLATE),
        (NO_END_OF_TURN, CHATML_TEMPLATE),
        (RAISING, CHATML_TEMPLATE),
    ],
    ids=["own", "none", "thinking", "unmaskable", "raising"],
)
def test_auto_keeps_the_own_template_unless_missing_thinking_or_unusable(template, expected):
    tokenizer = word_tokenizer(template)
    ensure_chat_template(tokenizer, "auto")
    assert tokenizer.chat_template == expected


@pytest.mark.parametrize("family", FAMILIES)
def test_auto_uses_the_families_own_template_unless_it_injects_think_blocks(family):
    tokenizer = family_tokenizer(family)
    own = tokenizer.chat_template
    ensure_chat_template(tokenizer, "auto")
    assert (tokenizer.chat_template == own) == (family not in ("qwen3", "deepseek-r1"))


@pytest.mark.parametrize("family", FAMILIES)
def test_the_tokenizers_own_template_is_kept_even_when_it_thinks(family):
    tokenizer = family_tokenizer(family)
    own = tokenizer.chat_template
    assert ensure_chat_template(tokenizer, "tokenizer") == []
    assert tokenizer.chat_template == own


def test_asking_for_a_missing_own_template_is_a_user_error():
    with pytest.raises(UserError) as caught:
        ensure_chat_template(word_tokenizer(), "tokenizer")
    assert str(caught.value).startswith("model.chat_template=tokenizer, but this tokenizer has no chat template")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            RAISING,
            'the chat template "{{ raise_exception(\'This template only renders tool calls..." refuses '
            "a plain conversation (This template only renders tool calls); change model.chat_template "
            "(auto|chatml|tokenizer)",
        ),
        (
            NO_END_OF_TURN,
            "the chat template \"{% for message in messages %}{{ message['content'] }}{% e...\" renders no "
            "end-of-turn text after an answer, so none can be learned; change model.chat_template "
            "(auto|chatml|tokenizer)",
        ),
        (
            REWRITING,
            "the chat template \"{% for message in messages %}{{ message['content'] | lowe...\" does not "
            "render assistant answers as given; change model.chat_template (auto|chatml|tokenizer)",
        ),
    ],
    ids=["raising", "unmaskable", "rewriting"],
)
def test_an_unusable_own_template_is_one_line_naming_it_and_the_key(template, message):
    with pytest.raises(TemplateError) as caught:
        ensure_chat_template(word_tokenizer(template), "tokenizer")
    assert str(caught.value) == message
