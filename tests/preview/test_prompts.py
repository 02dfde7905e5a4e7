"""Preview prompts are rendered as training renders them, system prompt folding included."""

from __future__ import annotations

from collections.abc import Sequence

from tests.template_families import family_tokenizer
from trainer.config.schema import ProfileConfig
from trainer.data.loading import Record
from trainer.modeling.tiny import build_tokenizer
from trainer.preview.prompts import select_prompts, to_prompt
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


class CountedRecords(Sequence):
    """(index, record) pairs that count the records read."""

    def __init__(self, size: int) -> None:
        self.size, self.reads = size, 0

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, position):
        self.reads += 1
        return position, Record(EXAMPLE, "chats.jsonl", position + 1)


def test_prompts_are_a_seeded_choice_that_reads_only_the_records_it_draws():
    profile, tokenizer = build_profile(ProfileConfig(), seed=0), build_tokenizer(512)
    records = CountedRecords(100_000)
    chosen = [prompt.index for prompt in select_prompts(records, profile, "", tokenizer, 3, seed=7)]
    assert records.reads == 3 and chosen == sorted(chosen) and len(set(chosen)) == 3
    again = [prompt.index for prompt in select_prompts(CountedRecords(100_000), profile, "", tokenizer, 3, seed=7)]
    assert again == chosen
    few = select_prompts(CountedRecords(2), profile, "", tokenizer, 3, seed=7)
    assert sorted(prompt.index for prompt in few) == [0, 1]
