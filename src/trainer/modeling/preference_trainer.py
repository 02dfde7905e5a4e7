"""Preference training on a transformers `Trainer`: the loss of packed pairs
(`trainer.modeling.preference_loss`), the reference log-probs, TRL's metrics in the logs.

The reference is the model as training starts: with LoRA the same model with its adapter
disabled, otherwise the model itself before the first step (precomputed) or a frozen copy of it
(objective.precompute_ref=false). Precomputed log-probs are cached beside the tokenized pairs,
keyed by the pairs' entry, the weights and the precision: a sweep over beta computes them once.
Dropout is off, as in TRL (disable_dropout=True): the policy and the reference see the same network.
"""

from __future__ import annotations

import copy
import logging
import shutil
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pyarrow
import torch
import xxhash
from datasets import Dataset, concatenate_datasets
from transformers import TrainerCallback

from trainer.config.schema import PREFERENCE_METRICS
from trainer.data.cache import cache_key, complete_dir, exclusive, load_cached, publish, scratch_dir
from trainer.data.preference import write_arrow
from trainer.modeling.preference_loss import (
    REFERENCE_COLUMNS,
    PackedPairs,
    PreferenceLoss,
    answer_logps,
)
from trainer.run.status import StatusWriter

log = logging.getLogger(__name__)

PAIR_COLUMNS = ("chosen_input_ids", "chosen_labels", "rejected_input_ids", "rejected_labels", *REFERENCE_COLUMNS)


