"""Token-budget batches: whole examples filled best-fit-decreasing into batches of one fixed shape,
in an order that is a pure function of (seed, epoch); a compiled model then compiles once."""

from __future__ import annotations

import random
import shutil

import pytest
import torch
from torch._dynamo.utils import counters
from transformers import TrainerCallback

from tests.helpers import losses_by_step, summed_loss_one_by_one
from trainer.config.schema import TinyModelConfig
from trainer.data.packing import PackedBatchCollator, TokenBudget, packed_causal_lm_loss
from trainer.data.token_budget import TokenBudgetBatchSampler, best_fit_decreasing
from trainer.data.tokenization import IGNORE_INDEX
from trainer.engine import TrainerEngine
from trainer.modeling.packed_attention import use_per_example_attention
from trainer.modeling.tiny import build_model, build_tokenizer

_rng = random.Random(1)
LENGTHS = [_rng.randint(5, 60) for _ in range(200)]


def test_every_example_lands_in_exactly_one_batch_within_the_budget():
    batches = best_fit_decreasing(LENGTHS, 256, range(len(LENGTHS)))
    assert sorted(index for batch in batches for index in batch) == list(range(len(LENGTHS)))
    assert all(sum(LENGTHS[index] for index in batch) <= 256 for batch in batches)
    # Best fit leaves little room: within 5% of the lower bound (every batch full).
    assert len(batches) <= 1.05 * sum(LENGTHS) / 256 + 1


def test_an_example_longer_than_the_budget_is_refused():
    with pytest.raises(ValueError, match="example 1 has 70 tokens"):
        best_fit_decreasing([10, 70], 64, range(2))


def test_epochs_differ_in_order_but_not_in_batch_count_and_replay_exactly():
    sampler = TokenBudgetBatchSampler(LENGTHS, 64, seed=3)
    first, second = sampler.epoch_batches(0), sampler.epoch_batches(1)
    assert len(first) == len(second) == len(sampler)
    assert first != second
    # A resumed run builds a new sampler: the same seed and epoch give the very same batches.
    resumed = TokenBudgetBatchSampler(LENGTHS, 64, seed=3)
    resumed.set_epoch(1)
    assert list(resumed) == second
    assert sampler.fill_ratio == pytest.approx(sum(LENGTHS) / (64 * len(sampler)))


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(512)


def random_features(vocab_size: int, lengths: list[int], seed: int = 0) -> list[dict[str, list[int]]]:
    rng = random.Random(seed)
    features = []
    for length in lengths:
        ids = [rng.randrange(1, vocab_size) for _ in range(length)]
        features.append({"input_ids": ids, "labels": [IGNORE_INDEX] * (length // 2) + ids[length // 2 :]})
    return features


def test_a_token_budget_batch_has_the_fixed_shape_and_pads_without_labels():
    budget = TokenBudget(tokens=100, longest=40, max_examples=4, pad_token_id=0)
    for lengths in ([30, 40, 20], [7]):
        batch = PackedBatchCollator(budget)(random_features(50, lengths))
        assert batch["input_ids"].shape == batch["labels"].shape == batch["position_ids"].shape == (1, 100)
        assert batch["cu_seq_lens_q"].shape == (budget.segments + 1,)
        assert batch["max_length_q"] == 40
        used = sum(lengths)
        assert (batch["labels"][0, used:] == IGNORE_INDEX).all() and (batch["input_ids"][0, used:] == 0).all()
        segments = batch["cu_seq_lens_q"].diff()
        assert segments.max() <= 40 and int(segments.sum()) == 100


def test_an_evaluation_batch_larger_than_the_budget_stays_unpadded():
    budget = TokenBudget(tokens=100, longest=60, max_examples=4, pad_token_id=0)
    batch = PackedBatchCollator(budget)(random_features(50, [60, 50, 40]))
    assert batch["input_ids"].shape == (1, 150)
    assert batch["cu_seq_lens_q"].tolist() == [0, 60, 110, 150]


def test_token_budget_batch_loss_is_the_sum_of_the_per_example_losses(tokenizer):
    model = build_model("qwen3", TinyModelConfig(), tokenizer).eval()
    features = random_features(model.config.vocab_size, [30, 55, 12, 41])
    expected = summed_loss_one_by_one(model, features)
    use_per_example_attention(model)
    batch = PackedBatchCollator(TokenBudget(tokens=200, longest=64, max_examples=6, pad_token_id=0))(features)
    labels = batch.pop("labels")
    with torch.no_grad():
        summed = packed_causal_lm_loss(model(**batch), labels, num_items_in_batch=1)
    assert summed.item() == pytest.approx(expected.item(), rel=1e-5)


def test_tokens_per_batch_with_packing_off_is_a_config_error(make_config):
    config = make_config("data.tokens_per_batch=1024", "data.packing=false", "train.max_steps=1")
    result = TrainerEngine().run_job(config)
    assert not result.success and result.user_error
    assert "data.tokens_per_batch=1024 needs packing: data.packing=true or null (got false)" in result.error_message


class GraphsPerStep(TrainerCallback):
    """How many graphs torch.compile has made, after each step."""

    def __init__(self) -> None:
        self.counts: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.counts.append(counters["stats"]["unique_graphs"])


@pytest.mark.slow
def test_a_compiled_token_budget_run_compiles_once_and_reports_its_fill(make_config):
    graphs = GraphsPerStep()
    counters.clear()
    steps = [
        # Several chunks of the loss per batch: none may add a graph.
        "data.packing=true", "data.tokens_per_batch=1024", "train.torch_compile=true", "train.max_steps=4",
        "train.loss_chunk_size=64",
        "train.logging_steps=1", "train.eval_steps=100", "train.save_steps=100", "data.validation_split=0",
        "monitoring.tensorboard=false",
    ]  # fmt: skip
    result = TrainerEngine(callbacks=[graphs]).run_job(make_config(*steps))
    assert result.success, result.error_message
    assert len(graphs.counts) == 4 and graphs.counts[0] > 0
    assert len(set(graphs.counts)) == 1, f"new graphs after the first step: {graphs.counts}"
    assert 0.5 < result.summary["token_budget_fill_ratio"] <= 1
    assert result.summary["tokens_per_batch"] == 1024


@pytest.mark.slow
def test_a_resumed_token_budget_run_trains_on_the_batches_of_an_uninterrupted_one(make_config, tmp_path):
    steps = [
        "data.packing=true", "data.tokens_per_batch=512", "train.max_steps=6", "train.save_steps=3",
        "train.logging_steps=1", "train.eval_steps=100", "data.validation_split=0",
    ]  # fmt: skip
    reference = tmp_path / "reference"
    assert TrainerEngine().run_job(make_config(*steps, f"run.output_dir={reference}")).success
    # The run as a kill after its step-3 checkpoint leaves it: no later checkpoint, no result.
    resumed = tmp_path / "resumed"
    shutil.copytree(reference, resumed)
    shutil.rmtree(resumed / "checkpoints" / "checkpoint-6")
    (resumed / "result.json").unlink()
    result = TrainerEngine().run_job(make_config(*steps, f"run.output_dir={resumed}", "run.resume=true"))
    assert result.success and result.global_step == 6
    losses = losses_by_step(resumed)
    assert [step for step, _ in losses] == list(range(1, 7))
    assert [loss for _, loss in losses] == pytest.approx([loss for _, loss in losses_by_step(reference)], abs=1e-6)
