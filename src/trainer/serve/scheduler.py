"""One generation at a time, a bounded queue behind it, and a way to stop each one early.

Generations share the models, and a CPU or GPU is busy with one anyway: they take turns. A request
is admitted only while fewer than `queue_size` wait (else 503 with Retry-After), and it stops (at
its next token) when its client disconnects, when its time limit passes, or when the server shuts
down, so no request can hold the others hostage."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
from starlette.requests import Request
from transformers import PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteria, StoppingCriteriaList

from trainer.modeling.generation import encode_prompt, generate_answer
from trainer.modeling.template_layout import CHANGE_TEMPLATE, TemplateError, render_conversation, template_layout
from trainer.serve.errors import ApiError
from trainer.serve.limits import DEFAULT_MAX_TOKENS, ServerLimits
from trainer.serve.logprobs import token_logprobs
from trainer.serve.models import ModelCache, ModelNotServedError
from trainer.serve.stop_strings import StopStrings, stop_position

log = logging.getLogger(__name__)

# How often a queued request or the disconnect watcher looks again.
POLL_SEC = 0.1
# What a refused client is told to wait before it tries again.
RETRY_AFTER_SEC = 1


@dataclass(frozen=True)
class Job:
    """What one request asks for, validated."""

    model: str | None
    # Chat messages (rendered with the model's chat template) or a prompt text used as it is.
    prompt: str | list[dict[str, str]]
    # None: as long as the limits and the context allow, up to DEFAULT_MAX_TOKENS.
    max_tokens: int | None
    temperature: float
    top_p: float
    seed: int
    # Generation ends before the first of these in the answer's text (OpenAI's `stop`).
    stop: tuple[str, ...] = ()
    # None: no logprobs; k: each answer token's logprob and its k most likely alternatives.
    top_logprobs: int | None = None


@dataclass(frozen=True)
class Answer:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    # OpenAI's choices[].logprobs.content, when the job asked for it.
    logprobs: list[dict[str, Any]] | None = None


class Stop:
    """Why one request's generation should stop now, if it should."""

    def __init__(self, deadline: float, server_stopping: threading.Event) -> None:
        self.deadline = deadline
        self.server_stopping = server_stopping
        self.client_gone = threading.Event()

    def reason(self) -> str | None:
        if self.server_stopping.is_set():
            return "the server is shutting down"
        if self.client_gone.is_set():
            return "the client disconnected"
        if time.monotonic() >= self.deadline:
            return "the request's time limit passed"
        return None


class StopWhenAsked(StoppingCriteria):
    def __init__(self, stop: Stop) -> None:
        self.stop = stop

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        stopping = self.stop.reason() is not None
        return torch.full((input_ids.shape[0],), stopping, dtype=torch.bool, device=input_ids.device)


