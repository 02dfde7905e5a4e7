"""preview=remote against the real `python -m trainer.serve` (and against a dead and a slow server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openai
import pytest

from tests.helpers import PREVIEW_RUN, free_port, read_previews, wait_until_healthy
from trainer.config.schema import ModelConfig
from trainer.engine import TrainerEngine
from trainer.modeling.tiny import tiny_model_dir

pytestmark = pytest.mark.slow

TOKEN_ENV = "TRAINER_TEST_PREVIEW_TOKEN"
TOKEN = "s3cret-preview-token"


@pytest.fixture(scope="module")
def server(model_cache, tmp_path_factory) -> Iterator[str]:
    """The shipped server on a free loopback port, with a bearer token, serving the tiny model and
    the checkpoints of the test runs (all under pytest's base temporary directory)."""
    port = free_port()
    model = tiny_model_dir(ModelConfig(cache_dir=str(model_cache)))
    flags = ["--port", str(port), "--token-env", TOKEN_ENV, "--allow-dir", str(tmp_path_factory.getbasetemp())]
    process = subprocess.Popen(
        [sys.executable, "-m", "trainer.serve", "--model", str(model), *flags],
        env={**os.environ, TOKEN_ENV: TOKEN},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def token_in_environment(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


def remote_run(make_config, url: str, *overrides: str):
    config = make_config("preview=remote", f"preview.remote.url={url}", *PREVIEW_RUN, *overrides)
    result = TrainerEngine(environ=os.environ).run_job(config)
    assert result.success, result.error_message
    return result, Path(config.run.output_dir)


@pytest.mark.parametrize("protocol", ["openai", "generate"])
def test_remote_previews_ask_the_server_for_the_newest_checkpoint(make_config, server, token_in_environment, protocol):
    result, run_dir = remote_run(
        make_config, server, f"preview.remote.protocol={protocol}", f"preview.remote.token_env={TOKEN_ENV}"
    )

    previews = read_previews(run_dir)
    assert [(preview["step"], preview["success"]) for preview in previews] == [(2, True)] * 2 + [(4, True)] * 2
    checkpoints = run_dir / "checkpoints"
    assert [preview["model"] for preview in previews] == [str(checkpoints / "checkpoint-2")] * 2 + [
        str(checkpoints / "checkpoint-4")
    ] * 2
    assert all(1 <= preview["tokens_generated"] <= 6 for preview in previews)
    assert result.summary["previews"]["failed"] == 0


def test_the_token_never_reaches_the_run_directory(make_config, server, token_in_environment):
    _, run_dir = remote_run(make_config, server, f"preview.remote.token_env={TOKEN_ENV}", "train.max_steps=2")
    files = [path for path in run_dir.rglob("*") if path.is_file()]
    assert all(TOKEN.encode() not in path.read_bytes() for path in files)


def test_without_the_token_the_server_refuses_and_the_run_records_it(make_config, server):
    result, run_dir = remote_run(make_config, server, "train.max_steps=2")
    previews = read_previews(run_dir)
    assert previews and all("HTTP 401" in preview["error_message"] for preview in previews)
    assert result.summary["previews"]["failed"] == len(previews)


def test_the_official_openai_client_talks_to_trainer_serve(server):
    client = openai.OpenAI(base_url=f"{server}/v1", api_key=TOKEN, max_retries=0)
    # First the served model; then any checkpoints earlier previews made it load.
    model = client.models.list().data[0].id
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "What is 2+2?"}], max_tokens=5
    )
    assert reply.choices[0].message.role == "assistant"
    assert isinstance(reply.choices[0].message.content, str)
    assert 1 <= reply.usage.completion_tokens <= 5


def test_the_server_rejects_a_model_it_cannot_find(server):
    request = urllib.request.Request(
        f"{server}/generate",
        data=json.dumps({"prompt": "hi", "max_tokens": 2, "model_id": "/no/such/model"}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 404


def test_a_dead_server_fails_every_preview_and_the_run_succeeds(make_config):
    _, run_dir = remote_run(make_config, f"http://127.0.0.1:{free_port()}", "preview.remote.retries=1")
    previews = read_previews(run_dir)
    assert len(previews) == 4
    assert all(not preview["success"] and "attempt 2 of 2" in preview["error_message"] for preview in previews)


class SlowHandler(BaseHTTPRequestHandler):
    """Answers every request, but only after longer than the previews' timeout."""

    def do_POST(self):
        time.sleep(2.0)
        try:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"text": "late", "tokens_generated": 1}')
        except ConnectionError:
            pass  # the client gave up long ago, as it should

    def log_message(self, *args):
        return None


@pytest.fixture
def slow_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_a_slow_server_never_stalls_training(make_config, slow_server):
    timeout = 0.3
    result, run_dir = remote_run(
        make_config,
        slow_server,
        "preview.remote.protocol=generate",
        f"preview.remote.timeout_sec={timeout}",
        "preview.remote.retries=0",
        "preview.every_steps=1",
    )
    previews = read_previews(run_dir)
    assert previews and not any(preview["success"] for preview in previews)
    assert any("timed out" in preview["error_message"] for preview in previews)
    assert {error_kind(preview["error_message"]) for preview in previews} <= {
        "timed out",
        "skipped",
        "no answer before",
    }
    waited = result.summary["previews"]
    # The steps only hand a round to the worker thread; the end waits at most timeout_sec in all.
    assert waited["wait_during_training_sec"] < 0.25
    assert waited["wait_at_end_sec"] < timeout + 0.2


def error_kind(message: str) -> str:
    return next(kind for kind in ("timed out", "skipped", "no answer before", "") if kind in message)
