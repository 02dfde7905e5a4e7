"""A cache entry is read only as it was written: one whose files were damaged since (bytes changed,
a file cut short, missing or added) is named in a warning, removed and tokenized again, never
trained on. An entry of the layout before checksums is never read either."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from trainer.config.schema import DataConfig, ProfileConfig
from trainer.data.cache import CHECKSUMS_FILE
from trainer.data.cache_entry import tokenize_split
from trainer.data.record_cache import RECORDS_DIR, TABLE_FILE
from trainer.data.split import load_record_split
from trainer.profiles.plain import PlainProfile

PROFILE = PlainProfile(ProfileConfig(), seed=0)


def rewrite(file: Path, data: bytes) -> None:
    """Replace `file` by a new one: this process still maps the old one (an in-place change
    would pull the pages from under it)."""
    file.with_name("new").write_bytes(data)
    file.with_name("new").replace(file)


def garble_middle(file: Path) -> None:
    """Same size, other bytes: where the token ids are, not the Arrow framing."""
    data = bytearray(file.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(255 - byte for byte in data[middle : middle + 64])
    rewrite(file, bytes(data))


def cut_short(file: Path) -> None:
    rewrite(file, file.read_bytes()[: file.stat().st_size // 2])


def remove(file: Path) -> None:
    file.unlink()


def overstate_tokens(file: Path) -> None:
    rewrite(file, json.dumps({**json.loads(file.read_text()), "train_tokens": 1}).encode())


DAMAGES: list[tuple[str, Callable[[Path], None]]] = [
    ("train.arrow", garble_middle),
    ("train.arrow", cut_short),
    ("validation.arrow", remove),
    ("stats.json", overstate_tokens),
    ("stats.json", remove),
    (CHECKSUMS_FILE, remove),
]


@pytest.mark.parametrize(("name", "damage"), DAMAGES, ids=lambda item: getattr(item, "__name__", str(item)))
def test_a_damaged_entry_is_named_removed_and_made_again(sample_split, tiny_tokenizer, tmp_path, caplog, name, damage):
    first = tokenize_split(sample_split, PROFILE, "Be brief.", tiny_tokenizer, 64, cache_dir=tmp_path)
    entry, made = first.cache_entry, (first.train["input_ids"], first.validation["labels"], first.stats)
    damage(entry / name)
    with caplog.at_level(logging.WARNING, logger="trainer.data.cache"):
        again = tokenize_split(sample_split, PROFILE, "Be brief.", tiny_tokenizer, 64, cache_dir=tmp_path)
    assert not again.from_cache and again.cache_entry == entry
    assert (again.train["input_ids"], again.validation["labels"], again.stats) == made
    [warning] = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert str(entry) in warning and name in warning
    assert tokenize_split(sample_split, PROFILE, "Be brief.", tiny_tokenizer, 64, cache_dir=tmp_path).from_cache


def test_a_file_added_to_an_entry_is_never_read(sample_split, tiny_tokenizer, tmp_path):
    first = tokenize_split(sample_split, PROFILE, "Be brief.", tiny_tokenizer, 64, cache_dir=tmp_path)
    (first.cache_entry / "train-extra.arrow").write_bytes((first.cache_entry / "train.arrow").read_bytes())
    again = tokenize_split(sample_split, PROFILE, "Be brief.", tiny_tokenizer, 64, cache_dir=tmp_path)
    assert not again.from_cache and len(again.train) == len(first.train)
    assert not (first.cache_entry / "train-extra.arrow").exists()


@pytest.mark.long
def test_an_entry_cut_short_is_made_again_through_the_cli(run_cli, tmp_path):
    cache_dir = tmp_path / "cache"

    def train(run: str):
        overrides = [f"data.cache_dir={cache_dir}", "train.max_steps=1", f"run.output_dir={tmp_path / run}"]
        return run_cli(*overrides, "monitoring.tensorboard=false", cwd=tmp_path)

    assert train("first").returncode == 0
    made = json.loads((tmp_path / "first" / "tokenized.json").read_text())
    cut_short(Path(made["cache_entry"]) / "train.arrow")
    completed = train("second")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    again = json.loads((tmp_path / "second" / "tokenized.json").read_text())
    assert not again["read_from_cache"] and again["stats"] == made["stats"]
    warnings = [line for line in completed.stdout.splitlines() if "[WARNING]" in line]
    assert any(f"{made['cache_entry']} is damaged (train.arrow" in line for line in warnings), completed.stdout


@pytest.mark.parametrize("damage", [garble_middle, cut_short, remove], ids=lambda damage: damage.__name__)
def test_a_damaged_records_entry_is_read_again_never_trained_on(tmp_path, caplog, damage):
    """The checked records kept for an unchanged file (data/record_cache.py) are cache entries too."""
    data = tmp_path / "chats.jsonl"
    chat = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    data.write_text("".join(json.dumps(chat) + "\n" for _ in range(20)), encoding="utf-8")
    config = DataConfig(train=str(data), validation_split=0, cache_dir=str(tmp_path / "cache"))
    first = load_record_split(config, PROFILE, seed=0)
    [table] = (tmp_path / "cache" / RECORDS_DIR).glob(f"*/{TABLE_FILE}")
    damage(table)
    with caplog.at_level(logging.WARNING, logger="trainer.data.cache"):
        again = load_record_split(config, PROFILE, seed=0)
    assert list(again.train) == list(first.train)
    [warning] = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert str(table.parent) in warning and TABLE_FILE in warning
