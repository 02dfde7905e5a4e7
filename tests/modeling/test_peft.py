"""LoRA with peft: only the adapters train, and what is saved reloads to the same model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from tests.helpers import RUN_DATE
from trainer.config.load import to_trainer_config
from trainer.config.schema import TrainerConfig
from trainer.data.split import record_split
from trainer.engine import TrainerEngine
from trainer.modeling.adapters import EMBEDDING_MODULES, apply_adapter
from trainer.modeling.loading import load_model_and_tokenizer, model_location
from trainer.profiles import build_profile
from trainer.recipe import (
    build_trainer,
    fit,
    save_final_model,
    setup_data,
    setup_model,
    training_callbacks,
)
from trainer.run.layout import RunDirectory
from trainer.run.status import StatusWriter

# A few small steps: enough for every adapter weight to move.
SHORT_RUN = [
    "train.max_steps=6", "train.per_device_train_batch_size=4", "train.logging_steps=2",
    "train.eval_steps=6", "train.save_steps=6", "monitoring.tensorboard=false",
]  # fmt: skip


@dataclass
class LoraTraining:
    config: TrainerConfig
    model: PeftModel
    base_before: dict[str, torch.Tensor]
    run_dir: RunDirectory


@pytest.fixture(scope="module")
def lora_training(compose_dictconfig, model_cache, tmp_path_factory) -> LoraTraining:
    """The engine's steps, kept in memory: tiny model + LoRA, trained a few steps, then saved."""
    run_dir = RunDirectory(tmp_path_factory.mktemp("lora-run"))
    overrides = [
        "peft=lora",
        "peft.merge_on_save=true",
        f"run.output_dir={run_dir.root}",
        f"model.cache_dir={model_cache}",
        f"run.date={RUN_DATE}",
    ]
    overrides += SHORT_RUN
    config = to_trainer_config(compose_dictconfig(overrides))
    setup = setup_model(config)
    model = setup.model
    base_before = {
        name: weight.detach().clone() for name, weight in model.named_parameters() if not weight.requires_grad
    }
    profile = build_profile(config.profile, config.seed)
    data = setup_data(config, run_dir, profile, record_split(config.data, profile, config.seed), setup.tokenizer)
    status = StatusWriter(run_dir.status_file, config.monitoring.status_interval_sec)
    trainer = build_trainer(config, run_dir, setup, data.tokenized, training_callbacks(config, run_dir, status))
    fit(trainer, None, config.train.max_steps)
    save_final_model(config, run_dir, trainer, setup)
    return LoraTraining(config, model.eval(), base_before, run_dir)


def logits_of(model, input_ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=input_ids).logits


def probe_ids(vocab_size: int) -> torch.Tensor:
    return torch.arange(40).reshape(2, 20) % vocab_size


def fresh_base(config: TrainerConfig):
    return AutoModelForCausalLM.from_pretrained(model_location(config.model), dtype=torch.float32)


def test_only_adapter_weights_train_and_base_weights_stay_bit_identical(lora_training):
    trainable = {name: weight for name, weight in lora_training.model.named_parameters() if weight.requires_grad}
    assert trainable and all(".lora_A." in name or ".lora_B." in name for name in trainable)
    # LoRA B starts at zero: every one of them must have moved.
    assert all(weight.abs().sum() > 0 for name, weight in trainable.items() if ".lora_B." in name)
    after = dict(lora_training.model.named_parameters())
    assert all(torch.equal(after[name], before) for name, before in lora_training.base_before.items())
    base_total = sum(weight.numel() for weight in fresh_base(lora_training.config).parameters())
    assert sum(weight.numel() for weight in lora_training.base_before.values()) == base_total


def test_lora_adapts_every_attention_and_mlp_projection(lora_training):
    adapted = {name.split(".")[-1] for name, _ in lora_training.model.named_modules() if name.endswith("_proj")}
    assert set(lora_training.model.peft_config["default"].target_modules) == adapted
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_the_saved_adapter_reloads_with_the_in_memory_logits(lora_training):
    reloaded = PeftModel.from_pretrained(fresh_base(lora_training.config), lora_training.run_dir.final_model_dir)
    ids = probe_ids(lora_training.model.config.vocab_size)
    assert torch.equal(logits_of(reloaded.eval(), ids), logits_of(lora_training.model, ids))


def test_the_merged_model_gives_the_logits_of_base_plus_adapter(lora_training):
    merged = AutoModelForCausalLM.from_pretrained(lora_training.run_dir.merged_model_dir, dtype=torch.float32)
    ids = probe_ids(merged.config.vocab_size)
    torch.testing.assert_close(logits_of(merged, ids), logits_of(lora_training.model, ids), rtol=0, atol=1e-5)
    assert not list(lora_training.run_dir.merged_model_dir.glob("adapter_*"))


def test_new_tokens_train_the_embeddings_in_full(make_config):
    config = make_config("peft=lora")
    base, _, _ = load_model_and_tokenizer(config.model, torch.float32)
    model = apply_adapter(base, config.peft, config.model.architecture, added_tokens=["<|im_start|>"])
    assert set(model.peft_config["default"].modules_to_save) == set(EMBEDDING_MODULES)
    trainable = [name for name, weight in model.named_parameters() if weight.requires_grad and "lora_" not in name]
    assert trainable == ["base_model.model.model.embed_tokens.modules_to_save.default.weight"]
    # The tiny model ties its embeddings: trained in full, they must stay one matrix.
    trained_input = model.get_input_embeddings().modules_to_save["default"].weight
    assert model.get_output_embeddings().modules_to_save["default"].weight is trained_input


def test_a_lora_run_saves_adapter_and_tokenizer_and_reports_parameter_counts(make_config):
    config = make_config("peft=lora", *SHORT_RUN)
    result = TrainerEngine().run_job(config)
    assert result.success, result.error_message
    final_model = Path(result.final_model_path)
    expected = ["adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    assert [name for name in expected if not (final_model / name).is_file()] == []
    assert not (final_model / "model.safetensors").exists() and not (final_model / "merged").exists()
    summary = result.summary
    assert 0 < summary["trainable_parameters"] < summary["total_parameters"]
    assert summary["trainable_percent"] == pytest.approx(
        100 * summary["trainable_parameters"] / summary["total_parameters"], abs=1e-4
    )
    assert summary["peak_memory_mib"] > 0
