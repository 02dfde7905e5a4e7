"""Every request is held to the server's limits, so that no client can hold the others hostage:
max_tokens, prompt tokens, the model's context, body size, queue length, time, and its own
presence (a generation stops when its client leaves)."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from tests.serve.running import SERVED_NAME, serving, wait_for
from trainer.serve.limits import ServerLimits

ENDLESS = 10**6  # more tokens than any test waits for: only a limit or a stop ends the answer


def chat(server, content: str = "What is 2+2?", max_tokens: int | None = 2, timeout: float = 60.0):
    extra = {} if max_tokens is None else {"max_tokens": max_tokens}
    return server.client(timeout=timeout).chat.completions.create(
        model=SERVED_NAME, messages=[{"role": "user", "content": content}], **extra
    )


@pytest.fixture(scope="module")
def small(tiny_model: Path):
    limits = ServerLimits(max_tokens=8, max_prompt_tokens=64, max_body_bytes=4096)
    with serving(tiny_model, limits) as running:
        yield running


def test_max_tokens_above_the_limit_is_refused(small):
    with pytest.raises(openai.BadRequestError) as refused:
        chat(small, max_tokens=9)
    assert "--max-tokens" in refused.value.body["message"]


def test_a_prompt_above_the_limit_is_refused(small):
    with pytest.raises(openai.BadRequestError) as refused:
        chat(small, "hello " * 100)
    assert refused.value.body["code"] == "context_length_exceeded"
    assert "--max-prompt-tokens" in refused.value.body["message"]


@pytest.mark.parametrize("size", [5_000, 3_000_000])
def test_a_body_above_the_limit_is_refused_unread(small, size):
    with pytest.raises(openai.APIStatusError) as refused:
        chat(small, "a" * size)
    assert refused.value.status_code == 413
    assert "--max-body-bytes" in refused.value.body["message"]


def test_without_max_tokens_the_answer_is_capped_by_the_limit(small):
    assert 1 <= chat(small, max_tokens=None).usage.completion_tokens <= 8


def test_the_models_context_bounds_prompt_plus_answer(server):
    long_prompt = "hello " * 250
    with pytest.raises(openai.BadRequestError) as refused:
        chat(server, long_prompt, max_tokens=500)
    assert refused.value.body["code"] == "context_length_exceeded"

    # Without max_tokens, the answer gets what the context leaves.
    reply = chat(server, long_prompt, max_tokens=None)
    assert reply.usage.prompt_tokens + reply.usage.completion_tokens <= 1024


def test_generation_stops_at_the_time_limit_with_the_answer_so_far(long_context_model):
    limit = 1.5
    with serving(long_context_model, ServerLimits(max_tokens=ENDLESS, request_timeout_sec=limit)) as running:
        started = time.monotonic()
        reply = chat(running, max_tokens=ENDLESS)
        took = time.monotonic() - started

    assert limit <= took < limit + 5
    assert reply.choices[0].finish_reason == "length"
    assert 0 < reply.usage.completion_tokens < ENDLESS


def test_generation_stops_when_its_client_disconnects(long_context_model, caplog):
    caplog.set_level(logging.INFO, logger="trainer.serve.scheduler")
    with serving(long_context_model, ServerLimits(max_tokens=ENDLESS, request_timeout_sec=300)) as running:
        with pytest.raises(openai.APITimeoutError):
            chat(running, max_tokens=ENDLESS, timeout=1.0)
        gone = time.monotonic()
        wait_for(lambda: "the client disconnected" in caplog.text, timeout=10)
        stopped_after = time.monotonic() - gone
        # The next client is answered at once, not after the abandoned generation's minutes.
        assert chat(running).usage.completion_tokens <= 2
    assert stopped_after < 3


def test_a_full_queue_answers_503_with_retry_after_and_shutdown_stops_generations(long_context_model):
    limits = ServerLimits(max_tokens=ENDLESS, queue_size=1, request_timeout_sec=300)
    with ThreadPoolExecutor(2) as pool, serving(long_context_model, limits) as running:
        endless = [pool.submit(chat, running, max_tokens=ENDLESS)]
        wait_for(lambda: running.scheduler.state() == {"admitted": 1, "generating": 1})
        endless.append(pool.submit(chat, running, max_tokens=ENDLESS))
        wait_for(lambda: running.scheduler.state()["admitted"] == 2)

        with pytest.raises(openai.APIStatusError) as refused:
            chat(running)
        assert refused.value.status_code == 503
        assert refused.value.response.headers["Retry-After"] == "1"
        stopping = time.monotonic()
    # Leaving `serving` shuts the server down as SIGTERM does: both endless requests end now.
    assert time.monotonic() - stopping < 5
    for request in endless:
        with pytest.raises(openai.APIStatusError) as ended:
            request.result(timeout=5)
        assert ended.value.status_code == 503


def test_fifty_concurrent_clients_with_some_oversized_are_answered_or_refused_within_limits(tiny_model):
    limits = ServerLimits(max_tokens=16, max_prompt_tokens=64, max_body_bytes=8192, queue_size=4)
    requests = (
        [("normal", "What is 2+2?", 4)] * 44
        + [("too many tokens", "What is 2+2?", 1000)] * 2
        + [("too large a body", "a" * 20_000, 4)] * 2
        + [("too long a prompt", "hello " * 60, 4)] * 2
    )
    allowed = {
        "normal": {200, 503},
        "too many tokens": {400},
        "too large a body": {413},
        "too long a prompt": {400, 503},
    }
    with serving(tiny_model, limits) as running:

        def send(kind: str, content: str, max_tokens: int) -> tuple[str, int, str | None]:
            try:
                reply = chat(running, content, max_tokens)
            except openai.APIStatusError as error:
                return kind, error.status_code, error.response.headers.get("Retry-After")
            assert reply.usage.completion_tokens <= max_tokens
            return kind, 200, None

        started = time.monotonic()
        with ThreadPoolExecutor(len(requests)) as pool:
            outcomes = list(pool.map(lambda request: send(*request), requests))
        took = time.monotonic() - started

        assert all(status in allowed[kind] for kind, status, _ in outcomes), outcomes
        assert all(retry_after == "1" for _, status, retry_after in outcomes if status == 503)
        assert sum(status == 200 for _, status, _ in outcomes) >= limits.queue_size + 1
        assert took < 60
        # Healthy after: nothing left admitted, and the next request is answered.
        assert running.scheduler.state() == {"admitted": 0, "generating": 0}
        assert chat(running).usage.completion_tokens <= 2
