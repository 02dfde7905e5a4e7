"""Loading the model and tokenizer a run trains, from a local directory (or a hub id when online)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from trainer.config.schema import ModelConfig
from trainer.errors import UserError, first_line
from trainer.modeling.chat_template import ensure_chat_template
from trainer.modeling.tiny import tiny_model_dir

log = logging.getLogger(__name__)

# A tokenizer that turns this into no tokens has no vocabulary: training would learn nothing.
PROBE_SENTENCE = "The quick brown fox jumps over the lazy dog. 2 + 3 = 5"


def model_location(config: ModelConfig) -> str:
    if config.source == "tiny":
        return str(tiny_model_dir(config))
    assert config.path is not None, "validated: pretrained models have a path"
    return str(Path(config.path).expanduser()) if config.path.startswith("~") else config.path


def load_model_and_tokenizer(
    config: ModelConfig, dtype: torch.dtype, quantize_4bit: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, list[str]]:
    """The model, its tokenizer with the chat template the run uses, and the tokens the tokenizer
    gained for that template (the model's embeddings are grown to fit them)."""
    location = model_location(config)
    log.info("Loading model %s from %s (%s)", config.name, location, describe_weights(dtype, quantize_4bit))
    tokenizer = load_tokenizer(location, config.trust_remote_code)
    # The template is chosen (and an unusable one refused) before the model loads.
    added_tokens = ensure_chat_template(tokenizer, config.chat_template)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            location,
            dtype=dtype,
            attn_implementation=config.attn_implementation,
            trust_remote_code=config.trust_remote_code,
            **(four_bit_loading(dtype) if quantize_4bit else {}),
        )
    except (OSError, ValueError, SafetensorError) as error:
        raise UserError(f"model.path={location}: the model could not be loaded: {first_line(error)}") from error
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    return model, tokenizer, added_tokens


def load_tokenizer(location: str, trust_remote_code: bool) -> PreTrainedTokenizerBase:
    """The tokenizer of `location`, refused when it cannot encode text."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
    except Exception as error:
        # A damaged tokenizer file surfaces as anything from OSError to KeyError.
        raise UserError(
            f"model.path={location}: the tokenizer could not be loaded ({type(error).__name__}: {first_line(error)})"
        ) from error
    if not tokenizer(PROBE_SENTENCE, add_special_tokens=False)["input_ids"]:
        raise UserError(
            f"model.path={location}: its tokenizer encodes text to no tokens at all (a tokenizer file is missing "
            "or empty); copy the model's tokenizer files into the directory"
        )
    return tokenizer


def describe_weights(dtype: torch.dtype, quantize_4bit: bool) -> str:
    name = str(dtype).removeprefix("torch.")
    return f"4-bit NF4, computing in {name}" if quantize_4bit else name


def four_bit_loading(compute_dtype: torch.dtype) -> dict:
    """from_pretrained arguments for a QLoRA base: NF4 weights with double quantization (the
    QLoRA paper's recipe), placed on this process's GPU, since bitsandbytes kernels are CUDA only."""
    from accelerate import PartialState
    from transformers import BitsAndBytesConfig

    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )
    return {"quantization_config": quantization, "device_map": {"": PartialState().local_process_index}}
