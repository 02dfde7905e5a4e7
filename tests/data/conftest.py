"""Fixtures of the data tests: the tiny tokenizer and the sample data's split, built once."""

from __future__ import annotations

import pytest
from transformers import PreTrainedTokenizerFast

from trainer.config.schema import DataConfig, ProfileConfig
from trainer.data.preparation import RecordSplit, load_record_split
from trainer.modeling.tiny import build_tokenizer
from trainer.profiles.plain import PlainProfile


@pytest.fixture(scope="session")
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer(512)


@pytest.fixture(scope="session")
def sample_split() -> RecordSplit:
    """The shipped sample data with 8 validation records, as the plain profile (seed 0) reads it."""
    return load_record_split(DataConfig(validation_max_samples=8), PlainProfile(ProfileConfig(), seed=0), seed=0)
