"""A tiny model of each architecture family used (Qwen3, Llama) trains from a locally built config."""

from __future__ import annotations

import pytest
from transformers import AutoConfig

from trainer.engine import TrainerEngine

FEW_STEPS = [
    "train.max_steps=3", "train.per_device_train_batch_size=4", "train.logging_steps=1",
    "train.eval_steps=3", "train.save_steps=3", "monitoring.tensorboard=false",
]  # fmt: skip


@pytest.mark.parametrize("architecture", ["qwen3", "llama"])
def test_a_tiny_model_of_each_family_trains_a_few_steps(make_config, architecture):
    result = TrainerEngine().run_job(make_config(f"model.architecture={architecture}", *FEW_STEPS))
    assert result.success, result.error_message
    assert result.global_step == 3
    assert result.final_loss < result.summary["first_loss"]
    assert AutoConfig.from_pretrained(result.final_model_path).model_type == architecture
