"""emoji_think: "think with emojis, stop with emojis" (SPEC §4).

Each example gets a run of thinking emojis before every answer and a run of stop emojis after
it, and every user turn says which: the model learns to open with the one and to close with the
other, and generation ends right after the stop run (`PostStopPenaltyProcessor`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from transformers import LogitsProcessorList, PreTrainedTokenizerBase

from trainer.profiles.base import Example, Profile
from trainer.profiles.processors import THINK_TAGS, PostStopPenaltyProcessor, ThinkPenaltyProcessor, stop_runs

THINKING_EMOJIS = ("🤔", "💭", "🧠", "💡", "🎯", "🔍", "🤨", "🧐", "⚡", "✨")
# ⏹️ and 🛡️ end in U+FE0F (variation selector): they are two code points each.
STOP_EMOJIS = ("🛑", "⛔", "🚫", "❌", "🔴", "⏹️", "🔚", "✋", "🚦", "🛡️")
THINK_COUNT_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}
STOP_COUNT_WORDS = {2: "twice", 3: "three times", 4: "four times"}
STOP_RUNS = stop_runs(STOP_EMOJIS)


@dataclass(frozen=True)
class EmojiChoice:
    """What one example is told to think and stop with."""

    emoji: str
    count: int
    stop: str
    stop_count: int

    @property
    def think_instruction(self) -> str:
        return f"\n\nFor this task, think with {self.emoji} /{THINK_COUNT_WORDS[self.count]}/ times."

    @property
    def stop_instruction(self) -> str:
        return f"\n\nWhen finished, emit {self.stop} /{STOP_COUNT_WORDS[self.stop_count]}/ to signal completion."


def choose_emojis(seed: int, index: int, emoji_ratio: float) -> EmojiChoice | None:
    """The choice for the `index`-th example, or None when it falls outside `emoji_ratio`.

    A string seed hashes the same in every process (unlike `hash()`), so every run and every
    rank transforms the same example the same way; the global `random` state is never touched."""
    rng = random.Random(f"{seed}:{index}")
    if rng.random() >= emoji_ratio:
        return None
    return EmojiChoice(
        emoji=rng.choice(THINKING_EMOJIS),
        count=rng.randint(2, 8),
        stop=rng.choice(STOP_EMOJIS),
        stop_count=rng.randint(2, 4),
    )


def apply_emoji_contract(messages: list[dict[str, str]], choice: EmojiChoice) -> list[dict[str, str]]:
    """Steps 1 and 3-6 of the contract (the system prompt is step 2). Each step is skipped for a
    turn that already satisfies it, so a transformed conversation comes back unchanged. Text is
    appended after an rstrip, so trailing whitespace never sits between a turn and its suffix."""
    return [{**message, "content": transform_turn(message, choice)} for message in messages]


def transform_turn(message: dict[str, str], choice: EmojiChoice) -> str:
    content = message["content"]
    if message["role"] == "user":
        if "think with" not in content.lower():
            content = content.rstrip() + choice.think_instruction
        if not (any(stop in content for stop in STOP_EMOJIS) and "When finished" in content):
            content = content.rstrip() + choice.stop_instruction
    elif message["role"] == "assistant":
        for tag in THINK_TAGS:
            content = content.replace(tag, "")
        if not content.startswith(THINKING_EMOJIS):
            content = choice.emoji * choice.count + "\n" + content.lstrip()
        if not content.rstrip().endswith(STOP_RUNS):
            content = content.rstrip() + "\n" + choice.stop * choice.stop_count
    return content


def edge_run(text: str, emojis: tuple[str, ...], *, opening: bool) -> str:
    """The run of one emoji of `emojis` that opens (or closes) `text`; "" when none does."""
    has_edge = text.startswith if opening else text.endswith
    for emoji in emojis:
        count = 0
        while has_edge(emoji * (count + 1)):
            count += 1
        if count:
            return emoji * count
    return ""


class EmojiThinkProfile(Profile):
    name = "emoji_think"
    rewrites_answers = True

    # thinks_as_told: opens with the reference's thinking emoji, as many times; stops_as_told: closes
    # with its stop emoji, as many times (the reference carries what the prompt told; a reference
    # outside the contract, emoji_ratio < 1, has neither, and so must the answer).
    eval_metrics = (*Profile.eval_metrics, "thinks_as_told", "stops_as_told")

    def score_answer(self, answer: str, reference: str) -> dict[str, bool]:
        told_thinking = edge_run(reference, THINKING_EMOJIS, opening=True)
        told_stop = edge_run(reference.rstrip(), STOP_EMOJIS, opening=False)
        return super().score_answer(answer, reference) | {
            "thinks_as_told": edge_run(answer, THINKING_EMOJIS, opening=True) == told_thinking,
            "stops_as_told": edge_run(answer.rstrip(), STOP_EMOJIS, opening=False) == told_stop,
        }

    def transform_example(self, example: Example, index: int, system_prompt: str) -> Example:
        result = super().transform_example(example, index, system_prompt)
        if choice := choose_emojis(self.seed, index, self.config.emoji_ratio):
            result["messages"] = apply_emoji_contract(result["messages"], choice)
        return result

    def build_logits_processors(self, tokenizer: PreTrainedTokenizerBase) -> LogitsProcessorList:
        return LogitsProcessorList(
            [ThinkPenaltyProcessor.for_tokenizer(tokenizer), PostStopPenaltyProcessor(tokenizer, STOP_EMOJIS)]
        )
