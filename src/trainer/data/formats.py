"""The accepted record shapes, each converted to the one internal form `{"messages": [...]}`.

OpenAI `messages` pass through; ShareGPT `conversations` (`from`/`value`) and `prompt`/`completion`
(strings, or lists of messages) are rewritten. Other keys of a record are kept for the profile.
"""

from __future__ import annotations

from typing import Any

# ShareGPT speakers; "user"/"assistant" appear in many ShareGPT-style exports too.
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
ACCEPTED_SHAPES = "'messages', 'conversations' (ShareGPT) or 'prompt' + 'completion'"


class RecordShapeError(ValueError):
    """The record matches none of the accepted shapes, or a part of it cannot be converted."""


def to_chat_example(record: Any) -> dict[str, Any]:
    """`record` in the internal `{"messages": [...]}` form; raises `RecordShapeError` saying why not."""
    if not isinstance(record, dict):
        raise RecordShapeError(f"expected an object with {ACCEPTED_SHAPES}, got {type(record).__name__}")
    if "messages" in record:
        return record
    if "conversations" in record:
        rest = {key: value for key, value in record.items() if key != "conversations"}
        return {**rest, "messages": sharegpt_messages(record["conversations"])}
    if "prompt" in record and "completion" in record:
        rest = {key: value for key, value in record.items() if key not in ("prompt", "completion")}
        prompt = as_messages(record["prompt"], "prompt", "user")
        return {**rest, "messages": prompt + as_messages(record["completion"], "completion", "assistant")}
    raise RecordShapeError(f"expected {ACCEPTED_SHAPES}; found keys {', '.join(map(repr, record)) or 'none'}")


def sharegpt_messages(turns: Any) -> list[dict[str, Any]]:
    if not isinstance(turns, list):
        raise RecordShapeError("'conversations' must be a list of {'from', 'value'} turns")
    messages = []
    for position, turn in enumerate(turns):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise RecordShapeError(f"conversations[{position}] must be an object with 'from' and 'value'")
        if not isinstance(turn["from"], str) or turn["from"] not in SHAREGPT_ROLES:
            raise RecordShapeError(
                f"conversations[{position}].from must be one of {', '.join(SHAREGPT_ROLES)} (got {turn['from']!r})"
            )
        messages.append({"role": SHAREGPT_ROLES[turn["from"]], "content": turn["value"]})
    return messages


def as_messages(value: Any, key: str, role: str) -> list[Any]:
    """A string becomes one `role` message; a list is taken as messages already."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list):
        return value
    raise RecordShapeError(f"'{key}' must be a string or a list of messages (got {type(value).__name__})")


def conversation_problems(example: dict[str, Any]) -> list[str]:
    """Problems of a conversation whose messages are each well formed: is there anything to learn?"""
    if not any(message.get("role") == "assistant" for message in example["messages"]):
        return ["no assistant turn: there is nothing to learn from this conversation"]
    return []
