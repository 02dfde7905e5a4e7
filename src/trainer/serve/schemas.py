"""The request bodies, validated as OpenAI's API does: a bad value is a 400 that names it."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from trainer.serve.scheduler import Job

# What torch.manual_seed takes, and OpenAI's int64.
Seed = Field(default=0, ge=-(2**63), le=2**63 - 1)
Temperature = Field(default=0.0, ge=0.0, le=2.0, allow_inf_nan=False)
# OpenAI's limits: up to 4 stop strings, up to 20 alternatives per token.
MAX_STOP_STRINGS = 4
MAX_TOP_LOGPROBS = 20


def listed(value: Any) -> Any:
    """`stop` may be one string or a list of them."""
    return [value] if isinstance(value, str) else value


StopStrings = Annotated[
    Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=MAX_STOP_STRINGS)] | None,
    BeforeValidator(listed),
]


def unsupported(why: str, neutral: Any = None) -> Any:
    """An OpenAI parameter this server does not implement: accepted only when it asks for nothing
    (null, or `neutral`), so that no request is answered as if it had been honoured."""

    def refuse_unless_neutral(value: Any) -> Any:
        if value is None or (neutral is not None and value == neutral):
            return value
        accepted = "null" if neutral is None else f"{json.dumps(neutral)} or null"
        raise PydanticCustomError("unsupported", f"{why}; this server accepts only {accepted}")

    return Annotated[Any, AfterValidator(refuse_unless_neutral), Field(default=None)]


NO_TOOLS = "tool calling is not supported by this server yet"
ToolsParameter = unsupported(NO_TOOLS)
Penalty = unsupported("presence and frequency penalties are not implemented by this server", neutral=0)
LogitBias = unsupported("logit_bias is not implemented by this server", neutral={})
ResponseFormat = unsupported("only plain-text answers: no JSON mode or schema", neutral={"type": "text"})
Modalities = unsupported("only text answers", neutral=["text"])
StreamOptions = unsupported("stream_options needs stream=true, which this server does not support")
Store = unsupported("this server stores no completions", neutral=False)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")  # e.g. tool_calls: not ignored, refused

    role: Literal["system", "developer", "user", "assistant"]
    content: str


class StrictRequest(BaseModel):
    """A request body: a parameter this server does not know is a 400 naming it, never silently
    ignored; null asks for nothing, whatever the parameter (some clients send every parameter
    they know, null where unset)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def drop_nulls_of_unknown_parameters(cls, body: Any) -> Any:
        if isinstance(body, dict):
            return {key: value for key, value in body.items() if value is not None or key in cls.model_fields}
        return body


class ChatCompletionRequest(StrictRequest):
    model: str = Field(max_length=4096)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    # null, as some clients send for "the default", is the default.
    temperature: float | None = Temperature
    top_p: float | None = Field(default=1.0, gt=0.0, le=1.0, allow_inf_nan=False)
    seed: int | None = Seed
    n: int | None = Field(default=1, ge=1, le=1)  # one answer per request
    stream: bool | None = False
    stop: StopStrings = None
    logprobs: bool | None = False
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    # Identifiers for the provider's abuse monitoring and prompt caching: they change no answer.
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    tools: ToolsParameter
    tool_choice: ToolsParameter
    parallel_tool_calls: ToolsParameter
    functions: ToolsParameter
    function_call: ToolsParameter
    frequency_penalty: Penalty
    presence_penalty: Penalty
    logit_bias: LogitBias
    response_format: ResponseFormat
    modalities: Modalities
    stream_options: StreamOptions
    store: Store

    @field_validator("top_logprobs")
    @classmethod
    def top_logprobs_need_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and not info.data.get("logprobs"):
            raise PydanticCustomError("needs_logprobs", "top_logprobs needs logprobs=true")
        return value

    def job(self) -> Job:
        return Job(
            self.model,
            self.chat(),
            self.requested_tokens(),
            self.temperature or 0.0,
            1.0 if self.top_p is None else self.top_p,
            self.seed or 0,
            tuple(self.stop or ()),
            (self.top_logprobs or 0) if self.logprobs else None,
        )

    def requested_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def chat(self) -> list[dict[str, str]]:
        # "developer" is the newer name of "system"; chat templates know only the latter.
        return [
            {"role": "system" if message.role == "developer" else message.role, "content": message.content}
            for message in self.messages
        ]


class GenerateRequest(StrictRequest):
    """The seed system's `POST /generate`: a prompt text, used as it is."""

    prompt: str = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Temperature
    model_id: str | None = Field(default=None, max_length=4096)

    def job(self) -> Job:
        return Job(self.model_id, self.prompt, self.max_tokens, self.temperature or 0.0, top_p=1.0, seed=0)
