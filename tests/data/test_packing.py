"""Padding-free packing: examples laid end to end never attend to each other, so a packed batch
has exactly the loss of its examples taken one by one."""

from __future__ import annotations

import pytest
import torch
from transformers import DataCollatorForSeq2Seq, Gemma2Config, LlamaConfig, MistralConfig, Qwen3Config

from tests.helpers import conversation, summed_loss_one_by_one
from trainer.config.schema import DataConfig, TinyModelConfig, TrainerConfig
from trainer.data.packing import PackedBatchCollator, packed_causal_lm_loss
from trainer.data.tokenization import IGNORE_INDEX, tokenize_with_assistant_mask
from trainer.engine import TrainerEngine
from trainer.modeling.packed_attention import (
    PER_EXAMPLE_SDPA,
    per_example_attention_inexact,
    use_per_example_attention,
)
from trainer.modeling.tiny import build_model, build_tokenizer
from trainer.training import batching


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(512)


@pytest.fixture(scope="module")
def features(tokenizer) -> list[dict[str, list[int]]]:
    """Examples of different lengths, each with several assistant turns to learn."""
    tokenized = [tokenize_with_assistant_mask(tokenizer, conversation(turns), 512) for turns in (1, 5, 2, 8, 3)]
    return [{"input_ids": example.input_ids, "labels": example.labels} for example in tokenized]


@pytest.fixture
def model(tokenizer):
    return build_model("qwen3", TinyModelConfig(), tokenizer).eval()


def test_packed_batch_loss_is_the_sum_of_the_per_example_losses(model, features):
    expected = summed_loss_one_by_one(model, features)
    use_per_example_attention(model)
    batch = PackedBatchCollator()(features)
    labels = batch.pop("labels")
    learned = int((labels[..., 1:] != IGNORE_INDEX).sum())
    with torch.no_grad():
        packed = packed_causal_lm_loss(model(**batch), labels, num_items_in_batch=learned) * learned
    assert model.config._attn_implementation == PER_EXAMPLE_SDPA
    assert packed.item() == pytest.approx(expected.item(), rel=1e-5)


def test_packed_batch_lays_examples_end_to_end_without_padding(features):
    batch = PackedBatchCollator()(features)
    lengths = [len(feature["input_ids"]) for feature in features]
    assert batch["input_ids"].shape == (1, sum(lengths))
    assert batch["position_ids"][0].tolist() == [position for length in lengths for position in range(length)]
    assert batch["cu_seq_lens_q"].tolist() == [sum(lengths[:count]) for count in range(len(lengths) + 1)]
    assert "attention_mask" not in batch


def test_logits_are_kept_only_where_a_label_follows(features):
    batch = PackedBatchCollator()(features)
    keep, labels = batch["logits_to_keep"][0], batch["labels"][0]
    assert keep[:-1].tolist() == (labels[1:] != IGNORE_INDEX).tolist()
    assert int(keep.sum()) == sum(label != IGNORE_INDEX for feature in features for label in feature["labels"])


def test_per_example_attention_leaves_padded_batches_as_sdpa_computes_them(tokenizer, features):
    padded = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX)(features)
    inputs = {"input_ids": padded["input_ids"], "attention_mask": padded["attention_mask"]}
    sdpa = build_model("qwen3", TinyModelConfig(), tokenizer).eval()
    per_example = build_model("qwen3", TinyModelConfig(), tokenizer).eval()
    use_per_example_attention(per_example)
    with torch.no_grad():
        real = padded["attention_mask"].bool()
        assert torch.allclose(per_example(**inputs).logits[real], sdpa(**inputs).logits[real], atol=1e-6)


@pytest.mark.slow
def test_a_packed_run_trains_with_the_losses_of_a_padded_run(make_config, tmp_path):
    steps = [
        "train.max_steps=3", "train.logging_steps=1", "train.eval_steps=100", "train.save_steps=100",
        "train.per_device_train_batch_size=8", "data.validation_max_samples=16", "monitoring.tensorboard=false",
    ]  # fmt: skip
    padded = TrainerEngine().run_job(make_config(*steps, "data.packing=false", f"run.output_dir={tmp_path / 'padded'}"))
    packed = TrainerEngine().run_job(make_config(*steps, "data.packing=true"))
    assert packed.success and padded.success
    assert packed.final_loss == pytest.approx(padded.final_loss, rel=1e-4)
    assert packed.eval_loss == pytest.approx(padded.eval_loss, rel=1e-4)


@pytest.mark.parametrize(
    ("config", "left_out"),
    [
        (Qwen3Config(), None),
        (LlamaConfig(), None),
        (MistralConfig(sliding_window=4096), "its sliding window of 4096 tokens"),
        (Gemma2Config(), "its sliding_attention layers"),
        (LlamaConfig(attn_logit_softcapping=50.0), "its attention softcapping"),
    ],
)
def test_packing_names_what_per_example_attention_leaves_out_of_a_model(config, left_out):
    assert per_example_attention_inexact(config) == left_out


def sliding_window(model):
    model.config.use_sliding_window, model.config.sliding_window = True, 16
    return model


@pytest.mark.parametrize(
    ("packing", "transform", "packed", "logged"),
    [
        (None, None, True, "Packing: on, exact for this model"),
        (None, sliding_window, False, "Packing: off (padded batches), as packed ones would leave out its sliding"),
        (True, sliding_window, True, "SDPA per example leaves out its sliding window"),
        (False, None, False, None),
    ],
)
def test_the_default_packs_exactly_where_packed_losses_equal_padded_ones(
    tokenizer, caplog, packing, transform, packed, logged
):
    model = build_model("qwen3", TinyModelConfig(), tokenizer)
    config = TrainerConfig(data=DataConfig(packing=packing))
    with caplog.at_level("INFO"):
        collator = batching(config, transform(model) if transform else model, tokenizer)["data_collator"]
    assert isinstance(collator, PackedBatchCollator) is packed
    assert logged is None or logged in caplog.text
