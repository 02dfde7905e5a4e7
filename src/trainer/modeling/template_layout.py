"""Where in one rendering of a conversation each assistant answer lies.

Real templates do not render a conversation as an extension of its prefixes (Phi-3 ends the text
with an end-of-text token, Mistral moves the system prompt into the last user turn, Qwen3 rewrites
earlier turns and gives the last one an empty think block, Gemma refuses system messages). So the
answers are located in the rendering of the whole conversation: after the generation prompt,
each answer's rendered text followed by the template's end-of-turn text, both learned once per
template from a probe conversation (and checked against the prefix renders where those hold).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase

# The compiler and argument cleaner apply_chat_template uses (transformers 5.x), so that a direct
# render is the same render. They are private: a release without them renders every conversation
# through apply_chat_template (slower, same text).
try:
    from transformers.utils.chat_template_utils import _compile_jinja_template, _plain_template_data
except ImportError:
    _compile_jinja_template = _plain_template_data = None

from trainer.errors import UserError

log = logging.getLogger(__name__)

CHANGE_TEMPLATE = "change model.chat_template (auto|chatml|tokenizer)"

# How the families' templates can be recognised, to name them in messages and logs.
FAMILY_MARKERS = (
    ("<|start_header_id|>", "Llama 3"),
    ("<start_of_turn>", "Gemma"),
    ("<|assistant|>", "Phi-3"),
    ("[INST]", "Mistral"),
    ("<｜Assistant｜>", "DeepSeek-R1"),
    ("last_query_index", "Qwen3"),
    ("<|im_start|>", "ChatML"),
)
# Plain words no template rewrites (no surrounding whitespace, no think tags), each unique.
PROBE = (
    {"role": "system", "content": "PROBE-SYSTEM"},
    {"role": "user", "content": "PROBE-USER-1"},
    {"role": "assistant", "content": "PROBE-ANSWER-1"},
    {"role": "user", "content": "PROBE-USER-2"},
    {"role": "assistant", "content": "PROBE-ANSWER-2"},
)


PLAIN = "a plain conversation"


class TemplateError(UserError):
    """The chat template refuses a conversation, or its answers cannot be located in its rendering."""

    error_type = "template_error"


@dataclass(frozen=True)
class TemplateLayout:
    """What a template puts around assistant answers, learned from probe renders."""

    name: str
    # What add_generation_prompt appends: the model's answer starts after it ("" when ignored).
    generation_prompt: str
    # That prompt cut at each of its token boundaries, longest first (see `generation_prompt_heads`).
    answer_headers: tuple[str, ...]
    # What closes every answer (whitespace after it excluded): learned with the answer.
    end_of_turn: str
    # Where the system prompt goes: "" where the template puts it; "first" (no system role, as
    # Gemma) or "last" (dropped unless the conversation ends with a user turn, as Mistral) user turn.
    system_into: str


def describe_template(template: str) -> str:
    """The template's family where it is recognisable, otherwise its first line."""
    for marker, family in FAMILY_MARKERS:
        if marker in template:
            return f"the {family} chat template"
    first_line = next((line.strip() for line in template.splitlines() if line.strip()), "")
    shown = first_line if len(first_line) <= 60 else first_line[:57] + "..."
    return f'the chat template "{shown}"'


_LAYOUTS: dict[tuple[str, str | None, str | None], TemplateLayout] = {}


def template_layout(tokenizer: PreTrainedTokenizerBase) -> TemplateLayout:
    """The tokenizer's template layout, learned once per template (and per process)."""
    key = (tokenizer.chat_template, tokenizer.bos_token, tokenizer.eos_token)
    if key not in _LAYOUTS:
        _LAYOUTS[key] = learn_layout(tokenizer)
    return _LAYOUTS[key]


