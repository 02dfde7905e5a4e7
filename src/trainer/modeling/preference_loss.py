"""The preference losses (DPO's sigmoid, IPO, hinge; SimPO) of packed pairs, with TRL's
conventions: an answer's log-probability is the sum over its labelled tokens (the answer and its
end-of-turn), the reward is beta times its log-ratio to the reference (SimPO: beta times the
per-token mean), and the metrics carry TRL's names.

A batch of pairs is one padding-free row (`PackedPairs`): every pair's chosen sequence, then
every pair's rejected one, each attending only to itself (`trainer.modeling.packed_attention`),
and the head computed only where an answer token follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from trainer.config.schema import PREFERENCE_METRICS
from trainer.data.packing import next_token_targets, predicts_a_label
from trainer.data.tokenization import IGNORE_INDEX

REFERENCE_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")
# What a packed batch carries besides the model's inputs.
PAIR_KEYS = ("labels", "answer_sequence", *REFERENCE_COLUMNS)


@dataclass(frozen=True)
class PackedPairs:
    """The collator of pair rows (`trainer.data.preference`): one packed row, chosen sequences
    first, with the boundaries the attention keeps each sequence to, the positions the head runs
    at and the sequence each of them belongs to (`answer_sequence`)."""

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        ids = [torch.as_tensor(row[f"{side}_input_ids"]) for side in ("chosen", "rejected") for row in features]
        labels = [torch.as_tensor(row[f"{side}_labels"]).clone() for side in ("chosen", "rejected") for row in features]
        for row in labels:
            # The first token of a sequence is no target of the one before it in the row.
            row[0] = IGNORE_INDEX
        lengths = torch.tensor([len(row) for row in ids])
        boundaries = F.pad(torch.cumsum(lengths, 0), (1, 0)).to(torch.int32)
        labels_row = torch.cat(labels)[None].long()
        keep = predicts_a_label(labels_row)
        batch = {
            "input_ids": torch.cat(ids)[None].long(),
            "labels": labels_row,
            "position_ids": torch.cat([torch.arange(length) for length in lengths.tolist()])[None],
            "cu_seq_lens_q": boundaries,
            "cu_seq_lens_k": boundaries,
            "max_length_q": int(lengths.max()),
            "max_length_k": int(lengths.max()),
            "logits_to_keep": keep,
            "answer_sequence": torch.repeat_interleave(torch.arange(len(ids)), lengths)[keep[0]],
        }
        for column in REFERENCE_COLUMNS:
            if column in features[0]:
                batch[column] = torch.tensor([row[column] for row in features], dtype=torch.float32)
        return batch


def answer_logps(model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sequence's summed answer log-probability (float32) and its number of answer tokens:
    chosen sequences first, then rejected, as `PackedPairs` laid them out."""
    inputs = {key: value for key, value in batch.items() if key not in PAIR_KEYS}
    logits = model(**inputs, use_cache=False).logits
    logits = logits.reshape(-1, logits.shape[-1]).float()
    token_logps = -F.cross_entropy(logits, next_token_targets(batch["labels"]), reduction="none")
    sequences = len(batch["cu_seq_lens_q"]) - 1
    sequence = batch["answer_sequence"].to(token_logps.device)
    summed = torch.zeros(sequences, device=token_logps.device).index_add(0, sequence, token_logps)
    counts = torch.bincount(sequence, minlength=sequences).to(summed.dtype)
    return summed, counts


@dataclass(frozen=True)
class PreferenceLoss:
    """One objective's loss of a batch of pairs and its metrics (objective.name, loss_type, beta, gamma)."""

    name: str
    loss_type: str
    beta: float
    gamma: float

    @property
    def needs_reference(self) -> bool:
        return self.name == "dpo"

    def __call__(
        self,
        logps: torch.Tensor,
        counts: torch.Tensor,
        reference: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The mean loss over the pairs and the per-pair metrics, from `answer_logps` and the
        reference's summed log-probs (chosen, rejected) for dpo."""
        chosen, rejected = logps.chunk(2)
        chosen_count, rejected_count = counts.chunk(2)
        if self.name == "simpo":
            chosen_reward = self.beta * chosen / chosen_count.clamp(min=1)
            rejected_reward = self.beta * rejected / rejected_count.clamp(min=1)
            losses = -F.logsigmoid(chosen_reward - rejected_reward - self.gamma)
        else:
            chosen_ratio = chosen - reference[0]
            rejected_ratio = rejected - reference[1]
            losses = self.dpo_losses(chosen_ratio, rejected_ratio, chosen_count, rejected_count)
            chosen_reward, rejected_reward = self.beta * chosen_ratio, self.beta * rejected_ratio
        chosen_reward, rejected_reward = chosen_reward.detach(), rejected_reward.detach()
        values = (
            chosen_reward,
            rejected_reward,
            (chosen_reward > rejected_reward).float(),
            chosen_reward - rejected_reward,
            chosen.detach(),
            rejected.detach(),
        )
        return losses.mean(), dict(zip(PREFERENCE_METRICS, values, strict=True))

    def dpo_losses(
        self,
        chosen_ratio: torch.Tensor,
        rejected_ratio: torch.Tensor,
        chosen_count: torch.Tensor,
        rejected_count: torch.Tensor,
    ) -> torch.Tensor:
        margin = chosen_ratio - rejected_ratio
        if self.loss_type == "sigmoid":
            return -F.logsigmoid(self.beta * margin)
        if self.loss_type == "hinge":
            return torch.relu(1 - self.beta * margin)
        # IPO's margin per answer token (TRL's normalisation, confirmed with the IPO authors).
        per_token = chosen_ratio / chosen_count.clamp(min=1) - rejected_ratio / rejected_count.clamp(min=1)
        return (per_token - 1 / (2 * self.beta)) ** 2
