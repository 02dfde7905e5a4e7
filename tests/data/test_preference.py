"""Preference records: every accepted shape becomes the same pair, rendered with the run's
template and labelled on the answer plus its end-of-turn only; a profile shapes both sides of a
pair alike; bad pairs go through data.on_bad_record, named by file and line."""

from __future__ import annotations

import json

import pytest

from trainer.config.schema import DataConfig, ProfileConfig
from trainer.data.preference import (
    checked_pairs,
    load_preference_split,
    tokenize_preference_split,
)
from trainer.data.tokenization import IGNORE_INDEX
from trainer.errors import DataError
from trainer.modeling.template_layout import render_conversation
from trainer.profiles import build_profile
from trainer.profiles.plain import PlainProfile

SYSTEM = "You are a calculator."
PROMPT = [
    {"role": "user", "content": "What is 2 plus 2?"},
    {"role": "assistant", "content": "2 + 2 = 4"},
    {"role": "user", "content": "And 3 plus 4?"},
]
CHOSEN, REJECTED = "3 + 4 = 7", "3 + 4 = 8"
# One pair in every accepted shape.
SHAPES = {
    "conversational": {
        "prompt": PROMPT,
        "chosen": [{"role": "assistant", "content": CHOSEN}],
        "rejected": [{"role": "assistant", "content": REJECTED}],
    },
    "implicit prompt": {
        "chosen": [*PROMPT, {"role": "assistant", "content": CHOSEN}],
        "rejected": [*PROMPT, {"role": "assistant", "content": REJECTED}],
    },
    "sharegpt": {
        "conversations": [
            {"from": "human", "value": PROMPT[0]["content"]},
            {"from": "gpt", "value": PROMPT[1]["content"]},
            {"from": "human", "value": PROMPT[2]["content"]},
        ],
        "chosen": {"from": "gpt", "value": CHOSEN},
        "rejected": {"from": "gpt", "value": REJECTED},
    },
}


def write_lines(path, records) -> str:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return str(path)


def tokenized(tmp_path, records, tokenizer, profile=None, name="pairs.jsonl"):
    profile = profile or PlainProfile(ProfileConfig(), seed=0)
    config = DataConfig(train=write_lines(tmp_path / name, records), validation_split=0.0, max_length=1024)
    split = load_preference_split(config, profile, seed=0)
    return tokenize_preference_split(split, profile, SYSTEM, tokenizer, 1024).train


def learned(tokenizer, ids, labels) -> str:
    return tokenizer.decode([label for label in labels if label != IGNORE_INDEX])


def test_every_shape_is_the_same_pair(tmp_path, tiny_tokenizer):
    rows = [tokenized(tmp_path, [record], tiny_tokenizer, name=f"{shape}.jsonl")[0] for shape, record in SHAPES.items()]
    assert all(row == rows[0] for row in rows)


def test_labels_are_the_answer_and_its_end_of_turn_only(tmp_path, tiny_tokenizer):
    """The earlier assistant turn of the prompt is context, never learned; each side's labels are
    its answer as the template renders it, end-of-turn included, and its tokens are the render."""
    row = tokenized(tmp_path, [SHAPES["conversational"]], tiny_tokenizer)[0]
    for side, answer in (("chosen", CHOSEN), ("rejected", REJECTED)):
        ids, labels = row[f"{side}_input_ids"], row[f"{side}_labels"]
        messages = [{"role": "system", "content": SYSTEM}, *PROMPT, {"role": "assistant", "content": answer}]
        assert tiny_tokenizer.decode(ids) == render_conversation(tiny_tokenizer, messages)
        assert learned(tiny_tokenizer, ids, labels) == answer + "<|im_end|>"
        # Learned tokens form one run at the end of the answer turn: the prompt is all context.
        positions = [position for position, label in enumerate(labels) if label != IGNORE_INDEX]
        assert positions == list(range(positions[0], positions[-1] + 1))
        assert [ids[position] for position in positions] == [labels[position] for position in positions]


def test_string_prompt_and_answers_are_a_user_turn_and_assistant_turns(tmp_path, tiny_tokenizer):
    record = {"prompt": "What is 3 plus 4?", "chosen": CHOSEN, "rejected": REJECTED}
    row = tokenized(tmp_path, [record], tiny_tokenizer)[0]
    assert learned(tiny_tokenizer, row["chosen_input_ids"], row["chosen_labels"]) == CHOSEN + "<|im_end|>"
    assert "<|im_start|>user\nWhat is 3 plus 4?<|im_end|>" in tiny_tokenizer.decode(row["rejected_input_ids"])


def test_a_profile_shapes_both_sides_of_a_pair_alike(tmp_path, tiny_tokenizer):
    """emoji_think's per-example choices (emoji, counts) are the pair's: the prompts are the same
    tokens and the answers differ only where the records' answers do."""
    profile = build_profile(ProfileConfig(name="emoji_think"), seed=0)
    row = tokenized(tmp_path, [SHAPES["conversational"]], tiny_tokenizer, profile)[0]
    chosen = learned(tiny_tokenizer, row["chosen_input_ids"], row["chosen_labels"])
    rejected = learned(tiny_tokenizer, row["rejected_input_ids"], row["rejected_labels"])
    assert chosen != CHOSEN + "<|im_end|>"
    assert chosen.replace(CHOSEN, REJECTED) == rejected
    start = row["chosen_labels"].index(next(label for label in row["chosen_labels"] if label != IGNORE_INDEX))
    assert row["chosen_input_ids"][:start] == row["rejected_input_ids"][:start]


BAD_PAIRS = {
    "'chosen' equals 'rejected'": {"prompt": "Q?", "chosen": "A", "rejected": "A"},
    "no 'rejected'": {"prompt": "Q?", "chosen": "A"},
    "empty 'chosen' answer": {"prompt": "Q?", "chosen": "", "rejected": "B"},
    "a prompt without answers": {"prompt": "Q?"},
}


def test_each_bad_pair_is_named_by_file_and_line(tmp_path):
    good = {"prompt": "Q?", "chosen": "A", "rejected": "B"}
    path = write_lines(tmp_path / "pairs.jsonl", [good, *BAD_PAIRS.values()])
    with pytest.raises(DataError) as raised:
        checked_pairs(path, PlainProfile(ProfileConfig(), seed=0), "error")
    problems = raised.value.problems
    assert len(problems) == len(BAD_PAIRS)
    for line, (problem, message) in enumerate(zip(BAD_PAIRS, problems, strict=True), start=2):
        assert message.startswith(f"{path}:{line} ") and problem in message, message


def test_skip_keeps_the_good_pairs_and_counts_the_bad(tmp_path):
    good = {"prompt": "Q?", "chosen": "A", "rejected": "B"}
    path = write_lines(tmp_path / "pairs.jsonl", [good, *BAD_PAIRS.values(), good])
    pairs, skipped = checked_pairs(path, PlainProfile(ProfileConfig(), seed=0), "skip")
    assert [index for index, _ in pairs] == [0, len(BAD_PAIRS) + 1]
    assert skipped == len(BAD_PAIRS)
