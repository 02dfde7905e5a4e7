"""Running the app under uvicorn so that SIGTERM (or Ctrl-C) stops the server within seconds."""

from __future__ import annotations

from types import FrameType

import uvicorn
from fastapi import FastAPI

from trainer.serve.scheduler import GenerationScheduler

# After a signal: how long answers in flight may take to be sent before their tasks are cancelled.
GRACEFUL_SHUTDOWN_SEC = 3


class StoppingServer(uvicorn.Server):
    """A uvicorn server that, on a shutdown signal, first stops the generations in progress (at
    their next token): uvicorn alone waits for every request to finish, however long it runs."""

    def __init__(self, config: uvicorn.Config, scheduler: GenerationScheduler) -> None:
        super().__init__(config)
        self.scheduler = scheduler

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.scheduler.stop()
        super().handle_exit(sig, frame)


def build_server(app: FastAPI, host: str, port: int, log_level: str = "info") -> StoppingServer:
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SEC
    )
    return StoppingServer(config, app.state.scheduler)
