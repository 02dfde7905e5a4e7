"""Fixtures of the data tests: the tiny tokenizer and the sample data's split, built once; two
sources for mixtures; a dataset repository."""

from __future__ import annotations

import gzip
import json

import datasets
import pytest
from transformers import PreTrainedTokenizerFast

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


README = """---
configs:
- config_name: chat
  default: true
  data_files:
  - {split: train, path: chat/train.jsonl}
  - {split: validation, path: chat/validation.jsonl}
- config_name: alpaca
  data_files:
  - {split: train, path: alpaca/train.jsonl.gz}
  - {split: validation, path: alpaca/validation.jsonl}
---
Two configurations, two splits each.
"""


def chat(split: str, number: int) -> dict:
    return {"messages": [{"role": "user", "content": f"chat {split} {number}"}, {"role": "assistant", "content": "ok"}]}


def alpaca(split: str, number: int) -> dict:
    return {"instruction": f"alpaca {split} {number}", "output": "done"}


@pytest.fixture
def repository(tmp_path, monkeypatch):
    """A dataset repository of two configs (one of them gzip-compressed) and two splits, with
    datasets' cache under tmp_path."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    root = tmp_path / "repo"
    for config, make, sizes in (("chat", chat, {"train": 12, "validation": 3}), ("alpaca", alpaca, {"train": 8, "validation": 2})):  # fmt: skip
        (root / config).mkdir(parents=True)
        for split, size in sizes.items():
            lines = "".join(json.dumps(make(split, number)) + "\n" for number in range(size))
            (root / config / f"{split}.jsonl").write_text(lines)
    train = root / "alpaca" / "train.jsonl"
    (root / "alpaca" / "train.jsonl.gz").write_bytes(gzip.compress(train.read_bytes()))
    train.unlink()
    (root / "README.md").write_text(README)
    return root
