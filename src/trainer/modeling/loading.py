"""Loading the model and tokenizer a run trains, from a local directory (or a hub id when online)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from trainer.config import ModelConfig
from trainer.errors import UserError
from trainer.modeling.chat_template import ensure_chat_template
from trainer.modeling.tiny import tiny_model_dir

log = logging.getLogger(__name__)


def model_location(config: ModelConfig) -> str:
    if config.source == "tiny":
        return str(tiny_model_dir(config.tiny, Path(config.cache_dir)))
    assert config.path is not None, "validated: pretrained models have a path"
    return str(Path(config.path).expanduser()) if config.path.startswith("~") else config.path


def load_model_and_tokenizer(
    config: ModelConfig, dtype: torch.dtype
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    location = model_location(config)
    log.info("Loading model %s from %s (%s)", config.name, location, str(dtype).removeprefix("torch."))
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=config.trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            location,
            dtype=dtype,
            attn_implementation=config.attn_implementation,
            trust_remote_code=config.trust_remote_code,
        )
    except OSError as error:
        raise UserError(f"model.path={location} could not be loaded: {error}") from error
    ensure_chat_template(tokenizer)
    return model, tokenizer
