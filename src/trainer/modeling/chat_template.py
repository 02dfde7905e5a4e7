"""Chat templates: the tokenizer's own where it suits the profiles, plain ChatML otherwise."""

from __future__ import annotations

import logging

from transformers import PreTrainedTokenizerBase

from trainer.errors import UserError

log = logging.getLogger(__name__)

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE_MODES = ("auto", "chatml", "tokenizer")


def ensure_chat_template(tokenizer: PreTrainedTokenizerBase, mode: str) -> list[str]:
    """Give the tokenizer the template `mode` asks for (see `model.chat_template`) and a pad token;
    return the tokens it gained for that, whose embeddings the model then has to learn."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if mode == "tokenizer" and not tokenizer.chat_template:
        raise UserError("model.chat_template=tokenizer, but this tokenizer has no chat template; use auto or chatml")
    if not uses_chatml(tokenizer.chat_template, mode):
        return []
    tokenizer.chat_template = CHATML_TEMPLATE
    vocabulary = tokenizer.get_vocab()
    missing = [token for token in CHATML_TOKENS if token not in vocabulary]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
        log.info("Added the ChatML tokens %s to the tokenizer", ", ".join(missing))
    return missing


def uses_chatml(template: object, mode: str) -> bool:
    """ChatML when asked for, or (auto) when the tokenizer has no template or one that injects
    `<think>` blocks (Qwen3), since the profiles decide themselves what an assistant turn contains."""
    if mode != "auto":
        return mode == "chatml"
    if isinstance(template, str) and "<think>" not in template:
        return False
    reason = "has no chat template" if not template else "has a template that injects <think> blocks"
    log.info("The tokenizer %s; using plain ChatML instead", reason)
    return True
