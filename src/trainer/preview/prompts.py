"""The held-out prompts a run previews: a fixed, seeded choice from the validation records,
rendered exactly as training renders them, with the generation prompt added."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from itertools import islice

from transformers import PreTrainedTokenizerBase

from trainer.data.loading import Record
from trainer.modeling.template_layout import render_conversation
from trainer.preview.base import PreviewPrompt
from trainer.profiles.base import Profile


def select_prompts(
    records: Sequence[tuple[int, Record]],
    profile: Profile,
    system_prompt: str,
    tokenizer: PreTrainedTokenizerBase,
    count: int,
    seed: int,
) -> list[PreviewPrompt]:
    """Up to `count` prompts, the same ones on every run with this seed and data. Only the records
    drawn are read: a million-record table costs `count` rows, not a pass over every one."""
    drawn = (records[position] for position in seeded_positions(len(records), seed))
    usable = islice(((index, record) for index, record in drawn if has_assistant_turn(record.example)), count)
    chosen = sorted(usable, key=lambda item: item[0])
    return [to_prompt(index, record, profile, system_prompt, tokenizer) for index, record in chosen]


def seeded_positions(size: int, seed: int) -> Iterator[int]:
    """Every position of range(size) once, in a seeded random order, drawn as they are asked for:
    the first few cost a few draws, where a shuffled list would cost the whole range."""
    rng, drawn = random.Random(seed), set()
    while len(drawn) < size:
        position = rng.randrange(size)
        if position not in drawn:
            drawn.add(position)
            yield position


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
