"""Chat templates: the tokenizer's own where it suits the profiles, plain ChatML otherwise."""

from __future__ import annotations

import logging

from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def ensure_chat_template(tokenizer: PreTrainedTokenizerBase) -> None:
    """Use ChatML when the tokenizer has no template or one that injects `<think>` blocks (Qwen3),
    since the profiles decide themselves what an assistant turn contains."""
    template = tokenizer.chat_template
    if isinstance(template, str) and "<think>" not in template:
        return
    reason = "has no chat template" if not template else "has a template that injects <think> blocks"
    log.info("The tokenizer %s; using plain ChatML instead", reason)
    tokenizer.chat_template = CHATML_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
