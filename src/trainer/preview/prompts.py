"""The held-out prompts a run previews: a fixed, seeded choice from the validation records,
rendered exactly as training renders them, with the generation prompt added."""

from __future__ import annotations

import random

from transformers import PreTrainedTokenizerBase

from trainer.data.loading import Record
from trainer.modeling.template_layout import render_conversation
from trainer.preview.base import PreviewPrompt
from trainer.profiles.base import Profile


def select_prompts(
    records: list[tuple[int, Record]],
    profile: Profile,
    system_prompt: str,
    tokenizer: PreTrainedTokenizerBase,
    count: int,
    seed: int,
) -> list[PreviewPrompt]:
    """Up to `count` prompts, the same ones on every run with this seed and data."""
    usable = [(index, record) for index, record in records if has_assistant_turn(record.example)]
    chosen = sorted(random.Random(seed).sample(usable, min(count, len(usable))), key=lambda item: item[0])
    return [to_prompt(index, record, profile, system_prompt, tokenizer) for index, record in chosen]


def has_assistant_turn(example: dict) -> bool:
    return any(message["role"] == "assistant" for message in example.get("messages", ()))


def to_prompt(
    index: int, record: Record, profile: Profile, system_prompt: str, tokenizer: PreTrainedTokenizerBase
) -> PreviewPrompt:
    """Prompt = the transformed conversation up to its last assistant turn; golden = that turn."""
    messages = profile.transform_example(record.example, index, system_prompt)["messages"]
    last = max(position for position, message in enumerate(messages) if message["role"] == "assistant")
    text = render_conversation(tokenizer, messages[:last], generation_prompt=True)
    return PreviewPrompt(index, messages[:last], text, messages[last]["content"])
