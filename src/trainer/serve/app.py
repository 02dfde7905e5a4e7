"""The HTTP API: GET /health, GET /v1/models, POST /v1/chat/completions, POST /generate."""

from __future__ import annotations

import hmac
import time
import uuid
from dataclasses import asdict
from typing import Any

from fastapi import Depends, FastAPI, Header, Request

from trainer.serve.errors import ApiError, BodySizeLimit, install_error_handlers
from trainer.serve.limits import ServerLimits
from trainer.serve.models import ModelCache
from trainer.serve.scheduler import GenerationScheduler
from trainer.serve.schemas import ChatCompletionRequest, GenerateRequest


def create_app(models: ModelCache, limits: ServerLimits, token: str | None = None) -> FastAPI:
    """The server's app; with `token`, every route wants `Authorization: Bearer <token>`, except
    /health, which then tells an unauthorized caller only that the server is up."""
    app = FastAPI(title="trainer.serve")
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_body_bytes)
    install_error_handlers(app)
    scheduler = GenerationScheduler(models, limits)
    app.state.scheduler = scheduler

    def is_authorized(authorization: str | None) -> bool:
        return token is None or hmac.compare_digest((authorization or "").encode(), f"Bearer {token}".encode())

    def authorize(authorization: str | None = Header(default=None)) -> None:
        if not is_authorized(authorization):
            raise ApiError(401, "missing or wrong bearer token", code="invalid_api_key")

    def check_max_tokens(requested: int | None) -> None:
        # Before the queue: a request that can never be served does not take a place in it.
        if requested is not None and requested > limits.max_tokens:
            raise ApiError(
                400,
                f"max_tokens={requested} is more than this server's limit of {limits.max_tokens} (--max-tokens)",
                param="max_tokens",
                code="invalid_value",
            )

    @app.get("/health")
    def health(authorization: str | None = Header(default=None)) -> dict[str, Any]:
        if not is_authorized(authorization):
            return {"status": "ok"}
        return {"status": "ok", "model": models.served_name, **scheduler.state(), "limits": asdict(limits)}

    @app.get("/v1/models", dependencies=[Depends(authorize)])
    def list_models() -> dict[str, Any]:
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "trainer"} for name in models.names()]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions", dependencies=[Depends(authorize)])
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> dict[str, Any]:
        if body.stream:
            raise ApiError(400, "streaming is not supported; send stream=false", param="stream")
        check_max_tokens(body.requested_tokens())
        answer = await scheduler.run(body.job(), request)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text},
                    "logprobs": None if answer.logprobs is None else {"content": answer.logprobs, "refusal": None},
                    "finish_reason": answer.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
                "total_tokens": answer.prompt_tokens + answer.completion_tokens,
            },
        }

    @app.post("/generate", dependencies=[Depends(authorize)])
    async def generate(body: GenerateRequest, request: Request) -> dict[str, Any]:
        check_max_tokens(body.max_tokens)
        answer = await scheduler.run(body.job(), request)
        return {"text": answer.text, "tokens_generated": answer.completion_tokens}

    return app
