"""Assembling the Hugging Face `Trainer` for a run from its config and its parts."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import (
    DataCollatorForSeq2Seq,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from trainer.config.schema import EVAL_METRIC_PREFIX, PREFERENCE_OBJECTIVES, TrainerConfig
from trainer.data.cache_entry import TokenizedData
from trainer.data.encoding import example_lengths
from trainer.data.packing import PackedBatchCollator, TokenBudget, packed_causal_lm_loss, predicts_a_label
from trainer.data.token_budget import TokenBudgetBatchSampler
from trainer.data.tokenization import IGNORE_INDEX
from trainer.distributed.strategy import distributed_arguments
from trainer.eval.generation_eval import GenerationEval
from trainer.modeling.chunked_loss import LinearCrossEntropyLoss, hidden_states_loss
from trainer.modeling.packed_attention import packing_inexact, use_per_example_attention
from trainer.modeling.preference_loss import PackedPairs, PreferenceLoss
from trainer.modeling.preference_trainer import PreferenceTraining
from trainer.monitoring.health import NonFiniteLossError
from trainer.precision import PrecisionPlan
from trainer.run.disk_space import checkpoint_bytes, disk_full_reported
from trainer.run.files import staged_directory
from trainer.run.layout import CHECKPOINT_STAGING, RunDirectory, write_checkpoint_manifest

log = logging.getLogger(__name__)


class RunTrainer(Trainer):
    """The Hugging Face Trainer, stopped by the first NaN or infinite loss before the optimizer
    applies it (the Trainer's own NaN filter already waits for each step's loss, so the check
    adds no device round trip), with checkpoints that appear complete or not at all."""

    checkpoint_root: str | None = None
    # Token-budget batches (data.tokens_per_batch): the training batches come from this sampler.
    batch_sampler: TokenBudgetBatchSampler | None = None
    run_dir: RunDirectory | None = None
    # eval.enabled: scored with every evaluation of the validation set, its metrics beside eval_loss.
    generation_eval: GenerationEval | None = None
    # train.keep_best: the best evaluation's checkpoint survives save_total_limit.
    keep_best: bool = False

    def get_train_dataloader(self) -> DataLoader:
        if self.batch_sampler is None:
            return super().get_train_dataloader()
        loader = DataLoader(
            self._remove_unused_columns(self.train_dataset, description="training"),
            batch_sampler=self.batch_sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )
        # The Trainer sets the sampler's epoch and, on resume, skips the batches already trained.
        return self.accelerator.prepare(loader)

    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"
    ):
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        if self.generation_eval is not None:
            scores = self.generation_eval.evaluate(self.model, self.state.global_step)
            # eval/exact_match -> eval_exact_match: transformers' name, which TensorBoard shows as eval/exact_match.
            output.metrics.update({hf_metric_name(name): value for name, value in scores.items()})
        return output

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not isinstance(self.compute_loss_func, LinearCrossEntropyLoss):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        with self.compute_loss_func.hidden_states_out():
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(step=self.state.global_step + 1, loss=loss.item())
        return loss

    def _save_checkpoint(self, model, trial):
        """Every rank saves its part into checkpoints/.staging/checkpoint-N; the one that saves
        writes the manifest and renames it into checkpoints/ (a kill mid-save leaves no
        checkpoint-N that looks complete), then keeps the newest `save_total_limit`."""
        checkpoints = Path(self.args.output_dir)
        staging = checkpoints / CHECKPOINT_STAGING
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        # A full disk is the user's to fix; the staging keeps the checkpoints before it whole.
        with disk_full_reported(self.run_dir, checkpoints / name, lambda: checkpoint_bytes(self.run_dir, self.model)):
            if not self.args.should_save:
                self.save_checkpoint_into(staging, model, trial)
                return
            with staged_directory(checkpoints / name, scratch=staging / name, replace=True) as checkpoint:
                self.save_checkpoint_into(staging, model, trial)
                write_checkpoint_manifest(checkpoint)
        staging.rmdir()
        rotate_checkpoints(
            str(checkpoints),
            save_total_limit=self.args.save_total_limit,
            best_model_checkpoint=self.kept_best_checkpoint(checkpoints),
        )

    def kept_best_checkpoint(self, checkpoints: Path) -> str | None:
        """The best evaluation's checkpoint, with train.keep_best; recorded in the state in place of
        the staging path transformers saw it at (None without keep_best: nothing is protected)."""
        best = checkpoints / f"{PREFIX_CHECKPOINT_DIR}-{self.state.best_global_step}"
        kept = self.keep_best and self.state.best_global_step and best.is_dir()
        self.state.best_model_checkpoint = str(best) if kept else None
        return self.state.best_model_checkpoint

    def save_checkpoint_into(self, root: Path, model, trial) -> None:
        """The Trainer's own save, into root/checkpoint-N instead of its output directory."""
        self.checkpoint_root = str(root)
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.checkpoint_root = None

    def _get_output_dir(self, trial):
        return self.checkpoint_root or super()._get_output_dir(trial)


