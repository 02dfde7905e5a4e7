"""`preview=remote`: ask an HTTP inference server for the answers, off the training thread.

Two protocols: OpenAI-compatible `POST /v1/chat/completions` (trainer.serve, vLLM, llama.cpp
server, TGI) and the seed system's `POST /generate` (`{prompt, max_tokens, temperature,
model_id}` -> `{text, tokens_generated}`). One round of previews runs at a time on a daemon
thread; a round due while the previous one still waits for the server is recorded as skipped, so
a slow or dead server costs the training loop nothing but the hand-off. Every request has a
timeout and a bounded number of retries; failures become PreviewResults with their error.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from trainer.config import PreviewConfig, RemotePreviewConfig
from trainer.errors import UserError
from trainer.preview.base import PreviewPrompt, PreviewRequest, PreviewResult

PROTOCOLS = ("openai", "generate")
# The model name that asks trainer.serve for the model it was started with.
DEFAULT_MODEL_NAME = "default"
RETRY_BACKOFF_SEC = 0.5
# Waiting a little longer than the requests may take lets a timed-out request report its own error.
WAIT_MARGIN_SEC = 1.0


class RemoteError(Exception):
    """The server did not answer, or answered with an error."""


def read_token(config: RemotePreviewConfig, environ: Mapping[str, str]) -> str | None:
    """The bearer token from the environment variable named by `remote.token_env` (None when no
    variable is named). Read once by the engine, so the value never enters the config."""
    if config.token_env is None:
        return None
    if not (token := environ.get(config.token_env)):
        raise UserError(f"preview.remote.token_env={config.token_env}, but that environment variable is not set")
    return token


class RemoteClient:
    """One preview answer per call, over HTTP, with a timeout and bounded retries."""

    def __init__(self, config: PreviewConfig, token: str | None) -> None:
        self.remote = config.remote
        self.max_new_tokens = config.max_new_tokens
        self.temperature = config.temperature
        self.token = token

    def answer(self, prompt: PreviewPrompt, model: str) -> tuple[str, int]:
        """(answer text, tokens generated) for `prompt` from `model` on the server."""
        if self.remote.protocol == "openai":
            reply = self.post(
                "/v1/chat/completions",
                {
                    "model": model,
                    "messages": prompt.messages,
                    "max_tokens": self.max_new_tokens,
                    "temperature": self.temperature,
                },
            )
            try:
                return reply["choices"][0]["message"]["content"] or "", int(reply["usage"]["completion_tokens"])
            except (KeyError, IndexError, TypeError, ValueError) as error:
                raise RemoteError(f"unexpected chat completion reply: {str(reply)[:200]}") from error
        reply = self.post(
            "/generate",
            {
                "prompt": prompt.text,
                "max_tokens": self.max_new_tokens,
                "temperature": self.temperature,
                "model_id": model,
            },
        )
        try:
            return str(reply["text"]), int(reply["tokens_generated"])
        except (KeyError, TypeError, ValueError) as error:
            raise RemoteError(f"unexpected /generate reply: {str(reply)[:200]}") from error

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        attempts = self.remote.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return self.post_once(path, body)
            except RemoteError as error:
                retryable = not isinstance(error.__cause__, urllib.error.HTTPError) or error.__cause__.code >= 500
                if not retryable or attempt == attempts:
                    raise RemoteError(f"{error} (attempt {attempt} of {attempts})") from error
                time.sleep(RETRY_BACKOFF_SEC * attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def post_once(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self.remote.url.rstrip("/") + path
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.remote.timeout_sec) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:300]
            raise RemoteError(f"POST {url}: HTTP {error.code} {detail}") from error
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise RemoteError(f"POST {url}: {type(reason).__name__}: {reason}") from error
        except json.JSONDecodeError as error:
            raise RemoteError(f"POST {url}: the reply is not JSON") from error

    def round_budget_sec(self, prompts: int) -> float:
        """The longest one round of `prompts` can take: every attempt timing out, plus backoff."""
        attempts = self.remote.retries + 1
        backoff = RETRY_BACKOFF_SEC * attempts * (attempts - 1) / 2
        return prompts * (attempts * self.remote.timeout_sec + backoff)


class RemotePreviewBackend:
    backend_type = "remote"

    def __init__(self, config: PreviewConfig, token: str | None) -> None:
        self.remote = config.remote
        self.client = RemoteClient(config, token)
        self.lock = threading.Lock()
        self.finished: list[PreviewResult] = []
        # The prompts of the running round not answered yet, and that round's step.
        self.pending: list[PreviewPrompt] = []
        self.pending_step = 0
        self.worker: threading.Thread | None = None

    def submit(self, request: PreviewRequest) -> None:
        with self.lock:
            if self.pending:
                busy = f"skipped: the previews of step {self.pending_step} are still waiting for the server"
                self.finished += [self.failure(prompt, request.step, busy) for prompt in request.prompts]
                return
            self.pending, self.pending_step = list(request.prompts), request.step
        model = self.model_for(request.checkpoint)
        # A daemon thread: a server that never answers cannot keep the process alive either.
        self.worker = threading.Thread(
            target=self.run_round, args=(request.step, request.prompts, model), name="remote-preview", daemon=True
        )
        self.worker.start()

    def model_for(self, checkpoint: str | None) -> str:
        if self.remote.send_checkpoint and checkpoint:
            return checkpoint
        return self.remote.model or DEFAULT_MODEL_NAME

    def run_round(self, step: int, prompts: list[PreviewPrompt], model: str) -> None:
        for prompt in prompts:
            result = self.preview(prompt, step, model)
            with self.lock:
                if prompt in self.pending:
                    self.pending.remove(prompt)
                    self.finished.append(result)

    def preview(self, prompt: PreviewPrompt, step: int, model: str) -> PreviewResult:
        started = time.perf_counter()
        try:
            text, tokens = self.client.answer(prompt, model)
        except RemoteError as error:
            return self.failure(prompt, step, str(error), time.perf_counter() - started, model)
        return PreviewResult.answered(
            prompt, step, self.backend_type, text, tokens, time.perf_counter() - started, model=model
        )

    def failure(
        self, prompt: PreviewPrompt, step: int, error: str, seconds: float = 0.0, model: str | None = None
    ) -> PreviewResult:
        return PreviewResult.failed(prompt, step, self.backend_type, error, seconds, model=model)

    def collect(self) -> list[PreviewResult]:
        with self.lock:
            finished, self.finished = self.finished, []
        return finished

    def wait(self) -> list[PreviewResult]:
        """Wait for the running round, at most as long as its requests may take; prompts still
        unanswered then are recorded as failures (a late answer is dropped)."""
        with self.lock:
            budget = self.client.round_budget_sec(len(self.pending)) + WAIT_MARGIN_SEC
        if self.worker is not None:
            self.worker.join(timeout=budget)
        with self.lock:
            late = f"no answer within {budget:.1f}s, the most this round's requests may take"
            self.finished += [self.failure(prompt, self.pending_step, late) for prompt in self.pending]
            self.pending = []
        return self.collect()
