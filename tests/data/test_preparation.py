"""Tokenized data is saved in the run directory and read back for the same inputs only."""

from __future__ import annotations

import pytest

from trainer.config import DataConfig, ProfileConfig
from trainer.data import preparation
from trainer.data.preparation import load_record_split, tokenize_split
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
    monkeypatch.setattr(preparation, "tokenize_with_assistant_mask", pytest.fail)
    again = tokenize_split(split, PROFILE, "Be brief.", tokenizer, 64, cache_dir=tmp_path)
    assert again.train["input_ids"] == first.train["input_ids"] and again.train["labels"] == first.train["labels"]
    assert again.validation["labels"] == first.validation["labels"]
    assert again.stats == first.stats


def test_changed_inputs_are_tokenized_afresh(split, tokenizer, tmp_path):
    tokenize_split(split, PROFILE, "Be brief.", tokenizer, 64, cache_dir=tmp_path)
    other = tokenize_split(split, PROFILE, "Be very brief.", tokenizer, 64, cache_dir=tmp_path)
    assert "Be very brief." in tokenizer.decode(other.train["input_ids"][0])
    assert len(list(tmp_path.iterdir())) == 2
