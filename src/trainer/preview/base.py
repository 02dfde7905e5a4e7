"""What every preview backend shares: the prompts, the request for one round of previews, the
result of one preview (SPEC §8), and the `PreviewBackend` protocol."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from transformers import PreTrainedModel


@dataclass(frozen=True)
class PreviewPrompt:
    # Position of the example in its data file: names the prompt across previews.
    index: int
    # The system prompt and the conversation up to the last assistant turn.
    messages: list[dict[str, str]]
    # `messages` rendered with the training chat template plus the generation prompt.
    text: str
    # The last assistant turn: what the model should answer.
    golden_answer: str


@dataclass(frozen=True)
class PreviewRequest:
    step: int
    prompts: list[PreviewPrompt]
    # The model being trained (in this process), for backends that generate with it.
    model: PreTrainedModel
    # The newest checkpoint directory, for backends that load the weights elsewhere.
    checkpoint: str | None


@dataclass
class PreviewResult:
    success: bool
    text: str
    prompt: str
    golden_answer: str
    step: int
    tokens_generated: int
    generation_time_sec: float
    tokens_per_sec: float
    backend_type: str
    timestamp: float
    error_message: str | None = None
    prompt_index: int = 0
    # The answer equals the golden answer (surrounding whitespace aside).
    match: bool = False
    # The profile's checks of the answer, e.g. regime3's well-formed answer markers.
    checks: dict[str, bool] = field(default_factory=dict)
    # Per logits processor: its stats for this generation (local backend).
    processor_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The model the remote server was asked to use (a checkpoint directory, or its own model).
    model: str | None = None

    @classmethod
    def answered(
        cls, prompt: PreviewPrompt, step: int, backend_type: str, text: str, tokens: int, seconds: float, **extra: Any
    ) -> PreviewResult:
        return cls(
            success=True,
            text=text,
            prompt=prompt.text,
            golden_answer=prompt.golden_answer,
            step=step,
            tokens_generated=tokens,
            generation_time_sec=round(seconds, 4),
            tokens_per_sec=round(tokens / seconds, 2) if seconds > 0 else 0.0,
            backend_type=backend_type,
            timestamp=time.time(),
            prompt_index=prompt.index,
            match=text.strip() == prompt.golden_answer.strip(),
            **extra,
        )

    @classmethod
    def failed(
        cls, prompt: PreviewPrompt, step: int, backend_type: str, error: str, seconds: float = 0.0, **extra: Any
    ) -> PreviewResult:
        return cls(
            success=False,
            text="",
            prompt=prompt.text,
            golden_answer=prompt.golden_answer,
            step=step,
            tokens_generated=0,
            generation_time_sec=round(seconds, 4),
            tokens_per_sec=0.0,
            backend_type=backend_type,
            timestamp=time.time(),
            error_message=error,
            prompt_index=prompt.index,
            **extra,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PreviewBackend(Protocol):
    """Generates previews. Called on the training thread only: `submit` must return quickly
    unless the backend generates with the training model itself (local)."""

    backend_type: str

    def submit(self, request: PreviewRequest) -> None:
        """Start previews of `request.prompts` for `request.step`."""

    def collect(self) -> list[PreviewResult]:
        """The results finished since the last call, without waiting."""

    def wait(self) -> list[PreviewResult]:
        """Wait (bounded) for previews still running; their results, failures included."""
