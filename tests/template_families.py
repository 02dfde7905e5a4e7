"""The real chat templates of popular model families (tests/data/templates/, see its README),
each attached to the tiny tokenizer together with the family's special tokens."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from trainer.config.schema import TinyModelConfig
from trainer.modeling.tiny import build_model, build_tokenizer

TEMPLATES = Path(__file__).parent / "data" / "templates"

# Multi-turn conversations: with a system prompt, without one (answers with outer spaces), unicode.
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "2 + 2 = 4"},
    {"role": "user", "content": "And 3 * 3?"},
    {"role": "assistant", "content": "3 * 3 = 9"},
]
NO_SYSTEM = [
    {"role": "user", "content": "Name a prime."},
    {"role": "assistant", "content": "7"},
    {"role": "user", "content": "Another one?"},
    {"role": "assistant", "content": " 11 is prime too. "},
    {"role": "user", "content": "And the next?"},
    {"role": "assistant", "content": "13"},
]
UNICODE = [
    {"role": "system", "content": "Réponds en bref — 简短回答."},
    {"role": "user", "content": "Wie heißt die Hauptstadt von 日本? 🤔"},
    {"role": "assistant", "content": "東京 (Tōkyō) ✨🛑🛑"},
    {"role": "user", "content": "Und von Ελλάδα?"},
    {"role": "assistant", "content": "Αθήνα 🏛️"},
]


@dataclass(frozen=True)
class Family:
    template: str
    bos: str | None
    eos: str
    tokens: tuple[str, ...]
    # What the template closes each answer with, and the text it opens each answer with.
    end_of_turn: str
    generation_prompt: str
    # Where the system prompt is folded (TemplateLayout.system_into).
    system_into: str = ""
    # Text the template puts before the last answer only (Qwen3's empty think block).
    last_answer_prefix: str = ""
    trims: bool = False


FAMILIES = {
    "qwen3": Family(
        "qwen3",
        None,
        "<|im_end|>",
        ("<|im_start|>", "<|im_end|>"),
        "<|im_end|>",
        "<|im_start|>assistant\n",
        last_answer_prefix="<think>\n\n</think>\n\n",
    ),
    "llama-3.2": Family(
        "llama-3.2",
        "<|begin_of_text|>",
        "<|eot_id|>",
        ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
        "<|eot_id|>",
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        trims=True,
    ),
    "gemma-2": Family(
        "gemma-2",
        "<bos>",
        "<eos>",
        ("<start_of_turn>", "<end_of_turn>"),
        "<end_of_turn>",
        "<start_of_turn>model\n",
        system_into="first",
        trims=True,
    ),
    "phi-3.5": Family(
        "phi-3.5",
        "<s>",
        "<|endoftext|>",
        ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>"),
        "<|end|>",
        "<|assistant|>\n",
    ),
    "mistral-nemo": Family("mistral-nemo", "<s>", "</s>", ("[INST]", "[/INST]"), "</s>", "", system_into="last"),
    "deepseek-r1": Family(
        "deepseek-r1",
        "<｜begin▁of▁sentence｜>",
        "<｜end▁of▁sentence｜>",
        ("<｜User｜>", "<｜Assistant｜>"),
        "<｜end▁of▁sentence｜>",
        "<｜Assistant｜><think>\n",
    ),
}


@cache
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer(512)


def family_tokenizer(name: str) -> PreTrainedTokenizerFast:
    """The tiny tokenizer carrying the family's template and special tokens."""
    family = FAMILIES[name]
    tokenizer = copy.deepcopy(tiny_tokenizer())
    roles = {"eos_token": family.eos} | ({"bos_token": family.bos} if family.bos else {})
    tokenizer.add_special_tokens(
        {**roles, "additional_special_tokens": list(family.tokens)}, replace_extra_special_tokens=False
    )
    tokenizer.chat_template = (TEMPLATES / f"{family.template}.jinja").read_text(encoding="utf-8")
    return tokenizer


def pretrained_dir(directory: Path, family: str, template: str | None = None) -> Path:
    """A tiny model saved with the family's tokenizer (or `template` instead of its own)."""
    tokenizer = family_tokenizer(family)
    if template is not None:
        tokenizer.chat_template = template
    build_model("llama", TinyModelConfig(), tokenizer).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def rendered_answer(name: str, content: str, last: bool) -> str:
    """An assistant answer as the family's template renders it, with its end-of-turn."""
    family = FAMILIES[name]
    answer = content.strip() if family.trims else content
    return (family.last_answer_prefix if last else "") + answer + family.end_of_turn
