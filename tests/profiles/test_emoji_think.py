"""emoji_think's data contract (SPEC §4): worked example, per-turn rules, idempotence, determinism."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import astuple

import pytest

from trainer.config.schema import ProfileConfig
from trainer.profiles import build_profile
from trainer.profiles.emoji_think import STOP_EMOJIS, THINKING_EMOJIS, EmojiChoice, choose_emojis

SEED = 42
# choose_emojis(42, 832) happens to pick the worked example's 💡 x5 and 🛑 x3.
WORKED_INDEX = 832
WORKED_CHOICE = EmojiChoice(emoji="💡", count=5, stop="🛑", stop_count=3)
THINK_SUFFIX = "\n\nFor this task, think with 💡 /five/ times."
STOP_SUFFIX = "\n\nWhen finished, emit 🛑 /three times/ to signal completion."


def chat(*turns: tuple[str, str]) -> dict:
    return {"messages": [{"role": role, "content": content} for role, content in turns]}


def transform(example: dict, index: int = WORKED_INDEX, emoji_ratio: float = 1.0, system: str = "SYS") -> dict:
    profile = build_profile(ProfileConfig(name="emoji_think", emoji_ratio=emoji_ratio), SEED)
    return profile.transform_example(example, index, system)


def contents(example: dict) -> list[str]:
    return [message["content"] for message in example["messages"]]


def test_the_worked_example_of_the_spec():
    assert choose_emojis(SEED, WORKED_INDEX, 1.0) == WORKED_CHOICE
    result = transform(chat(("user", "What is 2+2?"), ("assistant", "The answer is 4.")))
    assert result["messages"] == [
        {"role": "system", "content": "SYS"},
        {
            "role": "user",
            "content": "What is 2+2?\n\nFor this task, think with 💡 /five/ times.\n\n"
            "When finished, emit 🛑 /three times/ to signal completion.",
        },
        {"role": "assistant", "content": "💡💡💡💡💡\nThe answer is 4.\n🛑🛑🛑"},
    ]


def test_an_existing_system_prompt_is_replaced_not_duplicated():
    result = transform(chat(("system", "old"), ("user", "Hi"), ("assistant", "Hello")))
    assert [message["role"] for message in result["messages"]] == ["system", "user", "assistant"]
    assert contents(result)[0] == "SYS"


def test_think_tags_are_stripped_from_assistant_turns_only():
    result = transform(chat(("user", "Say <think> please"), ("assistant", "<think>\nhmm\n</think>\n\n4")))
    assert contents(result)[1].startswith("Say <think> please")
    assert contents(result)[2] == "💡💡💡💡💡\nhmm\n\n\n4\n🛑🛑🛑"


def test_every_turn_of_a_multi_turn_conversation_gets_the_same_contract():
    result = transform(chat(("user", "A?"), ("assistant", "a"), ("user", "B?  \n"), ("assistant", "  b\n")))
    assert contents(result)[1:] == [
        "A?" + THINK_SUFFIX + STOP_SUFFIX,
        "💡💡💡💡💡\na\n🛑🛑🛑",
        "B?" + THINK_SUFFIX + STOP_SUFFIX,
        "💡💡💡💡💡\nb\n🛑🛑🛑",
    ]


def test_a_user_turn_that_already_says_think_with_keeps_its_own_instruction():
    result = transform(chat(("user", "Think WITH 🧠 /two/ times: 1+1?"), ("assistant", "2")))
    assert contents(result)[1] == "Think WITH 🧠 /two/ times: 1+1?" + STOP_SUFFIX


def test_a_user_turn_needs_both_a_stop_emoji_and_when_finished_to_skip_the_stop_instruction():
    only_emoji = transform(chat(("user", "think with ✨ and 🛑"), ("assistant", "x")))
    both = transform(chat(("user", "think with ✨. When finished, emit ❌ /twice/."), ("assistant", "x")))
    assert contents(only_emoji)[1] == "think with ✨ and 🛑" + STOP_SUFFIX
    assert contents(both)[1] == "think with ✨. When finished, emit ❌ /twice/."


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("🧠🧠\nalready thinking", "🧠🧠\nalready thinking\n🛑🛑🛑"),
        ("done ⛔⛔", "💡💡💡💡💡\ndone ⛔⛔"),
        ("done ⏹️⏹️⏹️⏹️", "💡💡💡💡💡\ndone ⏹️⏹️⏹️⏹️"),
        ("one stop is no run ⛔", "💡💡💡💡💡\none stop is no run ⛔\n🛑🛑🛑"),
    ],
)
def test_assistant_turns_keep_an_existing_thinking_prefix_or_stop_run(answer, expected):
    assert contents(transform(chat(("user", "Q"), ("assistant", answer))))[2] == expected


@pytest.mark.parametrize("index", [0, 1, WORKED_INDEX])
def test_transforming_a_transformed_example_changes_nothing(index):
    example = chat(("user", "A?"), ("assistant", "<think>x</think>a"), ("user", "B?"), ("assistant", "b"))
    once = transform(example, index)
    assert transform(once, index) == once
    assert transform(once, index + 1) == once


def test_the_input_example_is_not_modified():
    example = chat(("user", "Q"), ("assistant", "A"))
    snapshot = json.dumps(example)
    transform(example)
    assert json.dumps(example) == snapshot


def test_choices_are_within_the_spec_ranges():
    choices = [choose_emojis(SEED, index, 1.0) for index in range(300)]
    assert {choice.emoji for choice in choices} == set(THINKING_EMOJIS)
    assert {choice.stop for choice in choices} == set(STOP_EMOJIS)
    assert {choice.count for choice in choices} == set(range(2, 9))
    assert {choice.stop_count for choice in choices} == {2, 3, 4}


def test_the_same_index_gives_the_same_choice_and_the_global_random_state_is_untouched():
    random.seed(0)
    expected_next = random.random()
    random.seed(0)
    first = [choose_emojis(SEED, index, 1.0) for index in range(50)]
    assert random.random() == expected_next
    assert [choose_emojis(SEED, index, 1.0) for index in range(50)] == first
    assert [choose_emojis(SEED + 1, index, 1.0) for index in range(50)] != first


def test_a_fresh_process_makes_the_same_choices():
    probe = (
        "from dataclasses import astuple\nfrom trainer.profiles.emoji_think import choose_emojis\n"
        "print([astuple(choose_emojis(42, i, 1.0)) for i in range(20)])"
    )
    # Another hash seed too: str hashing is salted per process, the choices must not depend on it.
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    here = [astuple(choose_emojis(SEED, index, 1.0)) for index in range(20)]
    assert completed.stdout.strip() == str(here)


def test_emoji_ratio_sets_the_share_of_examples_that_get_the_contract():
    example = chat(("user", "Q"), ("assistant", "A"))
    transformed = [transform(example, index, emoji_ratio=0.3) != transform(example, index, 0.0) for index in range(400)]
    assert 0.22 < sum(transformed) / 400 < 0.38
    assert transform(example, 3, emoji_ratio=0.0)["messages"] == [
        {"role": "system", "content": "SYS"},
        *example["messages"],
    ]


def test_an_example_that_keeps_the_contract_under_a_lower_ratio_keeps_its_emojis():
    kept = [index for index in range(50) if choose_emojis(SEED, index, 0.5)]
    assert kept
    assert all(choose_emojis(SEED, index, 0.5) == choose_emojis(SEED, index, 1.0) for index in kept)
