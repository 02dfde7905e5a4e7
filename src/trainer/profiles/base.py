"""The profile interface: a data contract applied to every chat example, plus generation-time
logits processors. A new profile is one module here, one line in the registry, one YAML file."""

from __future__ import annotations

import re
from datetime import date
from typing import Any, ClassVar

from transformers import LogitsProcessorList, PreTrainedTokenizerBase

from trainer.config.schema import ProfileConfig

# "tool": a tool's output, answering an assistant's `tool_calls` (never learned).
ROLES = ("system", "user", "assistant", "tool")
Example = dict[str, Any]


class Profile:
    name: ClassVar[str]
    version: ClassVar[str] = "1"
    system_prompt_template: ClassVar[str] = "You are a helpful assistant. Today is {date}."
    # What the generation eval scores each answer by (`score_answer`'s keys), logged as eval/<name>.
    eval_metrics: ClassVar[tuple[str, ...]] = ("exact_match",)
    # Whether the profile rewrites assistant answers (a contract on their text): raw text and
    # tool calls, trained as written, are refused under such a profile.
    rewrites_answers: ClassVar[bool] = False

    def __init__(self, config: ProfileConfig, seed: int) -> None:
        self.config = config
        self.seed = seed

    def render_system_prompt(self, template: str | None, run_date: date) -> str:
        """`template` (or the profile's own) with `{date}` filled with the run's date (never the
        calendar's: the same run tokenizes the same on any day)."""
        text = self.system_prompt_template if template is None else template
        return text.replace("{date}", run_date.isoformat())

    def transform_example(self, example: Example, index: int, system_prompt: str) -> Example:
        """The training example for raw `example`, the `index`-th of its data set. `example` is
        never changed; the result shares what it does not change with it (no profile mutates a
        message in place: each builds new ones), as a deep copy of every conversation would cost
        a third of tokenizing it."""
        return {**example, "messages": with_system_prompt(example["messages"], system_prompt)}

    def build_logits_processors(self, tokenizer: PreTrainedTokenizerBase) -> LogitsProcessorList:
        return LogitsProcessorList()

    def preview_checks(self, answer: str) -> dict[str, bool]:
        """Named checks of a generated answer that previews report (none by default)."""
        return {}

    def score_answer(self, answer: str, reference: str) -> dict[str, bool]:
        """The generated `answer` checked against the `reference` answer, one entry per name in
        `eval_metrics`."""
        return {"exact_match": normalized_answer(answer) == normalized_answer(reference)}

    def validate_example(self, example: Any) -> list[str]:
        """What is wrong with `example`, one message per problem (empty when it is valid)."""
        return chat_example_problems(example)

    def metadata(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


def normalized_answer(text: str) -> str:
    """`text` compared for exact match: case and runs of whitespace do not count."""
    return re.sub(r"\s+", " ", text).strip().casefold()


def with_system_prompt(messages: list[dict[str, str]], system_prompt: str) -> list[dict[str, str]]:
    """Replace the content of a leading system message, or insert one."""
    if messages and messages[0]["role"] == "system":
        return [{**messages[0], "content": system_prompt}, *messages[1:]]
    return [{"role": "system", "content": system_prompt}, *messages]


def chat_example_problems(example: Any) -> list[str]:
    if not isinstance(example, dict):
        return [f"expected an object with a 'messages' list, got {type(example).__name__}"]
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        return ["'messages' must be a non-empty list"]
    problems = []
    for position, message in enumerate(messages):
        if not isinstance(message, dict):
            problems.append(f"messages[{position}] must be an object with 'role' and 'content'")
            continue
        if message.get("role") not in ROLES:
            problems.append(
                f"messages[{position}].role must be one of {', '.join(ROLES)} (got {message.get('role')!r})"
            )
        if not isinstance(message.get("content"), str):
            problems.append(f"messages[{position}].content must be a string")
    return problems