def learn_layout(tokenizer: PreTrainedTokenizerBase) -> TemplateLayout:
    name = describe_template(tokenizer.chat_template)
    probe = [dict(message) for message in PROBE]
    system_into = system_placement(tokenizer, name, probe)
    conversation = fold_system_prompt(probe, system_into)
    head = conversation[: next(i for i, message in enumerate(conversation) if message["role"] == "assistant")]
    with_prompt = render_or_refuse(tokenizer, name, head, True, refused=PLAIN)
    without = render_or_refuse(tokenizer, name, head, refused=PLAIN)
    generation_prompt = with_prompt[len(common_token_prefix(tokenizer, with_prompt, without)) :]
    text = render_or_refuse(tokenizer, name, conversation, refused=PLAIN)
    answers = ("PROBE-ANSWER-1", "PROBE-ANSWER-2")
    if not all(answer in text for answer in answers):
        raise TemplateError(f"{name} does not render assistant answers as given; {CHANGE_TEMPLATE}")
    endings = [text[text.index(answer) + len(answer) :] for answer in answers]
    end_of_turn = common_token_prefix(tokenizer, *endings).rstrip()
    if not end_of_turn:
        raise TemplateError(
            f"{name} renders no end-of-turn text after an answer, so none can be learned; {CHANGE_TEMPLATE}"
        )
    headers = generation_prompt_heads(tokenizer, generation_prompt)
    layout = TemplateLayout(name, generation_prompt, headers, end_of_turn, system_into)
    check_against_prefixes(tokenizer, layout, conversation)
    return layout


def system_placement(tokenizer: PreTrainedTokenizerBase, name: str, probe: list[dict]) -> str:
    """Where system prompts have to be folded for this template (see `TemplateLayout.system_into`)."""
    try:
        text = raw_render(tokenizer, probe)
    except Exception as refusal:  # whatever a template raises is the template's refusal
        render_or_refuse(tokenizer, name, probe[1:], refused=PLAIN)
        log.info("System prompts are folded into the first user turn: %s has no system role (%s)", name, refusal)
        return "first"
    if "PROBE-SYSTEM" in text:
        return ""
    log.info(
        "System prompts are folded into the last user turn, where %s puts them for generation "
        "(it drops them from conversations that end with an answer)",
        name,
    )
    return "last"


def common_token_prefix(tokenizer: PreTrainedTokenizerBase, first: str, second: str) -> str:
    """The longest common start of two texts that ends on a token boundary of both (Phi-3's texts
    after an answer share `<|end|>\\n<|`, of which only `<|end|>\\n` is whole tokens)."""
    shared = next(
        (i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b), min(len(first), len(second))
    )
    ends = set(token_ends(tokenizer, first)) & set(token_ends(tokenizer, second))
    return first[: max((end for end in ends if end <= shared), default=0)]


def token_ends(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [end for _, end in offsets]


def check_against_prefixes(
    tokenizer: PreTrainedTokenizerBase, layout: TemplateLayout, conversation: list[dict]
) -> bool:
    """Where the template renders the conversation as an extension of its prefixes (False when
    not), the answers found in the whole rendering must be exactly the text each prefix adds after
    its generation prompt; raises `TemplateError` when they are not."""
    text, spans = locate_answers(tokenizer, layout, conversation)
    expected = []
    for position, message in enumerate(conversation):
        if message["role"] != "assistant":
            continue
        prompt = raw_render(tokenizer, conversation[:position], True)
        through_turn = raw_render(tokenizer, conversation[: position + 1])
        if not (through_turn.startswith(prompt) and text.startswith(through_turn)):
            return False
        expected.append((len(prompt), len(through_turn.rstrip())))
    if spans != expected:
        raise TemplateError(f"{layout.name} renders answers where they cannot be located; {CHANGE_TEMPLATE}")
    return True


def fold_system_prompt(messages: list[dict], into: str) -> list[dict]:
    """The system prompt moved into the `into` ("first" or "last") user turn; unchanged for ""."""
    if not into:
        return messages
    system = "\n\n".join(message["content"] for message in messages if message["role"] == "system")
    rest = [message for message in messages if message["role"] != "system"]
    users = [i for i, message in enumerate(rest) if message["role"] == "user"]
    if not system or not users:
        return rest
    target = users[0] if into == "first" else users[-1]
    folded = {**rest[target], "content": f"{system}\n\n{rest[target]['content']}"}
    return [*rest[:target], folded, *rest[target + 1 :]]


def raw_render(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict],
    generation_prompt: bool = False,
    tools: list[dict] | None = None,
) -> str:
    """The template's rendering, with the `tools` a conversation may call. A conversation of plain
    text messages without tools (what most records become) goes straight to the compiled template,
    with what `apply_chat_template` would pass it: that call first rebuilds every message, which for
    such messages changes nothing and costs several times the render itself. Anything else is left
    to `apply_chat_template`."""
    template = compiled_template(tokenizer)
    if template is None or tools is not None or not all(plain_message(message) for message in messages):
        return tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt
        )
    renderer, variables = template
    return renderer.render(
        messages=messages, tools=None, documents=None, add_generation_prompt=generation_prompt, **variables
    )


