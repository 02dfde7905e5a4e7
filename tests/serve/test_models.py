"""trainer.serve serves the model it was started with and checkpoints under --allow-dir, and
nothing else: every other name is the same 404, and nothing tells a client what exists."""

from __future__ import annotations

import json
import logging
import os
import shutil
import urllib.request
from pathlib import Path

import openai
import pytest

from tests.serve.running import HELLO, SERVED_NAME, TOKEN, serving


@pytest.fixture(scope="module")
def allowed(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """An allowed directory holding a run with one checkpoint (a copy of the tiny model)."""
    root = tmp_path_factory.mktemp("allowed")
    shutil.copytree(tiny_model, root / "run" / "checkpoints" / "checkpoint-2")
    return root


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, allowed: Path) -> Path:
    """A real model directory outside the allowed one, and a symlink to it inside."""
    model = tmp_path_factory.mktemp("outside") / "model"
    shutil.copytree(tiny_model, model)
    (allowed / "run" / "link-out").symlink_to(model)
    return model


@pytest.fixture(scope="module")
def guarded(tiny_model: Path, allowed: Path):
    with serving(tiny_model, allow_dirs=(allowed,)) as running:
        yield running


def ask(client: openai.OpenAI, model: str) -> str:
    reply = client.chat.completions.create(model=model, messages=HELLO, max_tokens=2)
    return reply.model


@pytest.mark.parametrize("name", [SERVED_NAME, "default"])
def test_the_served_model_answers_by_its_name_and_as_default(guarded, name):
    assert ask(guarded.client(), name) == name


def test_a_checkpoint_under_an_allowed_directory_is_served_and_listed(guarded, allowed):
    checkpoint = str(allowed / "run" / "checkpoints" / "checkpoint-2")
    client = guarded.client()

    ask(client, checkpoint)

    assert [model.id for model in client.models.list().data] == [SERVED_NAME, checkpoint]


def test_every_other_name_is_the_same_404_whether_it_exists_or_not(guarded, allowed, outside, caplog):
    relative_escape = os.path.relpath(outside, Path.cwd())
    names = {
        "an existing model outside": str(outside),
        "a system directory": "/etc",
        "a system file": "/etc/passwd",
        "a missing path": "/no/such/model",
        "a missing path in the allowed dir": str(allowed / "run" / "checkpoints" / "checkpoint-9"),
        "a file in the allowed dir": str(allowed / "run" / "checkpoints" / "checkpoint-2" / "config.json"),
        "traversal out of the allowed dir": f"{allowed}/run/../../{Path(outside).parent.name}/model",
        "a relative path out": relative_escape,
        "a symlink out of the allowed dir": str(allowed / "run" / "link-out"),
        "a NUL byte": "/etc\x00",
        "a huge name": "x" * 4000,
    }
    client = guarded.client()
    listed_before = [model.id for model in client.models.list().data]
    messages = {}
    for case, name in names.items():
        with pytest.raises(openai.NotFoundError) as refused:
            ask(client, name)
        assert refused.value.body["code"] == "model_not_found", case
        messages[case] = refused.value.body["message"].replace(repr(name[:200]), "NAME")

    assert len(set(messages.values())) == 1, messages
    assert [model.id for model in client.models.list().data] == listed_before
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def get_health(url: str, token: str | None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(f"{url}/health", headers=headers), timeout=10) as response:
        return json.loads(response.read())


def test_health_tells_an_unauthorized_caller_only_that_the_server_is_up(guarded):
    assert get_health(guarded.url, None) == {"status": "ok"}
    assert get_health(guarded.url, "wrong") == {"status": "ok"}
    assert get_health(guarded.url, TOKEN)["model"] == SERVED_NAME


def test_a_wrong_token_is_refused_in_openai_format(guarded):
    with pytest.raises(openai.AuthenticationError) as refused:
        guarded.client(token="wrong").models.list()
    assert refused.value.status_code == 401
    assert refused.value.body["code"] == "invalid_api_key"
