"""Fixtures of the server tests: the tiny models, and a server with the default limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve.running import RunningServer, serving
from trainer.config.schema import ModelConfig, TinyModelConfig
from trainer.modeling.tiny import tiny_model_dir


@pytest.fixture(scope="session")
def tiny_model(model_cache: Path) -> Path:
    return tiny_model_dir(ModelConfig(cache_dir=str(model_cache)))


@pytest.fixture(scope="session")
def long_context_model(model_cache: Path) -> Path:
    """The tiny model with a context long enough that a generation can run for minutes."""
    return tiny_model_dir(ModelConfig(cache_dir=str(model_cache), tiny=TinyModelConfig(max_position_embeddings=10**7)))


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[RunningServer]:
    """Default limits, a bearer token, no allowed directories."""
    with serving(tiny_model) as running:
        yield running