class GenerationScheduler:
    def __init__(self, models: ModelCache, limits: ServerLimits) -> None:
        self.models = models
        self.limits = limits
        # Requests admitted and not answered yet (the one generating included); event loop only.
        self.admitted = 0
        self.turn = threading.Lock()
        self.stopping = threading.Event()
        # One thread per admitted request, so a queued request never waits for a thread.
        self.threads = ThreadPoolExecutor(max_workers=limits.queue_size + 1, thread_name_prefix="generation")

    def stop(self) -> None:
        """Shut down: generations stop at their next token, queued requests leave the queue."""
        self.stopping.set()

    def state(self) -> dict[str, int]:
        return {"admitted": self.admitted, "generating": int(self.turn.locked())}

    async def run(self, job: Job, request: Request) -> Answer:
        """`job`'s answer, refused when the queue is full; generation stops early when the
        client disconnects or the time limit passes."""
        if self.stopping.is_set():
            raise ApiError(503, "the server is shutting down", code="server_shutting_down")
        if self.admitted > self.limits.queue_size:
            raise ApiError(
                503,
                f"the server is busy: {self.limits.queue_size} requests already wait (--queue-size); retry later",
                code="server_busy",
                headers={"Retry-After": str(RETRY_AFTER_SEC)},
            )
        self.admitted += 1
        stop = Stop(time.monotonic() + self.limits.request_timeout_sec, self.stopping)
        watcher = asyncio.create_task(watch_for_disconnect(request, stop))
        try:
            return await asyncio.get_running_loop().run_in_executor(self.threads, self.answer, job, stop)
        finally:
            # Also when this coroutine is cancelled: the thread must not go on for nobody.
            stop.client_gone.set()
            watcher.cancel()
            self.admitted -= 1

    def answer(self, job: Job, stop: Stop) -> Answer:
        while not self.turn.acquire(timeout=POLL_SEC):
            if reason := stop.reason():
                raise ApiError(
                    503,
                    f"not started: {reason} while the request was queued",
                    code="server_busy",
                    headers={"Retry-After": str(RETRY_AFTER_SEC)},
                )
        try:
            return self.generate(job, stop)
        finally:
            self.turn.release()

    def generate(self, job: Job, stop: Stop) -> Answer:
        try:
            model, tokenizer = self.models.get(job.model)
        except ModelNotServedError as error:
            raise ApiError(404, str(error), param="model", code="model_not_found") from error
        prompt = job.prompt if isinstance(job.prompt, str) else render_chat(tokenizer, job.prompt)
        prompt_tokens = encode_prompt(tokenizer, prompt)["input_ids"].shape[1]
        max_tokens = self.fit_max_tokens(job.max_tokens, prompt_tokens, context_length(model))
        criteria = StoppingCriteriaList([StopWhenAsked(stop)])
        if job.stop:
            criteria.append(StopStrings(tokenizer, job.stop, prompt_tokens))
        generation = generate_answer(
            model,
            tokenizer,
            prompt,
            max_tokens,
            job.temperature,
            seed=job.seed,
            top_p=job.top_p,
            stopping_criteria=criteria,
            keep_logits=job.top_logprobs is not None,
        )
        reason = stop.reason()
        if reason is not None:
            log.info("Stopped generating after %d tokens: %s", generation.tokens_generated, reason)
        if stop.server_stopping.is_set():
            raise ApiError(503, "the server is shutting down", code="server_shutting_down")
        text, token_ids = generation.text, generation.token_ids
        if (position := stop_position(text, job.stop)) is not None:
            text, token_ids = text[:position], tokens_begun_before(tokenizer, token_ids, position)
            finish_reason = "stop"
        elif reason is not None or generation.tokens_generated >= max_tokens:
            finish_reason = "length"
        else:
            finish_reason = "stop"
        logprobs = None
        if job.top_logprobs is not None:
            logprobs = token_logprobs(tokenizer, token_ids, generation.logits, job.top_logprobs)
        return Answer(text, prompt_tokens, generation.tokens_generated, finish_reason, logprobs)

    def fit_max_tokens(self, requested: int | None, prompt_tokens: int, context: int | None) -> int:
        """The answer's token budget: as requested (or the default), within the prompt limit and
        what the model's context leaves after the prompt."""
        if prompt_tokens > self.limits.max_prompt_tokens:
            raise ApiError(
                400,
                f"the prompt has {prompt_tokens} tokens, more than this server's limit of "
                f"{self.limits.max_prompt_tokens} (--max-prompt-tokens)",
                param="messages",
                code="context_length_exceeded",
            )
        room = self.limits.max_tokens if context is None else context - prompt_tokens
        if requested is None:
            requested = min(DEFAULT_MAX_TOKENS, self.limits.max_tokens, room)
        if requested > room or room < 1:
            raise ApiError(
                400,
                f"this model's context is {context} tokens: the prompt has {prompt_tokens}, "
                f"so max_tokens can be at most {max(room, 0)} (asked for {requested})",
                param="max_tokens",
                code="context_length_exceeded",
            )
        return requested


def tokens_begun_before(tokenizer, token_ids: tuple[int, ...], position: int) -> tuple[int, ...]:
    """The answer's tokens whose text begins before character `position` of its decoded text: a
    token holding both the last kept characters and the stop string is the answer's last."""
    count = 0
    while count < len(token_ids) and len(tokenizer.decode(token_ids[:count], skip_special_tokens=True)) < position:
        count += 1
    return token_ids[:count]


def render_chat(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> str:
    """The prompt as training renders a conversation's prompt (see `render_conversation`), so a
    model is asked the way it learned to answer."""
    check_system_prompt_has_a_place(tokenizer, messages)
    try:
        return render_conversation(tokenizer, messages, generation_prompt=True)
    except TemplateError as error:  # e.g. a template that wants the roles in another order
        # Its advice to change model.chat_template is for a run's config, not for a client.
        raise ApiError(400, str(error).removesuffix(f"; {CHANGE_TEMPLATE}"), param="messages") from error


def check_system_prompt_has_a_place(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> None:
    """A template without a place for system prompts gets them in a user turn: without one, the
    system prompt would be dropped silently."""
    layout = template_layout(tokenizer)
    roles = {message["role"] for message in messages}
    if layout.system_into and "system" in roles and "user" not in roles:
        raise ApiError(
            400,
            f"{layout.name} has no place for a system prompt of its own, so it goes into a user "
            "message: send one with it",
            param="messages",
        )


def context_length(model: PreTrainedModel) -> int | None:
    """The longest sequence the model was built for, when its config says."""
    length = getattr(model.config, "max_position_embeddings", None)
    return length if isinstance(length, int) and length > 0 else None


async def watch_for_disconnect(request: Request, stop: Stop) -> None:
    while not await request.is_disconnected():
        await asyncio.sleep(POLL_SEC)
    stop.client_gone.set()
