"""The reference of a preference run is the model as training starts: with LoRA the same model
with its adapter disabled, however far the adapter has moved; without, a frozen copy."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import TrainingArguments

from trainer.config.schema import DataConfig, PeftConfig, ProfileConfig, TinyModelConfig
from trainer.data.preference import load_preference_split, tokenize_preference_split
from trainer.modeling.adapters import apply_adapter
from trainer.modeling.preference_loss import PackedPairs, PreferenceLoss, answer_logps
from trainer.modeling.tiny import build_model, build_tokenizer
from trainer.profiles.plain import PlainProfile
from trainer.training import PreferenceRunTrainer, pair_batching


@pytest.fixture(scope="module")
def pairs_and_model():
    tokenizer = build_tokenizer(512)
    profile = PlainProfile(ProfileConfig(), seed=0)
    split = load_preference_split(DataConfig(validation_max_samples=2, max_length=256), profile, seed=0)
    split.train = split.train[:4]
    pairs = tokenize_preference_split(split, profile, "S", tokenizer, 256).train
    return pairs, build_model("qwen3", TinyModelConfig(), tokenizer), tokenizer


def preference_trainer(model, tokenizer, tmp_path, precompute: bool) -> PreferenceRunTrainer:
    trainer = PreferenceRunTrainer(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none"),
        processing_class=tokenizer,
        **pair_batching(model),
    )
    trainer.set_up_preference(PreferenceLoss("dpo", "sigmoid", 0.1, 0.0), precompute, None, "fp32")
    return trainer


def moved(model: torch.nn.Module) -> None:
    """Every trainable weight changed, as training would change it."""
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.05)


def starting_logps(base, batch) -> torch.Tensor:
    with torch.no_grad():
        return answer_logps(copy.deepcopy(base), batch)[0]


@pytest.mark.parametrize("adapter", ["none", "lora"])
def test_the_reference_forward_of_every_step_is_the_starting_model(pairs_and_model, tmp_path, adapter):
    pairs, base, tokenizer = pairs_and_model
    batch = PackedPairs()([pairs[position] for position in range(len(pairs))])
    expected = starting_logps(base, batch)
    model = apply_adapter(copy.deepcopy(base), PeftConfig(method=adapter, dropout=0.0), "qwen3", [])
    trainer = preference_trainer(model, tokenizer, tmp_path, precompute=False)
    moved(trainer.model)
    with torch.no_grad():
        policy = answer_logps(trainer.model, batch)[0]
    # The policy moved away; the reference did not.
    assert not torch.allclose(policy, expected, atol=1e-3)
    torch.testing.assert_close(torch.cat(trainer.reference_logps(trainer.model, batch)), expected, atol=1e-5, rtol=0)


def test_precomputed_reference_log_probs_run_without_the_adapter(pairs_and_model, tmp_path):
    pairs, base, tokenizer = pairs_and_model
    batch = PackedPairs()([pairs[position] for position in range(len(pairs))])
    expected = starting_logps(base, batch)
    model = apply_adapter(copy.deepcopy(base), PeftConfig(method="lora", dropout=0.0), "qwen3", [])
    trainer = preference_trainer(model, tokenizer, tmp_path, precompute=True)
    moved(trainer.model)
    with_reference = trainer.with_reference_logps(pairs, "train")
    computed = torch.tensor([*with_reference["ref_chosen_logps"], *with_reference["ref_rejected_logps"]])
    torch.testing.assert_close(computed, expected, atol=1e-5, rtol=0)
