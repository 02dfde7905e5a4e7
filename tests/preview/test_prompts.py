"""Preview prompts are rendered as training renders them, system prompt folding included."""

from __future__ import annotations

from tests.template_families import family_tokenizer
from trainer.config.schema import ProfileConfig
from trainer.data.loading import Record
from trainer.preview.prompts import to_prompt
from trainer.profiles import build_profile

EXAMPLE = {
    "messages": [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "4"},
    ]
}


def test_a_gemma_prompt_carries_the_system_prompt_in_its_first_user_turn():
    profile = build_profile(ProfileConfig(), seed=0)
    prompt = to_prompt(0, Record(EXAMPLE, "chats.jsonl", 1), profile, "Be brief.", family_tokenizer("gemma-2"))
    assert prompt.text == ("<bos><start_of_turn>user\nBe brief.\n\nWhat is 2 + 2?<end_of_turn>\n<start_of_turn>model\n")
    assert prompt.golden_answer == "4"
