"""Tokenized data: batched and parallel with the masks of one conversation at a time, saved in a
content-addressed cache entry and read back for the same inputs only, never half-written."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys

import pytest

from trainer.config.schema import DataConfig, ProfileConfig
from trainer.data import cache_entry, checking, encoding
from trainer.data.cache_entry import tokenize_split
from trainer.data.split import load_record_split
from trainer.data.tokenization import tokenize_with_assistant_mask
from trainer.modeling.template_layout import TemplateError
from trainer.modeling.tiny import build_tokenizer
from trainer.profiles.plain import PlainProfile

PROFILE = PlainProfile(ProfileConfig(), seed=0)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(512)


@pytest.fixture(scope="module")
def split():
    return load_record_split(DataConfig(validation_max_samples=8), PROFILE, seed=0)


def test_a_second_tokenization_of_the_same_inputs_reads_the_cache(split, tokenizer, tmp_path, monkeypatch):
    first = tokenize_split(split, PROFILE, "Be brief.", tokenizer, 64, cache_dir=tmp_path)
    monkeypatch.setattr(encoding, "tokenize_examples", pytest.fail)
    again = tokenize_split(split, PROFILE, "Be brief.", tokenizer, 64, cache_dir=tmp_path)
    assert again.train["input_ids"] == first.train["input_ids"] and again.train["labels"] == first.train["labels"]
    assert again.validation["labels"] == first.validation["labels"]
    assert again.stats == first.stats


def test_changed_inputs_are_tokenized_afresh(split, tokenizer, tmp_path):
    tokenize_split(split, PROFILE, "Be brief.", tokenizer, 64, cache_dir=tmp_path)
    other = tokenize_split(split, PROFILE, "Be very brief.", tokenizer, 64, cache_dir=tmp_path)
    assert "Be very brief." in tokenizer.decode(other.train["input_ids"][0])
    assert len([entry for entry in tmp_path.iterdir() if entry.is_dir()]) == 2


@pytest.mark.parametrize("processes", [1, 2])
def test_batched_tokenization_gives_the_masks_and_counts_of_one_conversation_at_a_time(
    split, tokenizer, tmp_path, monkeypatch, processes
):
    monkeypatch.setattr(checking, "MIN_ROWS_PER_PROCESS", 10)
    monkeypatch.setattr(cache_entry, "BATCH_SIZE", 16)
    data = tokenize_split(split, PROFILE, "Be brief.", tokenizer, 28, cache_dir=tmp_path, num_proc=processes)
    one_by_one = [
        tokenize_with_assistant_mask(
            tokenizer, PROFILE.transform_example(record.example, index, "Be brief.")["messages"], 28
        )
        for index, record in split.train
    ]
    kept = [example for example in one_by_one if example.has_assistant_tokens]
    assert data.train["input_ids"] == [example.input_ids for example in kept]
    assert data.train["labels"] == [example.labels for example in kept]
    assert data.train["attention_mask"] == [[1] * len(example.input_ids) for example in kept]
    assert data.stats["train_truncated"] == sum(example.truncated for example in one_by_one) > 0
    assert data.stats["train_dropped"] == len(one_by_one) - len(kept) > 0
    assert data.stats["train_tokens"] == sum(len(example.input_ids) for example in kept)


def test_an_interrupted_writer_leaves_nothing_that_is_read(split, tokenizer, tmp_path, monkeypatch):
    def interrupted(entry, scratch, stats):
        assert list((scratch / "complete").glob("train*.arrow"))
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_entry, "publish", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tokenize_split(split, PROFILE, "Be brief.", tokenizer, 64, cache_dir=tmp_path)
    assert [entry.suffix for entry in tmp_path.iterdir()] == [".lock"]
    monkeypatch.undo()
    again = tokenize_split(split, PROFILE, "Be brief.", tokenizer, 64, cache_dir=tmp_path)
    assert not again.from_cache and again.stats["train_examples"] > 0


def test_a_killed_writers_scratch_and_a_stray_entry_without_stats_are_never_read(split, tokenizer, tmp_path):
    first = tokenize_split(split, PROFILE, "Be brief.", tokenizer, 64, cache_dir=tmp_path)
    entry = first.cache_entry
    (entry / "stats.json").unlink()
    leftover = tmp_path / f".work-{entry.name}-killed"
    (leftover / "complete").mkdir(parents=True)
    again = tokenize_split(split, PROFILE, "Be brief.", tokenizer, 64, cache_dir=tmp_path)
    assert not again.from_cache and (entry / "stats.json").is_file() and not leftover.exists()
    assert again.train["labels"] == first.train["labels"]


PREPARE_SCRIPT = """
import logging, sys
from pathlib import Path
from trainer.config.schema import DataConfig, ProfileConfig
from trainer.data.cache_entry import tokenize_split
from trainer.data.split import load_record_split
from trainer.data.tokenization import tokenize_with_assistant_mask
from trainer.modeling.template_layout import TemplateError
from trainer.modeling.tiny import build_tokenizer
from trainer.profiles.plain import PlainProfile
logging.basicConfig(level=logging.INFO, format="%(message)s")
profile = PlainProfile(ProfileConfig(), seed=0)
split = load_record_split(DataConfig(validation_max_samples=8), profile, seed=0)
data = tokenize_split(split, profile, "Be brief.", build_tokenizer(512), 64, cache_dir=Path(sys.argv[1]))
print("examples", data.stats["train_examples"])
"""


def test_two_processes_preparing_the_same_data_at_once_both_succeed_with_one_cache(tmp_path):
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", PREPARE_SCRIPT, str(tmp_path / "cache")]
    processes = [subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]  # fmt: skip
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert outputs[0][0] == outputs[1][0] != ""
    logs = "".join(errors for _, errors in outputs)
    assert logs.count("saved to the cache") == 1 and logs.count("read from the cache") == 1
    entries = [entry for entry in (tmp_path / "cache").iterdir() if not entry.name.endswith(".lock")]
    assert len(entries) == 1 and (entries[0] / "stats.json").is_file()


@pytest.mark.parametrize("processes", [1, 2])
def test_a_conversation_the_template_refuses_is_named_by_its_line_from_any_process(tmp_path, monkeypatch, processes):
    from tests.template_families import family_tokenizer

    monkeypatch.setattr(checking, "MIN_ROWS_PER_PROCESS", 5)
    monkeypatch.setattr(cache_entry, "BATCH_SIZE", 4)
    good = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    refused = {"messages": [{"role": "user", "content": "a"}, *good["messages"]]}
    lines = [json.dumps(refused if number == 17 else good) for number in range(1, 21)]
    (tmp_path / "chats.jsonl").write_text("\n".join(lines) + "\n")
    split = load_record_split(DataConfig(train=str(tmp_path / "chats.jsonl"), validation_split=0.0), PROFILE, seed=0)
    with pytest.raises(TemplateError, match=r"chats.jsonl:17 \(example 16\): the Gemma chat template refuses"):
        tokenize_split(
            split, PROFILE, "", family_tokenizer("gemma-2"), 64, cache_dir=tmp_path / "c", num_proc=processes
        )


def test_conversations_truncated_by_more_than_half_are_a_warning_naming_how_many(tokenizer, tmp_path, caplog):
    def chat(answer: str) -> str:
        return json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": answer}]})

    data = tmp_path / "chats.jsonl"
    data.write_text("\n".join([chat("Fine."), chat("long " * 300), chat("longer " * 400), chat("Yes.")]) + "\n")
    split = load_record_split(DataConfig(train=str(data), validation=str(data)), PROFILE, seed=0)
    for _ in ("tokenized", "read back from the cache"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=cache_entry.__name__):
            tokenize_split(split, PROFILE, "Be brief.", tokenizer, 32, cache_dir=tmp_path / "cache")
        warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
        assert [re.sub(r"\d+%", "N%", warning) for warning in warnings] == [
            f"{name} set: 2 conversation(s) lost more than half their tokens to data.max_length=32 (the worst lost N%); "
            "raise data.max_length or split long conversations"
            for name in ("train", "validation")
        ]
        assert int(re.search(r"(\d+)%", warnings[0]).group(1)) > 90
