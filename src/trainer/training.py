"""Assembling the Hugging Face `Trainer` for a run from its config and its parts."""

from __future__ import annotations

import torch
from transformers import (
    DataCollatorForSeq2Seq,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    ProgressCallback,
    Trainer,
    TrainingArguments,
)

from trainer.config import TrainerConfig
from trainer.data.preparation import TokenizedData
from trainer.data.tokenization import IGNORE_INDEX
from trainer.monitoring.callbacks import FinalEvaluationCallback, MetricsLogCallback, ProgressBarCallback
from trainer.monitoring.tensorboard import RunTensorBoardCallback
from trainer.precision import PrecisionPlan
from trainer.run_dir import RunDirectory


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
    )


def build_hf_trainer(
    config: TrainerConfig,
    run_dir: RunDirectory,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    data: TokenizedData,
    plan: PrecisionPlan,
) -> Trainer:
    callbacks = [MetricsLogCallback(), FinalEvaluationCallback()]
    if config.monitoring.tensorboard:
        callbacks.append(RunTensorBoardCallback(run_dir.tensorboard_dir))
    trainer = Trainer(
        model=model,
        args=build_training_arguments(config, run_dir, plan, has_validation=data.validation is not None),
        train_dataset=data.train,
        eval_dataset=data.validation,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(ProgressBarCallback())
    return trainer
