"""Padding-free batches: the examples of a batch laid end to end in one row, with position ids
restarting per example and the boundaries (`cu_seq_lens_*`) the attention uses to keep each
example to itself (see `trainer.modeling.packed_attention`).

The language-model head runs only where a label follows (`logits_to_keep`, a boolean mask):
with assistant-only loss most positions have none, and the head is a large share of the work.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import DataCollatorWithFlattening

from trainer.data.tokenization import IGNORE_INDEX


class PackedBatchCollator(DataCollatorWithFlattening):
    def __init__(self) -> None:
        super().__init__(return_position_ids=True, separator_id=IGNORE_INDEX, return_flash_attn_kwargs=True)

    def __call__(self, features: list[dict[str, Any]], return_tensors: str | None = None) -> dict[str, Any]:
        # The flattened row carries no padding, so no attention mask either.
        batch = super().__call__([{key: feature[key] for key in ("input_ids", "labels")} for feature in features])
        batch["logits_to_keep"] = predicts_a_label(batch["labels"])
        return batch


def predicts_a_label(labels: torch.Tensor) -> torch.Tensor:
    """True at each position whose next token is a label: where causal-LM logits are needed."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[..., :-1] = labels[..., 1:] != IGNORE_INDEX
    return keep


def packed_causal_lm_loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None):
    """Token-mean cross-entropy over the accumulated batch, from logits computed only at the
    positions `predicts_a_label` kept (in order); the `compute_loss_func` of the Trainer."""
    targets = labels[..., 1:][labels[..., 1:] != IGNORE_INDEX]
    logits = outputs.logits.reshape(-1, outputs.logits.shape[-1]).float()
    summed = F.cross_entropy(logits, targets, reduction="sum")
    return summed / (num_items_in_batch if num_items_in_batch is not None else targets.numel())
