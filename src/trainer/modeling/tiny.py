"""The embedded default model: a tiny model of a given family (Qwen3 or Llama) and a byte-level BPE
tokenizer, both built locally and deterministically, then cached by their recipe so later runs reuse them."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen3Config,
)

from trainer.config.schema import ModelConfig, TinyModelConfig
from trainer.data.loading import SAMPLE_DATA
from trainer.modeling.chat_template import CHATML_TEMPLATE
from trainer.run.files import staged_directory

log = logging.getLogger(__name__)

PAD, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
# <think> tags exist as single tokens, as in Qwen3, so profiles can penalise them at generation.
SPECIAL_TOKENS = [PAD, IM_START, IM_END, "<think>", "</think>"]
# Bump when the recipe below changes, so stale cached models are not reused.
RECIPE_VERSION = "1"
# The families a tiny model can be built in: both take the same shape.
ARCHITECTURES: dict[str, type[PretrainedConfig]] = {"qwen3": Qwen3Config, "llama": LlamaConfig}


def tiny_model_dir(config: ModelConfig) -> Path:
    """The cached tiny model for `config`, built first if it is not there yet."""
    target = Path(config.cache_dir).expanduser() / "tiny" / recipe_key(config.architecture, config.tiny)
    if not (target / "config.json").is_file():
        build_tiny_model(config.architecture, config.tiny, target)
    return target


def recipe_key(architecture: str, config: TinyModelConfig) -> str:
    recipe = json.dumps({"architecture": architecture, **asdict(config)}, sort_keys=True) + RECIPE_VERSION
    corpus = hashlib.sha256(SAMPLE_DATA.read_bytes()).hexdigest()
    return hashlib.sha256((recipe + corpus).encode()).hexdigest()[:16]


def build_tiny_model(architecture: str, config: TinyModelConfig, target: Path) -> None:
    log.info("Building the tiny %s model into %s", architecture, target)
    tokenizer = build_tokenizer(config.vocab_size)
    model = build_model(architecture, config, tokenizer)
    # Built aside: a concurrent or interrupted build never leaves a half-written model.
    try:
        with staged_directory(target) as staging:
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
    except OSError:
        # Another process built the same model first.
        if not (target / "config.json").is_file():
            raise


def build_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on the sample data: any text encodes, the sample data compactly."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    bpe_trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(sample_corpus(), trainer=bpe_trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=IM_END, pad_token=PAD, additional_special_tokens=[IM_START]
    )
    wrapped.chat_template = CHATML_TEMPLATE
    return wrapped


def sample_corpus() -> list[str]:
    texts = ["system", "user", "assistant", "You are a helpful assistant."]
    for line in SAMPLE_DATA.read_text(encoding="utf-8").splitlines():
        texts += [message["content"] for message in json.loads(line)["messages"]]
    return texts


def build_model(architecture: str, config: TinyModelConfig, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    model_config = ARCHITECTURES[architecture](
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        head_dim=config.hidden_size // config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    # A private RNG stream: building the model never shifts the training seed's stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.init_seed)
        return AutoModelForCausalLM.from_config(model_config)
