"""Fixtures of the data tests: the tiny tokenizer and the sample data's split, built once; two
sources for mixtures; a dataset repository."""

from __future__ import annotations

import json

import datasets
import pytest
from transformers import PreTrainedTokenizerFast

from tests.data.repositories import write_repository
from trainer.config.schema import DataConfig, ProfileConfig
from trainer.data.split import RecordSplit, load_record_split
from trainer.modeling.tiny import build_tokenizer
from trainer.profiles.plain import PlainProfile


@pytest.fixture(scope="session")
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer(512)


@pytest.fixture(scope="session")
def sample_split() -> RecordSplit:
    """The shipped sample data with 8 validation records, as the plain profile (seed 0) reads it."""
    return load_record_split(DataConfig(validation_max_samples=8), PlainProfile(ProfileConfig(), seed=0), seed=0)


@pytest.fixture
def sources(tmp_path):
    """Two files whose answers differ in length: short ones (a few tokens) and long ones."""
    short = tmp_path / "short.jsonl"
    long = tmp_path / "long.jsonl"
    short.write_text("".join(json.dumps({"prompt": f"Add {n} and 1.", "completion": str(n + 1)}) + "\n" for n in range(1500)))  # fmt: skip
    long.write_text("".join(json.dumps({"instruction": f"Count to {n % 20 + 5}.", "output": " ".join(map(str, range(n % 20 + 5)))}) + "\n" for n in range(600)))  # fmt: skip
    return short, long


@pytest.fixture
def repository(tmp_path, monkeypatch):
    """A dataset repository of two configs (one of them gzip-compressed) and two splits, with
    datasets' cache under tmp_path."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    return write_repository(tmp_path / "repo")
