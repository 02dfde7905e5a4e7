"""The accepted record shapes, each converted to one internal form.

Chats become `{"messages": [...]}`: OpenAI `messages` pass through (a `content` given as a list
of parts becomes the text of its text parts, joined by newlines); ShareGPT `conversations`
(`from`/`value`), `prompt`/`completion` (strings, or lists of messages) and Alpaca
`instruction`/`input`/`output` (optional `system`) are rewritten. Assistant `tool_calls` and `tool`
messages are kept, with each call's `arguments` as an object (OpenAI writes them as JSON text), and
a record's `tools` list (or JSON text of one) goes to the chat template. Raw text `{"text": ...}`
for continued pretraining stays as it is: it is no conversation (see `is_raw_text`). Other keys of
a record are kept for the profile.
"""

from __future__ import annotations

import json
import operator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainer.profiles.base import Profile

# ShareGPT speakers; "user"/"assistant" appear in many ShareGPT-style exports too.
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}
ACCEPTED_SHAPES = (
    "'messages', 'conversations' (ShareGPT), 'prompt' + 'completion', "
    "'instruction' + 'output' (Alpaca) or 'text' (raw text)"
)
ALPACA_KEYS = ("instruction", "input", "output", "system")
# What separates the text parts of one message's content (as vLLM and TGI join them).
PART_SEPARATOR = "\n"


class RecordShapeError(ValueError):
    """The record matches none of the accepted shapes, or a part of it cannot be converted."""


def to_chat_example(record: Any) -> dict[str, Any]:
    """`record` in the internal form; raises `RecordShapeError` saying why not."""
    if not isinstance(record, dict):
        raise RecordShapeError(f"expected an object with {ACCEPTED_SHAPES}, got {type(record).__name__}")
    if "messages" in record:
        return with_plain_parts(record, record["messages"])
    if "conversations" in record:
        return with_plain_parts(without(record, ("conversations",)), sharegpt_messages(record["conversations"]))
    if "prompt" in record and "completion" in record:
        prompt = as_messages(record["prompt"], "prompt", "user")
        messages = prompt + as_messages(record["completion"], "completion", "assistant")
        return with_plain_parts(without(record, ("prompt", "completion")), messages)
    if "instruction" in record and "output" in record:
        return {**without(record, ALPACA_KEYS), "messages": alpaca_messages(record)}
    if "text" in record:
        if not isinstance(record["text"], str) or not record["text"]:
            raise RecordShapeError("'text' must be a non-empty string")
        return record
    raise RecordShapeError(f"expected {ACCEPTED_SHAPES}; found keys {', '.join(map(repr, record)) or 'none'}")


def is_raw_text(example: dict[str, Any]) -> bool:
    """Raw text for continued pretraining: trained on every token, without a chat template."""
    return "messages" not in example and "text" in example


def without(record: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key not in keys}


def with_plain_parts(record: dict[str, Any], messages: Any) -> dict[str, Any]:
    """The record with `messages` whose content parts are joined and whose tool calls and tools
    are in the form templates read: the record itself where nothing needed converting."""
    if not isinstance(messages, list):
        return {**record, "messages": messages}  # validation names what is wrong
    converted = [plain_message(message, position) for position, message in enumerate(messages)]
    tools = {"tools": tool_list(record["tools"])} if "tools" in record else {}
    unchanged = all(map(operator.is_, converted, messages)) and tools.get("tools") is record.get("tools")
    if unchanged and record.get("messages") is messages:
        return record
    return {**record, "messages": converted, **tools}


def plain_message(message: Any, position: int) -> Any:
    """One message with list content joined and call arguments parsed (the message itself when it
    has neither); anything that is no message is left for validation to name."""
    if not isinstance(message, dict) or not (isinstance(message.get("content"), list) or "tool_calls" in message):
        return message
    converted = dict(message)
    if isinstance(message.get("content"), list):
        converted["content"] = joined_text_parts(message["content"], f"messages[{position}].content")
    if "tool_calls" in message:
        converted["tool_calls"] = tool_calls(message["tool_calls"], f"messages[{position}].tool_calls")
        if converted.get("content") is None:
            # A call without text: OpenAI writes null, templates expect a string.
            converted["content"] = ""
    return converted


def joined_text_parts(parts: list[Any], key: str) -> str:
    texts = []
    for position, part in enumerate(parts):
        if isinstance(part, str):
            texts.append(part)
            continue
        kind = part.get("type") if isinstance(part, dict) else type(part).__name__
        if kind != "text" or not isinstance(part.get("text"), str):
            raise RecordShapeError(
                f"{key}[{position}] is a {kind!r} part; only text parts ({{'type': 'text', 'text': ...}}) can be trained on"
            )
        texts.append(part["text"])
    return PART_SEPARATOR.join(texts)


def tool_calls(calls: Any, key: str) -> list[dict[str, Any]]:
    """OpenAI tool calls (`{"type": "function", "function": {"name", "arguments"}}`, or the bare
    function), each with its arguments as an object."""
    if not isinstance(calls, list) or not calls:
        raise RecordShapeError(f"{key} must be a non-empty list of calls")
    converted = []
    for position, call in enumerate(calls):
        function = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise RecordShapeError(f"{key}[{position}] must be an object with a function 'name' and 'arguments'")
        arguments = parsed_json(function.get("arguments", {}), f"{key}[{position}].function.arguments", dict)
        function = {**function, "arguments": arguments}
        converted.append({**without(call, ("name", "arguments")), "type": "function", "function": function})
    return converted


def tool_list(tools: Any) -> list[Any]:
    """A record's tool definitions (JSON Schema objects, as templates take them), or JSON text of them."""
    return parsed_json(tools, "tools", list)


def parsed_json(value: Any, key: str, kind: type) -> Any:
    """`value`, or the value of the JSON text it is, which must be a `kind`."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise RecordShapeError(f"{key} is not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(value, kind):
        raise RecordShapeError(
            f"{key} must be a JSON {'object' if kind is dict else 'array'} (got {type(value).__name__})"
        )
    return value


def alpaca_messages(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Alpaca's instruction, then its input (when not empty) as one user turn; the output as the answer."""
    for key in ALPACA_KEYS:
        if key in record and not isinstance(record[key], str):
            raise RecordShapeError(f"'{key}' must be a string (got {type(record[key]).__name__})")
    prompt = "\n\n".join(text for text in (record["instruction"], record.get("input", "")) if text)
    system = [{"role": "system", "content": record["system"]}] if record.get("system") else []
    return [*system, {"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]


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


def shape_problems(example: dict[str, Any], profile: Profile) -> list[str]:
    """What keeps an example in the internal form from training under `profile`: the profile's own
    checks for a chat, with an assistant turn to learn. Raw text and tool calls are trained as
    written, which a profile that rewrites answers cannot respect: it is refused for them."""
    shape = "raw 'text'" if is_raw_text(example) else "tool-call" if has_tool_calls(example) else None
    if shape and profile.rewrites_answers:
        return [
            f"{shape} records train as written, but profile={profile.name} rewrites assistant answers; "
            "train them with profile=plain"
        ]
    if is_raw_text(example):
        return []
    if problems := profile.validate_example(example):
        return problems
    if not any(message.get("role") == "assistant" for message in example["messages"]):
        return ["no assistant turn: there is nothing to learn from this conversation"]
    return []


def has_tool_calls(example: dict[str, Any]) -> bool:
    messages = example.get("messages")
    return isinstance(messages, list) and any(
        isinstance(message, dict) and "tool_calls" in message for message in messages
    )
