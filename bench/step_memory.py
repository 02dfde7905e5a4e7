"""Per-step activation memory on the CPU, where no allocator keeps a peak per step: the bytes a
training forward saves for its backward, the part of a step's peak that moves with the batch
(weights and optimizer state stay put). Padded batches of random examples move it with their
longest member; token-budget batches have one shape, so it stays flat."""

from __future__ import annotations

import random
from collections.abc import Callable

import torch
from transformers import DataCollatorForSeq2Seq, PreTrainedModel

from trainer.config.schema import TrainerConfig
from trainer.data.cache_entry import TokenizedData
from trainer.data.packing import packed_causal_lm_loss
from trainer.data.tokenization import IGNORE_INDEX
from trainer.training import batching, token_budget_sampler


def saved_bytes(loss: Callable[[dict], torch.Tensor], batch: dict) -> int:
    """Bytes saved for the backward of `loss(batch)`: the model's activations and the loss's logits."""
    total = 0

    def count(tensor: torch.Tensor) -> None:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        # Nothing is kept: no backward runs, and handing back the tensor itself would make a
        # reference cycle through its grad_fn that Python's collector cannot see (a leak per batch).

    def never_unpacked(_: None) -> torch.Tensor:
        raise RuntimeError("step_saved_bytes measures a forward only")

    with torch.autograd.graph.saved_tensors_hooks(count, never_unpacked):
        loss(batch)
    return total


def packed_loss(model: PreTrainedModel) -> Callable[[dict], torch.Tensor]:
    def loss(batch: dict) -> torch.Tensor:
        inputs = {key: value for key, value in batch.items() if key != "labels"}
        return packed_causal_lm_loss(model(**inputs), batch["labels"])

    return loss


def step_saved_bytes(
    config: TrainerConfig, model: PreTrainedModel, tokenizer, data: TokenizedData, steps: int
) -> list[int]:
    """Saved bytes of the first `steps` training batches `config` makes of the data."""
    features = [{"input_ids": ids, "labels": labels} for ids, labels in zip(data.train["input_ids"], data.train["labels"], strict=True)]  # fmt: skip
    sampler = token_budget_sampler(config, data)
    if sampler is None:
        order = list(range(len(features)))
        random.Random(config.seed).shuffle(order)
        size = config.train.per_device_train_batch_size
        batches = [order[start : start + size] for start in range(0, size * steps, size)]
        collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX)
        loss = lambda batch: model(**batch).loss  # noqa: E731 - transformers' own loss, as the plain script trains
    else:
        batches = list(sampler)[:steps]
        collate = batching(config, model, tokenizer, sampler)["data_collator"]
        loss = packed_loss(model)
    return [saved_bytes(loss, collate([features[index] for index in batch])) for batch in batches]
