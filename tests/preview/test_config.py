"""The preview section: every problem named before any model loads; the token read from the
environment variable the config names, never from the config itself."""

from __future__ import annotations

import pytest

from tests.helpers import problems_of
from trainer.config.schema import RemotePreviewConfig
from trainer.config.validate import validate_config
from trainer.errors import UserError
from trainer.facts import gather_facts
from trainer.preview.remote import read_token


@pytest.mark.parametrize("backend", ["none", "local", "remote"])
def test_each_shipped_preview_option_is_valid(make_config, backend):
    validate_config(make_config(f"preview={backend}"), gather_facts())


def test_every_preview_problem_is_reported(make_config):
    config = make_config(
        "preview=remote",
        "preview.every_steps=0",
        "preview.temperature=-1",
        "preview.remote.url=localhost:8765",
        "preview.remote.protocol=grpc",
        "preview.remote.timeout_sec=0",
    )
    assert problems_of(config) == [
        "preview.every_steps must be >= 1 (got 0)",
        "preview.temperature must be >= 0 (got -1.0); 0 means greedy",
        "preview.remote.url=localhost:8765 must start with http:// or https://",
        "preview.remote.protocol=grpc is unknown; choose one of openai, generate",
        "preview.remote.timeout_sec must be > 0 (got 0.0)",
    ]


def test_an_unknown_backend_lists_the_three(make_config):
    assert problems_of(make_config("preview.backend=vllm")) == [
        "preview.backend=vllm is unknown; choose one of none, local, remote"
    ]


def test_the_token_comes_from_the_named_variable():
    assert read_token(RemotePreviewConfig(token_env="PREVIEW_TOKEN"), {"PREVIEW_TOKEN": "abc"}) == "abc"
    assert read_token(RemotePreviewConfig(), {"PREVIEW_TOKEN": "abc"}) is None


def test_a_named_but_unset_token_variable_is_a_user_error():
    with pytest.raises(UserError, match=r"preview\.remote\.token_env=PREVIEW_TOKEN"):
        read_token(RemotePreviewConfig(token_env="PREVIEW_TOKEN"), {})
