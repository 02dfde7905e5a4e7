"""objective=dpo against TRL's DPOTrainer: the same tiny model, pairs, seed, learning rate, beta
and batch give the same reference log-probs, the same first step (loss and rewards) and the same
losses over ten steps. TRL gets the very tokens trainer trains on (its own tokenization is the
template's; trainer's masks are checked in tests/data/test_preference.py): what is compared is
the log-probs, the losses, the metrics and the optimisation around them, padded against packed."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import TrainingArguments

from trainer.config.schema import PREFERENCE_METRICS, DataConfig, ProfileConfig, TinyModelConfig
from trainer.data.preference import load_preference_split, tokenize_preference_split
from trainer.modeling.preference_loss import PreferenceLoss
from trainer.modeling.tiny import build_model, build_tokenizer
from trainer.profiles.plain import PlainProfile
from trainer.training import PreferenceRunTrainer, pair_batching

trl = pytest.importorskip("trl")
from bench.dpo import GivenTokensDPOTrainer, trl_rows  # noqa: E402  (TRL is optional)

# Two trainers, ten steps each, and TRL's reference pass: ~15 s on two loaded cores.
pytestmark = pytest.mark.slow

PAIRS, STEPS, BATCH, BETA = 16, 10, 4, 0.1
SHARED = {
    "learning_rate": 1e-3,
    "per_device_train_batch_size": BATCH,
    "per_device_eval_batch_size": BATCH,
    "logging_steps": 1,
    "lr_scheduler_type": "constant",
    "optim": "adamw_torch",
    "seed": 0,
    "data_seed": 0,
    "report_to": "none",
    "use_cpu": True,
    "save_strategy": "no",
    "disable_tqdm": True,
    # TRL's configs default to bf16 and gradient checkpointing: both off, as trainer's fp32 run.
    "bf16": False,
    "gradient_checkpointing": False,
}
METRICS = ("loss", *PREFERENCE_METRICS)


def train_both(output, loss_type: str, steps: int):
    """`steps` steps of each trainer from the same model on the same pairs, with `loss_type`."""
    tokenizer = build_tokenizer(512)
    profile = PlainProfile(ProfileConfig(), seed=0)
    split = load_preference_split(DataConfig(validation_max_samples=2, max_length=256), profile, seed=0)
    split.train = split.train[:PAIRS]
    pairs = tokenize_preference_split(split, profile, "You are a calculator.", tokenizer, 256).train
    model = build_model("qwen3", TinyModelConfig(), tokenizer)
    shared = {**SHARED, "max_steps": steps}

    ours_model = copy.deepcopy(model)
    ours = PreferenceRunTrainer(
        model=ours_model,
        args=TrainingArguments(output_dir=str(output / "ours"), **shared),
        train_dataset=pairs,
        processing_class=tokenizer,
        **pair_batching(ours_model),
    )
    ours.set_up_preference(PreferenceLoss("dpo", loss_type, BETA, 0.0), True, None, "fp32")
    ours.train()

    theirs = GivenTokensDPOTrainer(
        model=copy.deepcopy(model),
        args=trl.DPOConfig(
            output_dir=str(output / "trl"),
            beta=BETA,
            loss_type=[loss_type],
            precompute_ref_log_probs=True,
            max_length=None,
            disable_dropout=True,
            **shared,
        ),
        train_dataset=trl_rows(pairs),
        processing_class=tokenizer,
    )
    theirs.train()
    return ours, theirs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return train_both(tmp_path_factory.mktemp("runs"), "sigmoid", STEPS)


def logged(trainer, step: int) -> dict[str, float]:
    return next(entry for entry in trainer.state.log_history if entry.get("step") == step and "loss" in entry)


def test_reference_log_probs_equal_trls(runs):
    ours, theirs = runs
    for column in ("ref_chosen_logps", "ref_rejected_logps"):
        torch.testing.assert_close(
            torch.tensor(ours.train_dataset[column]), torch.tensor(theirs.train_dataset[column]), atol=1e-5, rtol=0
        )


def test_first_step_loss_and_rewards_equal_trls(runs):
    ours, theirs = runs
    first_ours, first_theirs = logged(ours, 1), logged(theirs, 1)
    for name in METRICS:
        assert first_ours[name] == pytest.approx(first_theirs[name], abs=1e-5), name


def test_ten_steps_losses_within_1e_4_of_trls(runs):
    ours, theirs = runs
    ours_losses = [logged(ours, step)["loss"] for step in range(1, STEPS + 1)]
    theirs_losses = [logged(theirs, step)["loss"] for step in range(1, STEPS + 1)]
    assert ours_losses == pytest.approx(theirs_losses, abs=1e-4)
    # The comparison means something only where training moved the loss.
    assert ours_losses[-1] < ours_losses[0] - 1e-3


@pytest.mark.parametrize("loss_type", ["ipo", "hinge"])
def test_ipo_and_hinge_losses_equal_trls(tmp_path, loss_type):
    ours, theirs = train_both(tmp_path, loss_type, steps=3)
    for step in (1, 2, 3):
        for name in METRICS:
            assert logged(ours, step)[name] == pytest.approx(logged(theirs, step)[name], abs=1e-4), (step, name)