class PreferenceTraining:
    """A mixin for a `Trainer` subclass whose batches are `PackedPairs`; `set_up_preference`
    before training."""

    preference_loss: PreferenceLoss
    # The tokenized pairs' cache entry: the precomputed reference log-probs are cached beside it.
    pairs_entry: Path | None = None
    # objective.precompute_ref: the reference log-probs computed once, before the first step.
    precompute: bool = False
    reference_model: torch.nn.Module | None = None
    precision: str = ""

    def set_up_preference(
        self, loss: PreferenceLoss, precompute: bool, pairs_entry: Path | None, precision: str
    ) -> None:
        self.preference_loss = loss
        self.precision = precision
        self.metric_sums: dict[str, dict[str, torch.Tensor | float]] = defaultdict(lambda: defaultdict(float))
        self.metric_counts: dict[str, int] = defaultdict(int)
        # Nothing the model returns is trained on by transformers' loss: the step's loss is this
        # mean over pairs, which the Trainer divides by the accumulation steps.
        self.model_accepts_loss_kwargs = False
        disable_dropout(self.model)
        if not loss.needs_reference:
            return
        self.pairs_entry = pairs_entry
        self.precompute = precompute
        if not precompute and not is_adapter_model(self.model):
            self.reference_model = copy.deepcopy(self.model).eval().requires_grad_(False)

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None:
            self._signature_columns = list(PAIR_COLUMNS)

    def train(self, *args: Any, **kwargs: Any) -> Any:
        if self.preference_loss.needs_reference and self.precompute:
            self.train_dataset = self.with_reference_logps(self.train_dataset, "train")
            if self.eval_dataset is not None:
                self.eval_dataset = self.with_reference_logps(self.eval_dataset, "validation")
        return super().train(*args, **kwargs)

    def with_reference_logps(self, pairs: Dataset, name: str) -> Dataset:
        """`pairs` with the reference's summed answer log-probs of each side, read from the cache
        or computed now by the model as it is (before any step), adapter disabled."""
        if REFERENCE_COLUMNS[0] in pairs.column_names:
            return pairs
        if self.pairs_entry is None:
            return concatenate_datasets([pairs, Dataset.from_dict(self.compute_reference(pairs, name))], axis=1)
        key = cache_key(
            kind="reference log-probs",
            pairs=self.pairs_entry.name,
            split=name,
            weights=weights_digest(self.model),
            precision=self.precision,
        )
        entry = self.pairs_entry.parent / key
        with exclusive(entry):
            if (cached := load_cached(entry)) is None:
                shutil.rmtree(entry, ignore_errors=True)
                with scratch_dir(entry) as scratch:
                    complete_dir(scratch).mkdir()
                    table = pyarrow.table(self.compute_reference(pairs, name))
                    write_arrow(table, complete_dir(scratch) / "train.arrow")
                    publish(entry, scratch, {"pairs": len(pairs)})
                cached = load_cached(entry, verify=False)
                log.info("Reference log-probs of the %s pairs saved to the cache: %s", name, entry)
            else:
                log.info("Reference log-probs of the %s pairs read from the cache: %s", name, entry)
        return concatenate_datasets([pairs, cached[0]["train"]], axis=1)

    def compute_reference(self, pairs: Dataset, name: str) -> dict[str, list[float]]:
        log.info("Computing the reference log-probs of %d %s pairs", len(pairs), name)
        collate, size = PackedPairs(), self.args.per_device_eval_batch_size
        chosen, rejected = [], []
        training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(pairs), size):
                batch = self._prepare_inputs(collate(pairs.select(range(start, min(start + size, len(pairs))))))
                reference = self.reference_logps(self.model, batch)
                chosen += reference[0].tolist()
                rejected += reference[1].tolist()
        finally:
            self.model.train(training)
        return {REFERENCE_COLUMNS[0]: chosen, REFERENCE_COLUMNS[1]: rejected}

    def reference_logps(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference's summed log-probs of the batch's (chosen, rejected) answers."""
        if REFERENCE_COLUMNS[0] in batch:
            return batch[REFERENCE_COLUMNS[0]], batch[REFERENCE_COLUMNS[1]]
        with torch.no_grad(), self.autocast_smart_context_manager(), self.reference_of(model) as reference:
            return answer_logps(reference, batch)[0].chunk(2)

    @contextmanager
    def reference_of(self, model: torch.nn.Module) -> Iterator[torch.nn.Module]:
        if self.reference_model is not None:
            yield self.reference_model
            return
        unwrapped = self.accelerator.unwrap_model(model)
        with unwrapped.disable_adapter() if is_adapter_model(unwrapped) else nullcontext():
            yield model

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        logps, counts = answer_logps(model, inputs)
        reference = self.reference_logps(model, inputs) if self.preference_loss.needs_reference else None
        loss, metrics = self.preference_loss(logps, counts, reference)
        self.record_metrics(metrics)
        return (loss, {}) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def record_metrics(self, metrics: dict[str, torch.Tensor]) -> None:
        mode = "train" if self.model.training else "eval"
        # Summed on the device: read once per log, not once per step.
        for name, values in metrics.items():
            self.metric_sums[mode][name] += values.detach().sum()
        self.metric_counts[mode] += len(metrics[PREFERENCE_METRICS[0]])

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """The metrics' means over the pairs since the last log, beside the loss (eval_ for evaluations)."""
        mode = "eval" if any(key.startswith("eval_") for key in logs) else "train"
        if count := self.metric_counts.pop(mode, 0):
            prefix = "eval_" if mode == "eval" else ""
            logs.update({prefix + name: float(total) / count for name, total in self.metric_sums.pop(mode).items()})
        super().log(logs, *args, **kwargs)


class PreferenceStatusCallback(TrainerCallback):
    """The newest preference metrics in status.json, beside the loss."""

    def __init__(self, status: StatusWriter) -> None:
        self.status = status

    def on_log(self, args, state, control, logs=None, **kwargs):
        metrics = {name: logs[name] for name in PREFERENCE_METRICS if name in (logs or {})}
        if metrics:
            self.status.update(preference_metrics=metrics)


def preference_summary(history: list[dict[str, float]]) -> dict[str, float]:
    """The last logged value of each preference metric (training, then evaluation ones), for result.json."""
    summary = {}
    for entry in history:
        summary |= {name: entry[name] for name in PREFERENCE_METRICS if name in entry}
        summary |= {f"eval_{name}": entry[f"eval_{name}"] for name in PREFERENCE_METRICS if f"eval_{name}" in entry}
    return summary


def is_adapter_model(model: torch.nn.Module) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def disable_dropout(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def weights_digest(model: torch.nn.Module) -> str:
    """A digest of the reference's weights (adapter weights left out: the reference runs without
    them), what its log-probs depend on besides the tokens and the precision."""
    digest = xxhash.xxh3_128()
    for name, tensor in model.state_dict().items():
        if "lora_" in name:
            continue
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