class PreferenceRunTrainer(PreferenceTraining, RunTrainer):
    """The run's Trainer on preference pairs (objective=dpo|simpo)."""


class IntervalsFromArguments(TrainerCallback):
    """A resumed Trainer takes its logging/eval/save intervals from the checkpoint; a resume may
    change them (trainer.run.resume.SAFE_KEYS), so they are set from the arguments again."""

    def on_train_begin(self, args, state, control, **kwargs):
        state.compute_steps(args, state.max_steps)


class LastStepLogged(TrainerCallback):
    """The last step's loss is logged whatever train.logging_steps is, so a run's final loss (the
    sweep summary's, result.json's) is its last step's, not the last multiple of logging_steps."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_log = True


def hf_metric_name(metric: str) -> str:
    """transformers' name of a metric: eval/exact_match -> eval_exact_match; eval_loss as it is."""
    return "eval_" + metric.removeprefix(EVAL_METRIC_PREFIX) if metric.startswith(EVAL_METRIC_PREFIX) else metric


def best_model_arguments(config: TrainerConfig) -> dict:
    """Which evaluation is the best, where early stopping or the best checkpoint needs to know."""
    train = config.train
    stopping = train.early_stopping
    if not (stopping.patience or train.keep_best or train.final_model == "best"):
        return {}
    return {
        "metric_for_best_model": hf_metric_name(stopping.metric),
        "greater_is_better": stopping.mode == "max",
        "load_best_model_at_end": train.final_model == "best",
    }


def build_training_arguments(
    config: TrainerConfig, run_dir: RunDirectory, plan: PrecisionPlan, has_validation: bool
) -> TrainingArguments:
    train = config.train
    return TrainingArguments(
        output_dir=str(run_dir.checkpoints_dir),
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.lr_scheduler_type,
        warmup_steps=train.warmup_ratio,
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm,
        per_device_train_batch_size=train.per_device_train_batch_size,
        per_device_eval_batch_size=train.per_device_eval_batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        max_steps=train.max_steps,
        num_train_epochs=train.num_train_epochs,
        optim=train.optim,
        dataloader_num_workers=train.dataloader_num_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        activation_checkpointing=train.gradient_checkpointing,
        torch_compile=train.torch_compile,
        bf16=plan.bf16,
        fp16=plan.fp16,
        # Without it, transformers refuses bf16 on a machine without a GPU instead of using the CPU.
        use_cpu=not torch.cuda.is_available(),
        logging_strategy="steps",
        logging_steps=train.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if has_validation else "no",
        eval_steps=train.eval_steps,
        save_strategy="steps",
        save_steps=train.save_steps,
        save_total_limit=train.save_total_limit,
        seed=config.seed,
        data_seed=config.seed,
        include_num_input_tokens_seen="non_padding",
        # TensorBoard is added as a callback pinned to the run dir; no other integration reports.
        report_to="none",
        # A stream resumes from the position its checkpoint saved (trainer.data.streaming), not by
        # replaying batches; this process reads it and collates its own batches.
        ignore_data_skip=config.data.streaming,
        accelerator_config={"dispatch_batches": False} if config.data.streaming else None,
        **best_model_arguments(config),
        **distributed_arguments(config.distributed),
    )


def build_hf_trainer(
    config: TrainerConfig,
    run_dir: RunDirectory,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: TokenizedData,
    plan: PrecisionPlan,
    callbacks: list[TrainerCallback],
    generation_eval: GenerationEval | None = None,
) -> Trainer:
    """The Trainer of a run, with the callbacks `trainer.recipe.training_callbacks` assembles."""
    sampler = token_budget_sampler(config, data)
    preference = config.objective.name in PREFERENCE_OBJECTIVES
    trainer = (PreferenceRunTrainer if preference else RunTrainer)(
        model=model,
        args=build_training_arguments(config, run_dir, plan, has_validation=data.validation is not None),
        train_dataset=data.train,
        eval_dataset=data.validation,
        processing_class=tokenizer,
        **(pair_batching(model) if preference else batching(config, model, tokenizer, sampler)),
        callbacks=callbacks,
    )
    if preference:
        objective = config.objective
        loss = PreferenceLoss(objective.name, objective.loss_type, objective.beta, objective.gamma)
        trainer.set_up_preference(loss, objective.precompute_ref, data.cache_entry, config.precision.name)
    trainer.batch_sampler = sampler
    trainer.run_dir = run_dir
    trainer.generation_eval = generation_eval
    trainer.keep_best = config.train.keep_best or config.train.final_model == "best"
    # The Trainer adds its own progress bar after the given callbacks: the run's (a subclass) replaces it.
    for callback in [callback for callback in trainer.callback_handler.callbacks if type(callback) is ProgressCallback]:
        trainer.remove_callback(callback)
    return trainer


