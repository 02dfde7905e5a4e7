"""Adapters: LoRA (or QLoRA, LoRA over a 4-bit base) on a frozen model, or none for a full fine-tune."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from transformers import PreTrainedModel

from trainer.config.schema import ModelConfig, PeftConfig
from trainer.modeling.loading import load_model_and_tokenizer

log = logging.getLogger(__name__)

# Every attention and MLP projection: adapting them all beats attention-only LoRA (QLoRA paper).
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA_TARGET_MODULES = {"qwen3": PROJECTIONS, "llama": PROJECTIONS}
# The input and output embeddings, which new tokens need trained in full.
EMBEDDING_MODULES = ["embed_tokens", "lm_head"]


def apply_adapter(
    model: PreTrainedModel, config: PeftConfig, architecture: str, added_tokens: list[str]
) -> PreTrainedModel | PeftModel:
    """`model` itself for a full fine-tune, else `model` frozen under fresh LoRA adapters."""
    if config.method == "none":
        return model
    if config.method == "qlora":
        # Casts norms to fp32 and freezes the 4-bit base; checkpointing is the Trainer's to switch on.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    modules_to_save = config.modules_to_save
    if modules_to_save is None and added_tokens:
        modules_to_save = EMBEDDING_MODULES
        log.info("The tokenizer gained %d tokens: training %s in full", len(added_tokens), ", ".join(modules_to_save))
    lora = LoraConfig(
        task_type="CAUSAL_LM",
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=config.target_modules or LORA_TARGET_MODULES.get(architecture, "all-linear"),
        modules_to_save=modules_to_save,
        # Tied input/output embeddings stay one matrix when both are trained in full.
        ensure_weight_tying=bool(modules_to_save) and bool(getattr(model.config, "tie_word_embeddings", False)),
    )
    with quiet_peft_deprecations():
        return get_peft_model(model, lora)


def count_parameters(model: PreTrainedModel | PeftModel) -> dict[str, int | float]:
    """Trainable and total parameters (tied weights counted once, 4-bit weights as their full count)."""
    if isinstance(model, PeftModel):
        trainable, total = model.get_nb_trainable_parameters()
    else:
        parameters = list(model.parameters())
        trainable = sum(parameter.numel() for parameter in parameters if parameter.requires_grad)
        total = sum(parameter.numel() for parameter in parameters)
    share = round(100 * trainable / total, 4) if total else 0.0
    log.info("Parameters: %s trainable of %s (%.4g%%)", f"{trainable:,}", f"{total:,}", share)
    return {"trainable_parameters": trainable, "total_parameters": total, "trainable_percent": share}


def save_merged_model(config: ModelConfig, adapter_dir: Path, target: Path, dtype: torch.dtype) -> None:
    """Base + the saved adapter merged into one full model at `target`, loadable without peft.
    The base is reloaded unquantized, so a QLoRA adapter merges into full-precision weights."""
    base, tokenizer, _ = load_model_and_tokenizer(config, dtype)
    with quiet_peft_deprecations():
        merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.save_pretrained(target)
    tokenizer.save_pretrained(target)
    log.info("Saved the merged model to %s", target)


@contextmanager
def quiet_peft_deprecations() -> Iterator[None]:
    """peft 0.21 still reads transformers' deprecated `is_gradient_checkpointing`: a warning on every
    run that the user can do nothing about."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield
