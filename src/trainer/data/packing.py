"""Padding-free batches: the examples of a batch laid end to end in one row, with position ids
restarting per example and the boundaries (`cu_seq_lens_*`) the attention uses to keep each
example to itself (see `trainer.modeling.packed_attention`).

The language-model head runs only where a label follows (`logits_to_keep`, a boolean mask):
with assistant-only loss most positions have none, and the head is a large share of the work.

With a token budget (`trainer.data.token_budget`) every batch is padded to the same shape: the
row to the budget (one padding segment at the end, no label, attending only to itself) and the
boundaries to one more than the most examples a batch holds (empty segments at the end), with the
budget as the longest segment; a compiled step then sees the same shapes and constants every time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DataCollatorWithFlattening

from trainer.data.tokenization import IGNORE_INDEX


@dataclass(frozen=True)
class TokenBudget:
    """The fixed shape of token-budget batches: `tokens` per row, examples of at most `longest`
    tokens, at most `max_examples` of them."""

    tokens: int
    longest: int
    max_examples: int
    pad_token_id: int

    def fits(self, batch: dict[str, Any]) -> bool:
        """Whether a packed batch fits the budget: training batches always do (the sampler made
        them); evaluation batches of `per_device_eval_batch_size` examples may not, and stay unpadded."""
        examples = len(batch["cu_seq_lens_q"]) - 1
        return batch["input_ids"].shape[-1] <= self.tokens and examples <= self.max_examples

    @property
    def segments(self) -> int:
        """Boundaries per batch, less one: the examples, then padding in pieces of at most
        `longest` tokens (the attention's longest segment stays `longest`), then empty ones."""
        return self.max_examples + -(-self.tokens // self.longest)


class PackedBatchCollator(DataCollatorWithFlattening):
    def __init__(self, budget: TokenBudget | None = None) -> None:
        super().__init__(return_position_ids=True, separator_id=IGNORE_INDEX, return_flash_attn_kwargs=True)
        self.budget = budget

    def __call__(self, features: list[dict[str, Any]], return_tensors: str | None = None) -> dict[str, Any]:
        # The flattened row carries no padding, so no attention mask either.
        batch = super().__call__([{key: feature[key] for key in ("input_ids", "labels")} for feature in features])
        if self.budget is not None and self.budget.fits(batch):
            batch = pad_to_budget(batch, self.budget)
        batch["logits_to_keep"] = predicts_a_label(batch["labels"])
        return batch


def pad_to_budget(batch: dict[str, Any], budget: TokenBudget) -> dict[str, Any]:
    """The packed batch padded to the budget's fixed shape (see the module's docstring)."""
    used = batch["input_ids"].shape[-1]
    padding = torch.arange(used, budget.tokens, budget.longest, dtype=torch.int32)
    boundaries = torch.cat([batch["cu_seq_lens_q"], padding[1:]])  # padding[0] is `used`, the last boundary
    boundaries = F.pad(boundaries, (0, budget.segments + 1 - len(boundaries)), value=budget.tokens)
    missing = budget.tokens - used
    return {
        "input_ids": F.pad(batch["input_ids"], (0, missing), value=budget.pad_token_id),
        "labels": F.pad(batch["labels"], (0, missing), value=IGNORE_INDEX),
        "position_ids": torch.cat([batch["position_ids"], torch.arange(missing)[None] % budget.longest], dim=-1),
        "cu_seq_lens_q": boundaries,
        "cu_seq_lens_k": boundaries,
        "max_length_q": budget.longest,
        "max_length_k": budget.longest,
    }


def predicts_a_label(labels: torch.Tensor) -> torch.Tensor:
    """True at each position whose next token is a label: where causal-LM logits are needed."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[..., :-1] = labels[..., 1:] != IGNORE_INDEX
    return keep


def next_token_targets(labels: torch.Tensor) -> torch.Tensor:
    """The labels that follow each position `predicts_a_label` kept, in the same order."""
    following = labels[..., 1:]
    return following[following != IGNORE_INDEX]


def token_mean(
    summed: torch.Tensor, targets: torch.Tensor, num_items_in_batch: torch.Tensor | int | None
) -> torch.Tensor:
    """The summed loss as a mean over the accumulated batch's labelled tokens (the Trainer's
    `num_items_in_batch`), or over this batch's when there is no count (evaluation)."""
    return summed / (num_items_in_batch if num_items_in_batch is not None else targets.numel())


def packed_causal_lm_loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None):
    """Token-mean cross-entropy over the accumulated batch, from logits computed only at the
    positions `predicts_a_label` kept (in order); the `compute_loss_func` of the Trainer."""
    targets = next_token_targets(labels)
    logits = outputs.logits.reshape(-1, outputs.logits.shape[-1]).float()
    return token_mean(F.cross_entropy(logits, targets, reduction="sum"), targets, num_items_in_batch)