def token_budget_sampler(config: TrainerConfig, data: TokenizedData) -> TokenBudgetBatchSampler | None:
    """The batch sampler of `data.tokens_per_batch`, or None for batches of a fixed number of examples."""
    budget = config.data.tokens_per_batch
    if not budget:
        return None
    # Packing and the budget's size were checked with the config (trainer.config.validate).
    return TokenBudgetBatchSampler(example_lengths(data.train).tolist(), budget, config.seed)


def batch_summary(trainer: Trainer) -> dict[str, bool | float]:
    """What the result records about the batches: whether they were packed (data.packing resolved
    for the model), and the token budget's fill, when there is one."""
    packed = {"packing": isinstance(trainer.data_collator, PackedBatchCollator | PackedPairs)}
    sampler = getattr(trainer, "batch_sampler", None)
    if sampler is None:
        return packed
    return {**packed, "tokens_per_batch": sampler.budget, "token_budget_fill_ratio": round(sampler.fill_ratio, 4)}


def packs(config: TrainerConfig, model: PreTrainedModel, sampler: TokenBudgetBatchSampler | None) -> bool:
    """data.packing resolved for the loaded model: null packs where packed batches have the losses
    of padded ones, and always under a token budget (which needs packing; an inexact model is
    then warned about by `use_per_example_attention`)."""
    if config.data.packing is not None:
        return config.data.packing
    if sampler is not None:
        log.info("Packing: on, as data.tokens_per_batch needs it")
        return True
    if reason := packing_inexact(model):
        log.info(
            "Packing: off (padded batches), as packed ones would leave out %s; data.packing=true packs anyway",
            reason,
        )
        return False
    log.info("Packing: on, exact for this model (data.packing=false pads)")
    return True


def batching(
    config: TrainerConfig,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sampler: TokenBudgetBatchSampler | None = None,
) -> dict:
    """The Trainer's collator and loss: padded batches, or padding-free ones (`packs`) whose
    attention stays within each example, padded to the token budget's fixed shape with a sampler. The loss comes
    from the hidden states of the labelled positions (`trainer.modeling.chunked_loss`) unless
    train.loss_chunk_size=null; then from the logits of those positions when packed, and from the
    model's own loss when padded."""
    loss = (
        None
        if shards_parameters(config)
        else hidden_states_loss(model, config.train.fused_loss, config.train.loss_chunk_size)
    )
    if not packs(config, model, sampler):
        padded = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX)
        if loss is None:
            return {"data_collator": padded}
        return {"data_collator": LabelledPositions(padded), "compute_loss_func": loss}
    use_per_example_attention(model)
    if config.train.torch_compile:
        # The head runs only where a label follows, a count that changes every batch: traced as a
        # dynamic size instead of a graph break whose next shape would compile again.
        torch._dynamo.config.capture_dynamic_output_shape_ops = True
    budget = None
    if sampler is not None:
        longest = min(config.data.max_length, sampler.budget)
        budget = TokenBudget(sampler.budget, longest, sampler.max_examples, tokenizer.pad_token_id or 0)
    return {"data_collator": PackedBatchCollator(budget), "compute_loss_func": loss or packed_causal_lm_loss}


def pair_batching(model: PreTrainedModel) -> dict:
    """Preference pairs are always packed: a pair's two sequences in one padding-free row."""
    use_per_example_attention(model)
    return {"data_collator": PackedPairs()}


def shards_parameters(config: TrainerConfig) -> bool:
    """FSDP and DeepSpeed hold a shard of the head's weight outside its forward: the loss from
    the hidden states needs it whole, so these keep the unchunked loss (train.fused_loss is refused)."""
    sharded = config.distributed.strategy == "fsdp" or config.distributed.deepspeed is not None
    if sharded and config.train.loss_chunk_size is not None:
        log.info("Loss: unchunked, as FSDP and DeepSpeed shard the output head's weight")
    return sharded


@dataclass(frozen=True)
class LabelledPositions:
    """A padded batch's collator that also marks the positions whose next token is a label, the
    only ones the model's head runs at (`logits_to_keep`)."""

    collator: DataCollatorForSeq2Seq

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator(features)
        batch["logits_to_keep"] = predicts_a_label(batch["labels"])
        return batch
