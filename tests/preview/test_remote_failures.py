"""Every way a server can fail a remote preview is one recorded failure with its true cause: no
thread traceback, no false "no answer", and the end of training waits at most timeout_sec."""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from trainer.config.schema import PreviewConfig, RemotePreviewConfig
from trainer.preview.base import PreviewPrompt, PreviewRequest
from trainer.preview.remote import RemotePreviewBackend

PROMPTS = [
    PreviewPrompt(index, [{"role": "user", "content": f"What is {index}+2?"}], f"What is {index}+2?", "4")
    for index in range(2)
]


def http_reply(body: bytes, status: str = "200 OK") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def completion(content, tokens=1) -> bytes:
    return json.dumps({"choices": [{"message": {"content": content}}], "usage": {"completion_tokens": tokens}}).encode()


class ScriptedServer(socketserver.ThreadingTCPServer):
    """Reads each request, then writes `reply` as raw bytes (or, with None, never answers)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.released = threading.Event()
        super().__init__(("127.0.0.1", 0), ScriptedHandler)


class ScriptedHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        received = b""
        while b"\r\n\r\n" not in received and (chunk := self.request.recv(65536)):
            received += chunk
        if self.server.reply is None:
            self.server.released.wait()  # accepted, and never a word
            return
        with contextlib.suppress(OSError):
            self.request.sendall(self.server.reply)


@pytest.fixture
def scripted() -> Iterator:
    servers = []

    def start(reply: bytes | None) -> str:
        server = ScriptedServer(reply)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.released.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def thread_crashes(monkeypatch) -> list[threading.ExceptHookArgs]:
    """Exceptions that escaped a thread (what would print `Exception in thread ...`)."""
    crashes = []
    monkeypatch.setattr(threading, "excepthook", crashes.append)
    return crashes


def backend(url: str, protocol: str = "openai", timeout: float = 5.0, retries: int = 1) -> RemotePreviewBackend:
    remote = RemotePreviewConfig(url=url, protocol=protocol, timeout_sec=timeout, retries=retries)
    return RemotePreviewBackend(PreviewConfig(backend="remote", remote=remote), token=None)


def preview_round(previews: RemotePreviewBackend, step: int = 1) -> None:
    previews.submit(PreviewRequest(step, PROMPTS, model=None, checkpoint=None))


FAILURES = {
    "bytes that are no HTTP": ("openai", b"SSH-2.0-OpenSSH_9.6\r\n", "not a valid HTTP reply (BadStatusLine"),
    "a closed connection": ("openai", b"", "not a valid HTTP reply (RemoteDisconnected"),
    "a body that is no UTF-8": ("generate", http_reply(b'{"text": "\xff\xfe"}'), "the reply is not UTF-8 text"),
    "a body that is no JSON": ("openai", http_reply(b"<html>hello</html>"), "the reply is not JSON: '<html>"),
    "content that is a number": ("openai", http_reply(completion(5)), "the answer is int 5, not text"),
    "a token count that is text": ("openai", http_reply(completion("4", "many")), "the token count is 'many'"),
    "a JSON list": ("openai", http_reply(b"[]"), "unexpected chat completion reply: []"),
    "no choices": ("openai", http_reply(b'{"choices": []}'), "unexpected chat completion reply"),
    "generate without text": ("generate", http_reply(b'{"tokens_generated": 1}'), "unexpected /generate reply"),
    "a server error, retried": ("openai", http_reply(b"boom", "500 Oops"), "HTTP 500 boom (attempt 2 of 2)"),
    "a refusal, not retried": ("openai", http_reply(b"no", "404 Not Found"), "HTTP 404 no (attempt 1 of 2)"),
    "an OpenAI-style refusal": (
        "openai",
        http_reply(b'{"error": {"message": "no such model", "code": "model_not_found"}}', "404 Not Found"),
        "HTTP 404 no such model (attempt 1 of 2)",
    ),
}


@pytest.mark.parametrize("case", FAILURES)
def test_each_server_failure_is_one_recorded_failure_with_its_cause(scripted, thread_crashes, case):
    protocol, reply, cause = FAILURES[case]
    previews = backend(scripted(reply), protocol)

    preview_round(previews)
    results = previews.wait()

    assert [result.prompt_index for result in results] == [0, 1]
    assert all(not result.success and cause in result.error_message for result in results), results[0].error_message
    assert thread_crashes == []


def test_a_refused_connection_is_recorded_as_refused(thread_crashes):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"  # bound, not listening: refused
        previews = backend(url, retries=0)
        preview_round(previews)
        results = previews.wait()
    assert all("ConnectionRefusedError" in result.error_message for result in results)
    assert thread_crashes == []


def test_a_server_that_never_answers_holds_the_end_of_training_at_most_timeout_sec(scripted, thread_crashes):
    timeout = 0.6
    previews = backend(scripted(None), timeout=timeout, retries=1)
    preview_round(previews, step=2)

    started = time.monotonic()
    # The end of training: the running round, then the final round, share one budget.
    results = previews.wait()
    preview_round(previews, step=4)
    results += previews.wait()
    waited = time.monotonic() - started

    assert timeout <= waited < timeout + 0.3
    assert [(result.step, result.success) for result in results] == [(2, False)] * 2 + [(4, False)] * 2
    assert all("no answer before the end of training" in result.error_message for result in results)
    assert thread_crashes == []


def test_a_timed_out_request_says_so(scripted, thread_crashes):
    previews = backend(scripted(None), timeout=0.2, retries=0)
    preview_round(previews)
    time.sleep(0.8)  # both requests time out while training goes on
    results = previews.collect()
    assert [result.error_message.split(": ", 1)[1] for result in results] == [
        "TimeoutError: timed out (attempt 1 of 1)"
    ] * 2
    assert thread_crashes == []
