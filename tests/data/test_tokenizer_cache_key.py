"""The tokenized cache names a tokenizer by what decides its ids, not by where it was loaded from:
any change to a tokenizer saved in place makes a fresh entry; one tokenizer saved twice shares one."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from trainer.config.schema import ProfileConfig, TinyModelConfig
from trainer.data.cache_entry import TokenizedData, tokenize_split
from trainer.data.split import RecordSplit
from trainer.modeling.tiny import build_model, build_tokenizer
from trainer.profiles.plain import PlainProfile

PROFILE = PlainProfile(ProfileConfig(), seed=0)


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(json.dumps(document), encoding="utf-8")


def keep_first_merges(directory: Path) -> None:
    """The vocabulary, and so the tokenizer's length, unchanged; the same text splits into more tokens."""
    edit_json(directory / "tokenizer.json", lambda tokenizer: tokenizer["model"].update(merges=tokenizer["model"]["merges"][:50]))  # fmt: skip


def add_a_token(directory: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.add_tokens(["plus"])
    tokenizer.save_pretrained(directory)


def lowercase_first(directory: Path) -> None:
    edit_json(directory / "tokenizer.json", lambda tokenizer: tokenizer.update(normalizer={"type": "Lowercase"}))


def swap_special_token_ids(directory: Path) -> None:
    """<|im_start|> and <|im_end|> trade ids: same tokens, same length, other ids."""

    def swap(tokenizer: dict) -> None:
        added = {token["content"]: token for token in tokenizer["added_tokens"]}
        start, end = added["<|im_start|>"], added["<|im_end|>"]
        start["id"], end["id"] = end["id"], start["id"]
        vocab = tokenizer["model"]["vocab"]
        vocab["<|im_start|>"], vocab["<|im_end|>"] = vocab["<|im_end|>"], vocab["<|im_start|>"]

    edit_json(directory / "tokenizer.json", swap)


def pad_on_the_left(directory: Path) -> None:
    edit_json(directory / "tokenizer_config.json", lambda config: config.update(padding_side="left"))


def another_chat_template(directory: Path) -> None:
    template = directory / "chat_template.jinja"
    template.write_text(template.read_text(encoding="utf-8").replace("<|im_start|>", "<|im_start|> "), encoding="utf-8")


IN_PLACE_CHANGES = [
    keep_first_merges,
    add_a_token,
    lowercase_first,
    swap_special_token_ids,
    pad_on_the_left,
    another_chat_template,
]


def save_tokenizer(directory: Path) -> Path:
    build_tokenizer(512).save_pretrained(directory)
    return directory


def prepare(directory: Path, split: RecordSplit, cache_dir: Path) -> TokenizedData:
    return tokenize_split(
        split, PROFILE, "Be brief.", AutoTokenizer.from_pretrained(directory), 64, cache_dir=cache_dir
    )


@pytest.mark.parametrize("change", IN_PLACE_CHANGES, ids=lambda change: change.__name__)
def test_a_tokenizer_changed_in_place_gets_a_fresh_cache_entry(sample_split, tmp_path, change):
    directory, cache_dir = save_tokenizer(tmp_path / "tokenizer"), tmp_path / "cache"
    before = prepare(directory, sample_split, cache_dir)
    change(directory)
    after = prepare(directory, sample_split, cache_dir)
    assert not after.from_cache and after.cache_entry != before.cache_entry
    assert after.tokenizer_digest != before.tokenizer_digest
    assert prepare(directory, sample_split, cache_dir).from_cache


def test_one_tokenizer_saved_at_two_paths_shares_one_entry(sample_split, tmp_path):
    first = save_tokenizer(tmp_path / "first")
    second = shutil.copytree(first, tmp_path / "elsewhere" / "second")
    made, read = prepare(first, sample_split, tmp_path / "cache"), prepare(second, sample_split, tmp_path / "cache")
    assert read.from_cache and read.cache_entry == made.cache_entry
    assert read.summary()["tokenizer_digest"] == made.summary()["tokenizer_digest"]


@pytest.mark.long
def test_a_pretrained_model_whose_merges_changed_in_place_is_tokenized_again(run_cli, tmp_path):
    model_dir, cache_dir = tmp_path / "model", tmp_path / "cache"
    tokenizer = build_tokenizer(512)
    build_model("llama", TinyModelConfig(), tokenizer).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)

    def train(run: str) -> dict:
        completed = run_cli(
            "model.source=pretrained", "model.architecture=llama", f"model.path={model_dir}",
            f"data.cache_dir={cache_dir}", "train.max_steps=1", "monitoring.tensorboard=false",
            f"run.output_dir={tmp_path / run}", cwd=tmp_path,
        )  # fmt: skip
        assert completed.returncode == 0, completed.stdout + completed.stderr
        return json.loads((tmp_path / run / "tokenized.json").read_text())

    first = train("first")
    keep_first_merges(model_dir)
    second = train("second")
    assert not second["read_from_cache"] and second["cache_key"] != first["cache_key"]
    assert second["tokenizer_digest"] != first["tokenizer_digest"]
    assert second["stats"]["train_tokens"] > first["stats"]["train_tokens"]
