"""The server under test: the real app under the real uvicorn server, on a free loopback port, in
a thread of the test process (so tests can read its log), answering with the tiny model."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import openai
import torch

from trainer.serve.app import create_app
from trainer.serve.limits import ServerLimits
from trainer.serve.models import ModelCache
from trainer.serve.scheduler import GenerationScheduler
from trainer.serve.server import build_server

SERVED_NAME = "tiny"
TOKEN = "test-token"
HELLO = [{"role": "user", "content": "What is 2+2?"}]


@dataclass
class RunningServer:
    url: str
    scheduler: GenerationScheduler

    def client(self, token: str = TOKEN, timeout: float = 60.0) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=token, max_retries=0, timeout=timeout)


@contextmanager
def serving(
    model: Path, limits: ServerLimits | None = None, allow_dirs: tuple[Path, ...] = (), token: str | None = TOKEN
) -> Iterator[RunningServer]:
    models = ModelCache(str(model), SERVED_NAME, list(allow_dirs), 2, torch.float32, "cpu")
    models.load(models.default_path)
    app = create_app(models, limits or ServerLimits(), token)
    server = build_server(app, "127.0.0.1", 0, log_level="warning")
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningServer(f"http://127.0.0.1:{port}", app.state.scheduler)
    finally:
        server.handle_exit(signal.SIGTERM, None)  # what a SIGTERM does, without the signal
        thread.join(timeout=30)
        assert not thread.is_alive(), "the server did not stop"


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)
