"""The request bodies, validated as OpenAI's API does: a bad value is a 400 that names it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from trainer.serve.scheduler import Job

# What torch.manual_seed takes, and OpenAI's int64.
Seed = Field(default=0, ge=-(2**63), le=2**63 - 1)
Temperature = Field(default=0.0, ge=0.0, le=2.0, allow_inf_nan=False)


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: str


class ChatCompletionRequest(BaseModel):
    model: str = Field(max_length=4096)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    # null, as some clients send for "the default", is the default.
    temperature: float | None = Temperature
    top_p: float | None = Field(default=1.0, gt=0.0, le=1.0, allow_inf_nan=False)
    seed: int | None = Seed
    n: int = Field(default=1, ge=1, le=1)  # one answer per request
    stream: bool = False

    def job(self) -> Job:
        return Job(
            self.model,
            self.chat(),
            self.requested_tokens(),
            self.temperature or 0.0,
            1.0 if self.top_p is None else self.top_p,
            self.seed or 0,
        )

    def requested_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def chat(self) -> list[dict[str, str]]:
        # "developer" is the newer name of "system"; chat templates know only the latter.
        return [
            {"role": "system" if message.role == "developer" else message.role, "content": message.content}
            for message in self.messages
        ]


class GenerateRequest(BaseModel):
    """The seed system's `POST /generate`: a prompt text, used as it is."""

    prompt: str = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Temperature
    model_id: str | None = Field(default=None, max_length=4096)

    def job(self) -> Job:
        return Job(self.model_id, self.prompt, self.max_tokens, self.temperature or 0.0, top_p=1.0, seed=0)
