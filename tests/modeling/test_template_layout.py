"""The layout each family's real template is probed for, system prompts folded where the template
needs it, and agreement with the prefix method where that holds."""

from __future__ import annotations

import logging

import pytest

from tests.template_families import CONVERSATION as TWO_ANSWERS
from tests.template_families import FAMILIES, NO_SYSTEM, UNICODE, family_tokenizer
from trainer.modeling.template_layout import (
    check_against_prefixes,
    fold_system_prompt,
    render_conversation,
    template_layout,
)

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello"},
    {"role": "user", "content": "Bye"},
]


@pytest.mark.parametrize("family", FAMILIES)
def test_the_layout_learned_from_the_probe_is_the_familys(family):
    layout = template_layout(family_tokenizer(family))
    expected = FAMILIES[family]
    assert (layout.generation_prompt, layout.end_of_turn, layout.system_into) == (
        expected.generation_prompt,
        expected.end_of_turn,
        expected.system_into,
    )


@pytest.mark.parametrize("family", ["llama-3.2", "gemma-2"])
@pytest.mark.parametrize("messages", [TWO_ANSWERS, NO_SYSTEM, UNICODE], ids=["system", "no-system", "unicode"])
def test_where_prefixes_extend_the_spans_agree_with_the_prefix_method(family, messages):
    tokenizer = family_tokenizer(family)
    layout = template_layout(tokenizer)
    conversation = fold_system_prompt(messages, layout.system_into)
    assert check_against_prefixes(tokenizer, layout, conversation)


def test_gemma_gets_the_system_prompt_in_its_first_user_turn_and_says_so_once(caplog):
    tokenizer = family_tokenizer("gemma-2")
    tokenizer.chat_template += "{# a fresh template, probed anew #}"
    with caplog.at_level(logging.INFO, logger="trainer.modeling.template_layout"):
        texts = [render_conversation(tokenizer, CONVERSATION, generation_prompt=True) for _ in range(3)]
    assert texts[0] == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
    )
    assert sum("has no system role" in record.getMessage() for record in caplog.records) == 1


def test_mistral_keeps_the_system_prompt_in_the_last_user_turn_as_it_does_for_generation():
    tokenizer = family_tokenizer("mistral-nemo")
    assert render_conversation(tokenizer, CONVERSATION, generation_prompt=True) == tokenizer.apply_chat_template(
        CONVERSATION, tokenize=False, add_generation_prompt=True
    )
    assert render_conversation(tokenizer, [*CONVERSATION, {"role": "assistant", "content": "Ciao"}]) == (
        "<s>[INST]Hi[/INST]Hello</s>[INST]Be brief.\n\nBye[/INST]Ciao</s>"
    )