def plain_message(message: object) -> bool:
    """A message `apply_chat_template` would pass to the template as it is: a role and a content,
    both exact strings (it drops None values, aliases reasoning keys, rebuilds rich objects)."""
    return (
        type(message) is dict
        and message.keys() == PLAIN_KEYS
        and type(message["role"]) is str
        and type(message["content"]) is str
    )


PLAIN_KEYS = {"role", "content"}


_COMPILED: dict[tuple[str, tuple], tuple[Any, dict[str, Any]]] = {}


def compiled_template(tokenizer: PreTrainedTokenizerBase) -> tuple[Any, dict[str, Any]] | None:
    """The tokenizer's template compiled by transformers (once per template and special tokens),
    and the special tokens it is rendered with; None for a tokenizer with several named templates."""
    template = tokenizer.chat_template
    if not isinstance(template, str) or _compile_jinja_template is None:
        return None
    special_tokens = tokenizer.special_tokens_map
    key = (template, tuple(sorted((name, str(value)) for name, value in special_tokens.items())))
    if key not in _COMPILED:
        _COMPILED[key] = (_compile_jinja_template(template), _plain_template_data(special_tokens))
    return _COMPILED[key]


def render_conversation(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict], generation_prompt: bool = False
) -> str:
    """The conversation as the run's template renders it (system prompt folded where the template
    needs it); a template that refuses it raises `TemplateError`."""
    layout = template_layout(tokenizer)
    conversation = fold_system_prompt(messages, layout.system_into)
    return render_or_refuse(tokenizer, layout.name, conversation, generation_prompt)


def render_or_refuse(
    tokenizer: PreTrainedTokenizerBase,
    name: str,
    messages: list[dict],
    generation_prompt: bool = False,
    refused: str = "this conversation",
    tools: list[dict] | None = None,
) -> str:
    """The rendering; whatever the template raises is its refusal, reported as `TemplateError`."""
    try:
        return raw_render(tokenizer, messages, generation_prompt, tools)
    except Exception as error:
        raise TemplateError(f"{name} refuses {refused} ({error}); {CHANGE_TEMPLATE}") from None


def assistant_answer_spans(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict], tools: list[dict] | None = None
) -> tuple[str, list[tuple[int, int]]]:
    """The conversation rendered once (with the `tools` it may call), and the [start, end)
    character span of each assistant answer in it: its rendered text plus the end-of-turn text
    that closes it; for a tool call, all the template renders of the turn, the call included."""
    layout = template_layout(tokenizer)
    conversation = fold_system_prompt(messages, layout.system_into)
    return locate_answers(tokenizer, layout, conversation, tools)


