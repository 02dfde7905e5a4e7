"""What one client may ask of `trainer.serve`: every limit has a default and a command-line flag."""

from __future__ import annotations

from dataclasses import dataclass

# The answer's length when a request names none (still capped by the limits and the context).
DEFAULT_MAX_TOKENS = 256


@dataclass(frozen=True)
class ServerLimits:
    # The largest max_tokens a request may ask for (--max-tokens); the model's context caps it too.
    max_tokens: int = 1024
    # The longest rendered prompt, in tokens (--max-prompt-tokens).
    max_prompt_tokens: int = 4096
    # The largest request body (--max-body-bytes): bounds what is parsed and tokenized at all.
    max_body_bytes: int = 1_048_576
    # Requests waiting behind the one generating (--queue-size); beyond it: 503 with Retry-After.
    queue_size: int = 8
    # Seconds from a request's arrival to its answer, queueing included (--request-timeout):
    # generation stops there and the answer so far is returned with finish_reason "length".
    request_timeout_sec: float = 60.0

    def problems(self) -> list[str]:
        """One message per limit that cannot work."""
        problems = [
            f"--{flag} must be >= 1 (got {value})"
            for flag, value in {
                "max-tokens": self.max_tokens,
                "max-prompt-tokens": self.max_prompt_tokens,
                "max-body-bytes": self.max_body_bytes,
            }.items()
            if value < 1
        ]
        if self.queue_size < 0:
            problems.append(f"--queue-size must be >= 0 (got {self.queue_size})")
        if not self.request_timeout_sec > 0:
            problems.append(f"--request-timeout must be > 0 (got {self.request_timeout_sec})")
        return problems
