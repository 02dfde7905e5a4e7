"""The contenders, each training the workload for the same steps from the same weights and data:
`trainer` itself (its engine, as a user runs it), a plain transformers `Trainer` script and TRL's
`SFTTrainer`. Each reports the real (non-pad) tokens it trained on, the seconds of its training
loop (the Trainer's own `train_runtime`, the same clock for all) and its per-step losses."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    PreTrainedModel,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from trainer.config.schema import RunConfig, TrainerConfig
from trainer.data.cache_entry import TokenizedData
from trainer.data.tokenization import IGNORE_INDEX
from trainer.engine import TrainerEngine
from trainer.modeling.loading import model_location
from trainer.run.job_isolation import isolated_job
from trainer.run.layout import RunDirectory


@dataclass(frozen=True)
class Run:
    tokens: int
    seconds: float
    losses: list[float]
    # trainer's own tokens/s over its last 20 steps (first steps, compilation included, left out).
    steady_tokens_per_sec: float | None = None

    @property
    def tokens_per_sec(self) -> float:
        return self.tokens / self.seconds


def run_trainer(config: TrainerConfig, callbacks: Sequence[TrainerCallback] = ()) -> Run:
    """A whole `trainer` job; its run directory is removed afterwards."""
    run_dir = Path(tempfile.mkdtemp(prefix="bench-trainer-"))
    try:
        result = TrainerEngine(callbacks=callbacks).run_job(replace(config, run=RunConfig(output_dir=str(run_dir))))
        if not result.success:
            raise RuntimeError(f"the trainer run failed: {result.error_message}")
        tokens = result.summary["train_tokens_seen"]
        tensorboard = RunDirectory(run_dir).tensorboard_dir
        seconds = tokens / result.summary["tokens_per_sec"]
        # A run too short for trainer's throughput window logs no tokens/s.
        steady = logged(tensorboard, "train/tokens_per_sec")[-1:] or [None]
        return Run(tokens, seconds, logged(tensorboard, "train/loss"), steady[0])
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def logged(tensorboard_dir: Path, tag: str) -> list[float]:
    """The values of one scalar a run wrote to TensorBoard, in step order."""
    events = EventAccumulator(str(tensorboard_dir), size_guidance={"scalars": 0})
    events.Reload()
    if tag not in events.Tags()["scalars"]:
        return []
    return [event.value for event in events.Scalars(tag)]


def load_plain_model(config: TrainerConfig) -> tuple[PreTrainedModel, AutoTokenizer]:
    """The run's model and tokenizer, loaded the plain transformers way."""
    location = model_location(config.model)
    model = AutoModelForCausalLM.from_pretrained(location, attn_implementation=config.model.attn_implementation)
    return model, AutoTokenizer.from_pretrained(location)


def plain_arguments(config: TrainerConfig, output_dir: str) -> dict:
    """TrainingArguments a plain script would write for the same run: the same optimizer,
    schedule, batch, steps, seed, logging and checkpoints (transformers saves one at the last
    step, inside the timed loop, as it does for trainer); no reporting."""
    train = config.train
    return {
        "output_dir": output_dir,
        "learning_rate": train.learning_rate,
        "lr_scheduler_type": train.lr_scheduler_type,
        "warmup_steps": train.warmup_ratio,
        "weight_decay": train.weight_decay,
        "max_grad_norm": train.max_grad_norm,
        "per_device_train_batch_size": train.per_device_train_batch_size,
        "gradient_accumulation_steps": train.gradient_accumulation_steps,
        "max_steps": train.max_steps,
        "optim": train.optim,
        "logging_steps": train.logging_steps,
        "logging_first_step": True,
        "save_steps": train.save_steps,
        "save_total_limit": train.save_total_limit,
        "report_to": "none",
        "seed": config.seed,
        "data_seed": config.seed,
        "use_cpu": True,
        "disable_tqdm": True,
        "include_num_input_tokens_seen": "non_padding",
    }


def run_plain_transformers(
    config: TrainerConfig, data: TokenizedData, callbacks: Sequence[TrainerCallback] = ()
) -> Run:
    """The plain transformers `Trainer` with dynamic padding."""
    model, tokenizer = load_plain_model(config)
    with tempfile.TemporaryDirectory() as output_dir, isolated_job():
        trainer = Trainer(
            model=model,
            args=TrainingArguments(**plain_arguments(config, output_dir)),
            train_dataset=data.train,
            processing_class=tokenizer,
            data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX),
            callbacks=list(callbacks),
        )
        return train_quietly(trainer)


def run_trl(config: TrainerConfig, data: TokenizedData, padding_free: bool) -> Run:
    """TRL's `SFTTrainer` on the same tokens and labels (assistant-only loss: the labels already
    mask everything else), in full precision and without activation checkpointing like the others."""
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = load_plain_model(config)
    with tempfile.TemporaryDirectory() as output_dir, isolated_job():
        arguments = SFTConfig(
            **plain_arguments(config, output_dir),
            padding_free=padding_free,
            # The data is already truncated to data.max_length (TRL refuses to truncate padding-free batches).
            max_length=None if padding_free else config.data.max_length,
            activation_checkpointing=False,
            bf16=False,
        )
        trainer = SFTTrainer(model=model, args=arguments, train_dataset=data.train, processing_class=tokenizer)
        return train_quietly(trainer)


def train_quietly(trainer: Trainer) -> Run:
    """Train without printing every log dict; the losses stay in the Trainer's log history."""
    trainer.remove_callback(PrinterCallback)
    seconds = trainer.train().metrics["train_runtime"]
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return Run(trainer.state.num_input_tokens_seen, seconds, losses)


def run_rounds(contenders: dict[str, Callable[[], Run]], rounds: int) -> dict[str, list[Run]]:
    """Each contender once per round, back to back, in an order that rotates every round (drift of
    a shared machine hits all alike); each run printed as it ends."""
    names = list(contenders)
    width = max(map(len, names))
    runs: dict[str, list[Run]] = {name: [] for name in names}
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            run = contenders[name]()
            runs[name].append(run)
            print(f"round {round_number + 1} {name:{width}} {run.tokens:7d} tokens in {run.seconds:6.2f}s = {run.tokens_per_sec:7,.0f} tokens/s", flush=True)  # fmt: skip
    return runs
