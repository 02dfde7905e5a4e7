"""`preview=remote`: ask an HTTP inference server for the answers, off the training thread.

Two protocols: OpenAI-compatible `POST /v1/chat/completions` (trainer.serve, vLLM, llama.cpp
server, TGI) and the seed system's `POST /generate` (`{prompt, max_tokens, temperature,
model_id}` -> `{text, tokens_generated}`). One round of previews runs at a time on a daemon
thread; a round due while the previous one still waits for the server is recorded as skipped, so
a slow or dead server costs the training loop nothing but the hand-off. Every request has a
timeout and a bounded number of retries; every failure (refused, timed out, an HTTP error, bytes
that are no HTTP, a body that is no UTF-8 JSON, JSON of the wrong shape) becomes one
PreviewResult with its cause. The end of training waits at most `timeout_sec` for the server.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from trainer.config.schema import DEFAULT_MODEL_NAME, PreviewConfig, RemotePreviewConfig
from trainer.errors import UserError
from trainer.preview.base import PreviewPrompt, PreviewRequest, PreviewResult

log = logging.getLogger(__name__)

RETRY_BACKOFF_SEC = 0.5
# A reply larger than this is no preview answer; reading it all could exhaust memory.
MAX_REPLY_BYTES = 16 * 2**20


class RemoteError(Exception):
    """The server did not answer, or answered with an error or something that is no answer.
    `retryable`: asking again may help (no connection, a timeout, a 5xx), as opposed to a refusal
    or a malformed reply, which would come again."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


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
            return read_chat_completion(reply)
        reply = self.post(
            "/generate",
            {
                "prompt": prompt.text,
                "max_tokens": self.max_new_tokens,
                "temperature": self.temperature,
                "model_id": model,
            },
        )
        return read_generate_reply(reply)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        attempts = self.remote.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return self.post_once(path, body)
            except RemoteError as error:
                if not error.retryable or attempt == attempts:
                    raise RemoteError(f"{error} (attempt {attempt} of {attempts})") from error
                time.sleep(RETRY_BACKOFF_SEC * attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def post_once(self, path: str, body: dict[str, Any]) -> Any:
        url = self.remote.url.rstrip("/") + path
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.remote.timeout_sec) as response:
                raw = response.read(MAX_REPLY_BYTES + 1)
        except urllib.error.HTTPError as error:
            retryable = error.code >= 500 or error.code == 429
            raise RemoteError(f"POST {url}: HTTP {error.code} {error_detail(error)}", retryable) from error
        except http.client.HTTPException as error:  # bytes that are no HTTP reply, a cut-off reply
            raise RemoteError(f"POST {url}: not a valid HTTP reply ({type(error).__name__}: {error})", True) from error
        except OSError as error:  # refused, reset, timed out (URLError is an OSError)
            reason = getattr(error, "reason", error)
            raise RemoteError(f"POST {url}: {type(reason).__name__}: {reason}", True) from error
        if len(raw) > MAX_REPLY_BYTES:
            raise RemoteError(f"POST {url}: the reply is larger than {MAX_REPLY_BYTES} bytes")
        return decode_json(raw, url)


def error_detail(error: urllib.error.HTTPError) -> str:
    """What an error reply says: an OpenAI-style error's message, else the start of its body."""
    try:
        body = error.read(2000).decode(errors="replace")
    except (OSError, http.client.HTTPException):
        return "(its body could not be read)"
    try:
        return str(json.loads(body)["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return body[:300]


def decode_json(raw: bytes, url: str) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RemoteError(f"POST {url}: the reply is not UTF-8 text ({error})") from error
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise RemoteError(f"POST {url}: the reply is not JSON: {text[:100]!r}") from error


def read_chat_completion(reply: Any) -> tuple[str, int]:
    """(content, completion tokens) of an OpenAI chat completion; a null content is an empty answer."""
    try:
        content, tokens = reply["choices"][0]["message"]["content"], reply["usage"]["completion_tokens"]
    except (KeyError, IndexError, TypeError) as error:
        raise RemoteError(f"unexpected chat completion reply: {str(reply)[:200]}") from error
    return checked_answer("" if content is None else content, tokens, "chat completion")


def read_generate_reply(reply: Any) -> tuple[str, int]:
    try:
        text, tokens = reply["text"], reply["tokens_generated"]
    except (KeyError, TypeError) as error:
        raise RemoteError(f"unexpected /generate reply: {str(reply)[:200]}") from error
    return checked_answer(text, tokens, "/generate")


def checked_answer(text: Any, tokens: Any, kind: str) -> tuple[str, int]:
    if not isinstance(text, str):
        raise RemoteError(f"unexpected {kind} reply: the answer is {type(text).__name__} {str(text)[:50]}, not text")
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
        raise RemoteError(f"unexpected {kind} reply: the token count is {tokens!r}, not a count")
    return text, tokens


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
        # When the end of training stops waiting for the server (set by the first wait()).
        self.end_deadline: float | None = None

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
            # Absolute: the server resolves a relative path against its own working directory.
            return os.path.abspath(checkpoint)
        return self.remote.model or DEFAULT_MODEL_NAME

    def run_round(self, step: int, prompts: list[PreviewPrompt], model: str) -> None:
        for prompt in prompts:
            try:
                result = self.preview(prompt, step, model)
            except Exception as error:
                # Whatever else breaks is this preview's recorded failure, never a thread traceback.
                log.debug("Remote preview failed unexpectedly", exc_info=True)
                result = self.failure(prompt, step, f"{type(error).__name__}: {error}", model=model)
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
        """At the end of training: wait for the running round. The first call starts the end's
        budget of `timeout_sec`, which later calls share, so the end of training waits at most
        `timeout_sec` for the server in all; prompts still unanswered then are recorded as
        failures (a late answer is dropped)."""
        if self.end_deadline is None:
            self.end_deadline = time.monotonic() + self.remote.timeout_sec
        if self.worker is not None:
            self.worker.join(timeout=max(0.0, self.end_deadline - time.monotonic()))
        with self.lock:
            late = (
                "no answer before the end of training, which waits at most "
                f"preview.remote.timeout_sec={self.remote.timeout_sec:g}s for the server"
            )
            self.finished += [self.failure(prompt, self.pending_step, late) for prompt in self.pending]
            self.pending = []
        return self.collect()
