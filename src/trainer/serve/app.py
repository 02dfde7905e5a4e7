"""The HTTP API: GET /health, GET /v1/models, POST /v1/chat/completions, POST /generate."""

from __future__ import annotations

import hmac
import threading
import time
import uuid
from typing import Any

from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel

from trainer.preview.generation import Generation, generate_answer
from trainer.serve.models import ModelCache, UnknownModelError

DEFAULT_MAX_TOKENS = 256


class ChatMessage(BaseModel):
    role: str
    content: str


class ChatCompletionRequest(BaseModel):
    model: str
    messages: list[ChatMessage]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float = 0.0
    seed: int = 0
    stream: bool = False


class GenerateRequest(BaseModel):
    prompt: str
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 0.0
    model_id: str | None = None


def create_app(models: ModelCache, token: str | None = None) -> FastAPI:
    """The server's app; with `token`, every route but /health wants `Authorization: Bearer <token>`."""
    app = FastAPI(title="trainer.serve")
    # One generation at a time: they share the models, and a CPU or GPU is busy with one anyway.
    generating = threading.Lock()

    def authorize(authorization: str | None = Header(default=None)) -> None:
        if token is not None and not hmac.compare_digest(authorization or "", f"Bearer {token}"):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token")

    def answer(
        model_name: str | None, prompt: str | list[dict[str, str]], max_tokens: int, temperature: float, seed: int
    ) -> Generation:
        with generating:
            try:
                model, tokenizer = models.get(model_name)
            except UnknownModelError as error:
                raise HTTPException(status_code=404, detail=str(error)) from error
            text = (
                prompt
                if isinstance(prompt, str)
                else tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            )
            return generate_answer(model, tokenizer, text, max_tokens, temperature, seed=seed)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": models.served_name}

    @app.get("/v1/models", dependencies=[Depends(authorize)])
    def list_models() -> dict[str, Any]:
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "trainer"} for name in models.names()]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions", dependencies=[Depends(authorize)])
    def chat_completions(request: ChatCompletionRequest) -> dict[str, Any]:
        if request.stream:
            raise HTTPException(status_code=400, detail="streaming is not supported; send stream=false")
        max_tokens = request.max_completion_tokens or request.max_tokens or DEFAULT_MAX_TOKENS
        messages = [message.model_dump() for message in request.messages]
        generation = answer(request.model, messages, max_tokens, request.temperature, request.seed)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": generation.text},
                    "finish_reason": "length" if generation.tokens_generated >= max_tokens else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": generation.prompt_tokens,
                "completion_tokens": generation.tokens_generated,
                "total_tokens": generation.prompt_tokens + generation.tokens_generated,
            },
        }

    @app.post("/generate", dependencies=[Depends(authorize)])
    def generate(request: GenerateRequest) -> dict[str, Any]:
        generation = answer(request.model_id, request.prompt, request.max_tokens, request.temperature, seed=0)
        return {"text": generation.text, "tokens_generated": generation.tokens_generated}

    return app