def locate_answers(
    tokenizer: PreTrainedTokenizerBase,
    layout: TemplateLayout,
    conversation: list[dict],
    tools: list[dict] | None = None,
) -> tuple[str, list[tuple[int, int]]]:
    check_renders_tools(tokenizer.chat_template, layout.name, conversation, tools)
    text = render_or_refuse(tokenizer, layout.name, conversation, tools=tools)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for message in conversation:
        # System prompts may be moved (Mistral: into the last user turn); they are never learned.
        if message["role"] == "system":
            continue
        if message["role"] != "assistant":
            # Passing over the other turns keeps marker text quoted in them from being taken for
            # an answer's header.
            found = earliest(text, rendered_forms(message["content"]), cursor)
            cursor = found[1] if found else cursor
            continue
        header = earliest(text, list(layout.answer_headers), cursor)
        start = header[1] if header else cursor
        if "tool_calls" in message:
            # The template writes the call in its own syntax: the whole turn up to its end is learned.
            end = text.find(layout.end_of_turn, start)
            if end < 0:
                raise TemplateError(
                    f"{layout.name} renders tool call {len(spans) + 1} without its end-of-turn {layout.end_of_turn!r}; {CHANGE_TEMPLATE}"
                )
            spans.append((start, end + len(layout.end_of_turn)))
            cursor = spans[-1][1]
            continue
        answer = earliest(text, [form + layout.end_of_turn for form in rendered_forms(message["content"])], start)
        # Between the header and the answer only what the template inserts (Qwen3's empty think
        # block), never another turn's end.
        if answer is None or text.find(layout.end_of_turn, start, answer[0]) >= 0:
            raise TemplateError(
                f"{layout.name} renders assistant answer {len(spans) + 1} so that it cannot be located "
                f"before its end-of-turn {layout.end_of_turn!r}; {CHANGE_TEMPLATE}"
            )
        spans.append((start if header else answer[0], answer[1]))
        cursor = answer[1]
    return text, spans


def check_renders_tools(template: Any, name: str, conversation: list[dict], tools: list[dict] | None) -> None:
    """Tool calls and tool lists need a template that renders them: one that does not would drop
    them silently (or fail on a call's empty content)."""
    calls = any("tool_calls" in message for message in conversation)
    if (calls and "tool_calls" not in str(template)) or (tools is not None and "tools" not in str(template)):
        what = "tool calls" if calls else "a tools list"
        raise TemplateError(
            f"{name} does not render {what}; train on them with a model whose chat template does "
            "(e.g. Qwen3 or Llama 3 with model.chat_template=tokenizer)"
        )


def generation_prompt_heads(tokenizer: PreTrainedTokenizerBase, generation_prompt: str) -> tuple[str, ...]:
    """The generation prompt cut at each of its token boundaries, longest first: earlier answers
    may carry only its start (DeepSeek-R1's prompt ends with `<think>\\n`, its history does not)."""
    if not generation_prompt:
        return ()
    ends = sorted({len(generation_prompt), *token_ends(tokenizer, generation_prompt)}, reverse=True)
    return tuple(generation_prompt[:end] for end in ends if end > 0)


def rendered_forms(content: str) -> list[str]:
    """How templates render a message's content: as given, trimmed (Llama 3, Gemma), or with the
    reasoning before `</think>` dropped (Qwen3, DeepSeek-R1 on earlier turns)."""
    if "</think>" not in content and not content[:1].isspace() and not content[-1:].isspace():
        return [content]  # what the forms below all come to, found without building them
    answer = content.split("</think>")[-1]
    forms = [content, content.strip(), answer, answer.lstrip("\n"), answer.strip()]
    return list(dict.fromkeys(forms))


def earliest(text: str, candidates: list[str], cursor: int) -> tuple[int, int] | None:
    """The [start, end) of the candidate found first after `cursor`; at one place, the longest."""
    if len(candidates) == 1:
        position = text.find(candidates[0], cursor)
        return (position, position + len(candidates[0])) if position >= 0 else None
    found = [(position, -len(candidate)) for candidate in candidates if (position := text.find(candidate, cursor)) >= 0]
    if not found:
        return None
    position, negative_length = min(found)
    return position, position - negative_length
