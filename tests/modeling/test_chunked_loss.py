"""The loss from the hidden states, a chunk of positions at a time: the loss and the gradients of
transformers' own loss over the whole logits, padded or packed, with LoRA, tied or untied; and
refused, in one line, where a fused kernel cannot run."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import TrainingArguments

from tests.helpers import conversation, problems_of
from trainer.config.schema import DataConfig, PeftConfig, RunConfig, TinyModelConfig, TrainConfig, TrainerConfig
from trainer.config.validate import validate_config
from trainer.data.tokenization import IGNORE_INDEX, tokenize_with_assistant_mask
from trainer.errors import ConfigError
from trainer.facts import gather_facts
from trainer.modeling.adapters import apply_adapter
from trainer.modeling.chunked_loss import ChunkedLinearCrossEntropy, hidden_states_loss
from trainer.modeling.tiny import build_model, build_tokenizer
from trainer.run.outcome import EXIT_USER_ERROR
from trainer.training import RunTrainer, batching

# fp32 and a handful of labelled tokens: the chunked sums differ from the whole ones by rounding only.
TOLERANCE = {"atol": 1e-6, "rtol": 1e-6}
# Several chunks per batch, the last one partial.
CHUNK = 7


@pytest.mark.parametrize("chunk_size", [1, CHUNK, 50, 1000])
def test_chunked_cross_entropy_has_the_loss_and_gradients_of_the_whole_logits(chunk_size):
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(50, 16, generator=generator, requires_grad=True)
    weight = torch.randn(300, 16, generator=generator, requires_grad=True)
    targets = torch.randint(0, 300, (50,), generator=generator)
    expected = F.cross_entropy(hidden @ weight.T, targets, reduction="sum") / 50
    chunked = ChunkedLinearCrossEntropy.apply(hidden, weight, targets, chunk_size, True) / 50
    torch.testing.assert_close(chunked, expected, **TOLERANCE)
    for got, want in zip(torch.autograd.grad(chunked, (hidden, weight)), torch.autograd.grad(expected, (hidden, weight)), strict=True):  # fmt: skip
        torch.testing.assert_close(got, want, **TOLERANCE)
    with torch.no_grad():
        torch.testing.assert_close(
            ChunkedLinearCrossEntropy.apply(hidden, weight, targets, chunk_size, False) / 50, expected
        )


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(512)


def conversation_features(tokenizer) -> list[dict[str, list[int]]]:
    """Examples of different lengths, several assistant turns each."""
    tokenized = [tokenize_with_assistant_mask(tokenizer, conversation(turns), 512) for turns in (1, 5, 2, 8)]
    return [{"input_ids": example.input_ids, "labels": example.labels} for example in tokenized]


def untie(model: nn.Module) -> nn.Module:
    model.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone())
    model.config.tie_word_embeddings = False
    return model


# name -> (packing, peft, model transform)
SETUPS = {
    "padded, tied": (False, PeftConfig(), None),
    "packed, tied": (True, PeftConfig(), None),
    "padded, untied": (False, PeftConfig(), untie),
    "packed, lora": (True, PeftConfig(method="lora", dropout=0.0), None),
    "padded, lora training the embeddings": (
        False, PeftConfig(method="lora", dropout=0.0, modules_to_save=["embed_tokens", "lm_head"]), None,
    ),
}  # fmt: skip


def loss_and_gradients(setup: str, chunk_size: int | None, tokenizer, tmp_path) -> tuple[torch.Tensor, dict]:
    """One batch through RunTrainer.compute_loss as training runs it, and the gradients it leaves."""
    packing, peft, transform = SETUPS[setup]
    model = build_model("qwen3", TinyModelConfig(), tokenizer)
    model = apply_adapter(transform(model) if transform else model, peft, "qwen3", added_tokens=[])
    config = TrainerConfig(
        data=DataConfig(packing=packing),
        train=TrainConfig(loss_chunk_size=chunk_size),
        peft=peft,
        run=RunConfig(output_dir=str(tmp_path)),
    )
    wiring = batching(config, model, tokenizer)
    arguments = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    trainer = RunTrainer(model=model, args=arguments, **wiring)
    batch = wiring["data_collator"](conversation_features(tokenizer))
    # As in gradient accumulation: normalised by the labelled tokens of a larger batch than this one.
    accumulated = int((batch["labels"][..., 1:] != IGNORE_INDEX).sum()) * 3
    loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=torch.tensor(accumulated))
    loss.backward()
    return loss.detach(), {name: p.grad for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("setup", list(SETUPS))
def test_the_chunked_loss_trains_with_the_loss_and_gradients_of_the_unchunked_one(setup, tokenizer, tmp_path):
    chunked, chunked_grads = loss_and_gradients(setup, CHUNK, tokenizer, tmp_path)
    whole, whole_grads = loss_and_gradients(setup, None, tokenizer, tmp_path)
    torch.testing.assert_close(chunked, whole, **TOLERANCE)
    assert chunked_grads.keys() == whole_grads.keys()
    assert any("lm_head" in name or "embed_tokens" in name for name in chunked_grads) or "lora" in setup
    for name, gradient in chunked_grads.items():
        torch.testing.assert_close(gradient, whole_grads[name], **TOLERANCE, msg=name)


def test_the_model_gives_its_logits_outside_the_loss(tokenizer):
    model = build_model("qwen3", TinyModelConfig(), tokenizer)
    loss = hidden_states_loss(model, "none", CHUNK)
    ids = torch.tensor([conversation_features(tokenizer)[0]["input_ids"]])
    with loss.hidden_states_out():
        assert model(input_ids=ids).logits.shape[-1] == model.config.hidden_size
    assert model(input_ids=ids).logits.shape[-1] == model.config.vocab_size


def test_a_model_whose_forward_transforms_its_logits_keeps_the_whole_logits_loss(tokenizer):
    model = build_model("qwen3", TinyModelConfig(), tokenizer)
    model.config.final_logit_softcapping = 30.0
    assert hidden_states_loss(model, "none", CHUNK) is None


@pytest.mark.parametrize("size", [0, -4])
def test_a_chunk_size_below_one_is_refused(make_config, size):
    assert problems_of(make_config(f"train.loss_chunk_size={size}")) == [
        f"train.loss_chunk_size must be > 0 positions, or null for the unchunked loss (got {size})"
    ]


@pytest.mark.parametrize("fused", ["liger", "cce"])
def test_a_fused_loss_is_refused_without_cuda_or_without_its_package(make_config, fused):
    config = make_config(f"train.fused_loss={fused}")
    facts = gather_facts()
    with pytest.raises(ConfigError) as without_cuda:
        validate_config(config, dataclasses.replace(facts, cuda=False))
    assert without_cuda.value.problems == [
        f"train.fused_loss={fused} needs a CUDA GPU and none is available; use train.fused_loss=none "
        "(the chunked loss, train.loss_chunk_size)"
    ]
    package = {"liger": "liger_kernel", "cce": "cut_cross_entropy"}[fused]
    if importlib.util.find_spec(package) is not None:
        return
    with pytest.raises(ConfigError) as without_package:
        validate_config(config, dataclasses.replace(facts, cuda=True))
    assert without_package.value.problems == [
        f"train.fused_loss={fused} needs the {package} package: pip install 'trainer[{fused}]'"
    ]


def test_an_unknown_fused_loss_is_named(make_config):
    assert problems_of(make_config("train.fused_loss=flash")) == [
        "train.fused_loss=flash is unknown; choose one of none, liger, cce"
    ]


def test_a_fused_loss_is_refused_where_the_head_is_sharded(make_config):
    config = make_config("train.fused_loss=liger", "distributed.strategy=fsdp")
    with pytest.raises(ConfigError) as caught:
        validate_config(config, dataclasses.replace(gather_facts(), cuda=True))
    assert "train.fused_loss=liger needs the output head's weight whole, which FSDP and DeepSpeed shard" in str(
        caught.value
    )


def test_a_bad_chunk_size_exits_2_with_one_line_before_anything_loads(run_cli, tmp_path):
    completed = run_cli("train.loss_chunk_size=0", cwd=tmp_path)
    output = completed.stdout + completed.stderr
    assert completed.returncode == EXIT_USER_ERROR, output
    assert "Traceback" not in output and "Loading model" not in output
    (line,) = [line for line in output.splitlines() if "loss_chunk_size" in line]
    assert line.endswith(
        "Invalid configuration: train.loss_chunk_size must be > 0 positions, or null for the unchunked loss (got 0)"
    )
