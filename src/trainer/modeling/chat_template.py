"""Chat templates: which one a run uses (`model.chat_template`): the tokenizer's own where it
suits the profiles and can be masked, plain ChatML otherwise."""

from __future__ import annotations

import logging

from transformers import PreTrainedTokenizerBase

from trainer.errors import UserError
from trainer.modeling.template_layout import TemplateError, describe_template, template_layout

log = logging.getLogger(__name__)

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")


def ensure_chat_template(tokenizer: PreTrainedTokenizerBase, mode: str) -> list[str]:
    """Give the tokenizer the template `mode` asks for (see `model.chat_template`) and a pad token;
    return the tokens it gained for that, whose embeddings the model then has to learn. The
    tokenizer's own template is probed here, before any model loads: under `tokenizer` a template
    that refuses a plain conversation or cannot be masked stops the run, under `auto` ChatML
    takes its place."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if mode == "tokenizer" and not tokenizer.chat_template:
        raise UserError("model.chat_template=tokenizer, but this tokenizer has no chat template; use auto or chatml")
    if mode == "tokenizer" or (mode == "auto" and own_template_suits(tokenizer)):
        log.info("Chat template: the tokenizer's own (%s)", template_layout(tokenizer).name)
        return []
    tokenizer.chat_template = CHATML_TEMPLATE
    vocabulary = tokenizer.get_vocab()
    missing = [token for token in CHATML_TOKENS if token not in vocabulary]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
        log.info("Added the ChatML tokens %s to the tokenizer", ", ".join(missing))
    return missing


def own_template_suits(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Under auto: the tokenizer's own template, unless it has none, injects `<think>` blocks
    (Qwen3, DeepSeek-R1: the profiles decide themselves what an assistant turn contains) or
    cannot be masked."""
    template = tokenizer.chat_template
    if not isinstance(template, str) or not template:
        reason = "has no chat template"
    elif "<think>" in template:
        reason = f"has a template that injects <think> blocks ({describe_template(template)})"
    else:
        try:
            template_layout(tokenizer)
            return True
        except TemplateError as error:
            reason = f"has a template that cannot be used ({error})"
    log.info("The tokenizer %s; using plain ChatML instead", reason)
    return False
