"""The recipe of one training job, read top to bottom: profile -> data records -> model +
tokenizer -> tokenized data -> Trainer -> train -> save -> result. `training_callbacks` is the one
place where a run's callbacks are assembled. The harness (`trainer.run.harness`) owns everything
around it: the claim of the run directory, signals, logs, status.json and result.json.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date
from functools import partial
from pathlib import Path

from accelerate import PartialState
from transformers import Trainer, TrainerCallback, TrainerState, set_seed
from transformers.trainer import TRAINER_STATE_NAME

from trainer.config.schema import PREFERENCE_OBJECTIVES, TrainerConfig
from trainer.config.sources import source_name
from trainer.data.cache import tokenized_cache_dir
from trainer.data.mixture import load_data_split, tokenize_data_split
from trainer.data.preference import load_preference_split, tokenize_preference_split
from trainer.data.streaming import held_out_split, stream_position, stream_split
from trainer.distributed.strategy import log_replica_checksum
from trainer.eval.generation_eval import GenerationEval, held_out_prompts
from trainer.eval.stopping import RunEarlyStopping
from trainer.modeling.adapters import apply_adapter, count_parameters, save_merged_model
from trainer.modeling.loading import load_model_and_tokenizer
from trainer.modeling.preference_trainer import PreferenceStatusCallback, preference_summary
from trainer.monitoring.callbacks import FinalEvaluationCallback, MetricsLogCallback, ProgressBarCallback
from trainer.monitoring.environment import describe_environment
from trainer.monitoring.memory import peak_memory
from trainer.monitoring.model_card import write_model_card
from trainer.monitoring.monitor import TrainingMonitorCallback
from trainer.monitoring.run_log import route_transformers_logs
from trainer.monitoring.tensorboard import RunTensorBoardCallback
from trainer.monitoring.trackers import RunTrackers, TrackerCallback
from trainer.precision import plan_precision, precision_warning
from trainer.preview import build_preview_callback, read_preview_token
from trainer.preview.callback import PreviewCallback
from trainer.profiles import build_profile
from trainer.run.disk_space import check_space_for_new_run, disk_full_reported, model_sizes
from trainer.run.files import write_json_atomic
from trainer.run.interruption import StopRequest
from trainer.run.layout import RunDirectory, checkpoint_step
from trainer.run.outcome import TrainingResult
from trainer.run.status import StatusWriter
from trainer.training import IntervalsFromArguments, LastStepLogged, batch_summary, build_hf_trainer

log = logging.getLogger(__name__)


def train(
    config: TrainerConfig,
    run_dir: RunDirectory,
    status: StatusWriter,
    stop: StopRequest,
    checkpoint: str | None,
    *,
    main_process: bool,
    environ: Mapping[str, str],
    extra_callbacks: Sequence[TrainerCallback] = (),
    trackers: RunTrackers | None = None,
) -> TrainingResult:
    """Train one validated config in its claimed run directory. The main process (rank 0, or the
    only one) writes the run's files and reports to the `trackers` (MLflow, W&B) the harness
    opened; `environ` holds the secrets (the remote preview's token)."""
    preview_token = read_preview_token(config.preview, environ)
    log.info(
        "Run: model=%s profile=%s precision=%s data=%s date=%s -> %s",
        config.model.name,
        config.profile.name,
        config.precision.name,
        source_name(config.data.train, "data.train"),
        config.run.date,
        run_dir.root,
    )
    if warning := precision_warning(config.precision.name):
        log.warning(warning)
    route_transformers_logs(config.monitoring.transformers_log_level)
    if main_process:
        write_json_atomic(run_dir.env_file, describe_environment())
    set_seed(config.seed)

    profile = build_profile(config.profile, config.seed)
    # Streaming reads only the validation records now; the training records as training needs them.
    # Until the data is tokenized a signal stops the run at once: there is no step to finish.
    stop.at_once = True
    # Preference pairs (objective=dpo|simpo) are read, tokenized and batched as pairs; the rest is SFT's.
    pairs = config.objective.name in PREFERENCE_OBJECTIVES
    load = load_preference_split if pairs else held_out_split if config.data.streaming else load_data_split
    records = load(config.data, profile, config.seed)
    plan = plan_precision(config.precision.name)
    quantize_4bit = config.peft.method == "qlora"
    # Rank 0 builds (or downloads) the model into its cache first; the other ranks then read it.
    with PartialState().main_process_first():
        model, tokenizer, added_tokens = load_model_and_tokenizer(config.model, plan.model_dtype, quantize_4bit)
    model = apply_adapter(model, config.peft, config.model.architecture, added_tokens)
    parameters = count_parameters(model)
    if checkpoint is None:
        # A resume from a checkpoint was checked against the disk before anything was written.
        check_space_for_new_run(run_dir, model, config.train.save_total_limit)
    system_prompt = profile.render_system_prompt(config.data.system_prompt, date.fromisoformat(config.run.date))
    # Rank 0 tokenizes into the cache; the other ranks then read it back.
    with PartialState().main_process_first():
        if config.data.streaming:
            data = stream_split(records, config.data, profile, system_prompt, tokenizer, config.seed)
        else:
            tokenize = (
                tokenize_preference_split if pairs else partial(tokenize_data_split, num_proc=config.data.num_proc)
            )
            cache_dir = tokenized_cache_dir(config.data, run_dir.tokenized_dir)
            data = tokenize(records, profile, system_prompt, tokenizer, config.data.max_length, cache_dir=cache_dir)
    stop.at_once = False
    if main_process:
        write_json_atomic(run_dir.tokenized_file, data.summary())

    if checkpoint:
        log.info("Resuming from %s", checkpoint)
    previews = build_preview_callback(
        config,
        run_dir,
        profile,
        records.chats() if pairs else records,
        system_prompt,
        tokenizer,
        preview_token,
        checkpoint_step(checkpoint),
    )
    previews.listeners.append(status.record_preview)
    if trackers is not None:
        previews.listeners.append(trackers.record_preview)
    if config.data.streaming:
        stream = stream_position(data.train, checkpoint, PartialState().num_processes)
        extra_callbacks = [stream, *extra_callbacks]
    generation_eval = None
    if config.eval.enabled:
        # The held-out prompts are chosen once, for every evaluation of the run.
        prompts = held_out_prompts(records, profile, system_prompt, tokenizer, config.eval)
        generation_eval = GenerationEval(
            prompts, profile, tokenizer, config.eval, run_dir, main_process, listeners=[status.record_eval]
        )
        if trackers is not None:
            generation_eval.answers_listeners.append(trackers.record_eval_answers)
    if pairs:
        extra_callbacks = [PreferenceStatusCallback(status), *extra_callbacks]
    early_stopping = RunEarlyStopping(config.train.early_stopping) if config.train.early_stopping.patience else None
    callbacks = training_callbacks(
        config,
        run_dir,
        status,
        previews,
        stop,
        extra=[*extra_callbacks, *filter(None, [early_stopping])],
        eval_metrics=generation_eval.metric_names if generation_eval else (),
        trackers=trackers,
    )
    trainer = build_hf_trainer(config, run_dir, model, tokenizer, data, plan, callbacks, generation_eval)
    stop.raise_if_requested("before the first step")
    if checkpoint and checkpoint_step(checkpoint) == config.train.max_steps:
        log.info("%s is at train.max_steps=%d: no step left to train", checkpoint, config.train.max_steps)
        restore_checkpoint(trainer, checkpoint)
        runtime = 0.0
    else:
        runtime = trainer.train(resume_from_checkpoint=checkpoint).metrics["train_runtime"]
    stop.raise_if_requested(f"at step {trainer.state.global_step}")
    memory = peak_memory()
    with disk_full_reported(run_dir, run_dir.final_model_dir, lambda: model_sizes(model)[1]):
        trainer.save_model(str(run_dir.final_model_dir))
        log_replica_checksum(trainer)
        if config.peft.merge_on_save and config.peft.method != "none" and trainer.is_world_process_zero():
            save_merged_model(config.model, run_dir.final_model_dir, run_dir.merged_model_dir, plan.model_dtype)
    summary = {
        "profile": profile.metadata(),
        **data.stats,
        **parameters,
        **memory,
        **batch_summary(trainer),
        "previews": previews.summary(),
        **(generation_eval.summary() if generation_eval else {}),
        **preference_summary(trainer.state.log_history),
    }
    result = collect_result(trainer, run_dir, runtime, summary=summary)
    result.stopped_early = early_stopping is not None and early_stopping.stopped_at_step is not None
    result.best_checkpoint_path = trainer.state.best_model_checkpoint
    log_final_model(config, trainer)
    if main_process:
        write_model_card(run_dir, config, result, data.stats, trainer.state.log_history)
    return result


def log_final_model(config: TrainerConfig, trainer: Trainer) -> None:
    """Say whose weights final_model/ holds, where the run tracked its best evaluation."""
    state = trainer.state
    if state.best_metric is None:
        return
    metric = config.train.early_stopping.metric
    if config.train.final_model == "best" and state.best_model_checkpoint:
        log.info(
            "Final model: the best checkpoint %s (%s %.4g)", state.best_model_checkpoint, metric, state.best_metric
        )
    else:
        log.info(
            "Final model: the last step %d (best %s %.4g at step %s)",
            state.global_step,
            metric,
            state.best_metric,
            state.best_global_step,
        )


def training_callbacks(
    config: TrainerConfig,
    run_dir: RunDirectory,
    status: StatusWriter,
    previews: PreviewCallback | None = None,
    stop: StopRequest | None = None,
    extra: Sequence[TrainerCallback] = (),
    trackers: RunTrackers | None = None,
    eval_metrics: tuple[str, ...] = (),
) -> list[TrainerCallback]:
    """Every callback of a run, in the order each event reaches them: the monitor first (it adds
    tokens/s to the log events the others report), then the caller's `extra` after trainer's own,
    and the previews and the stop request last, once everything else has seen the step.
    `eval_metrics`: the generation eval's, charted in TensorBoard and sent to the trackers."""
    callbacks = [
        IntervalsFromArguments(),
        TrainingMonitorCallback(status, config.monitoring),
        MetricsLogCallback(),
        FinalEvaluationCallback(),
        LastStepLogged(),
    ]
    if config.monitoring.tensorboard:
        callbacks.append(RunTensorBoardCallback(run_dir.tensorboard_dir, config, eval_metrics))
    if trackers is not None:
        callbacks.append(TrackerCallback(trackers, eval_metrics))
    callbacks.append(ProgressBarCallback())
    return [*callbacks, *extra, *(callback for callback in (previews, stop) if callback is not None)]


def restore_checkpoint(trainer: Trainer, checkpoint: str) -> None:
    """The weights and state of a checkpoint that needs no more steps, as training would leave them."""
    trainer._load_from_checkpoint(checkpoint)
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / TRAINER_STATE_NAME))


def collect_result(trainer: Trainer, run_dir: RunDirectory, runtime: float, summary: dict) -> TrainingResult:
    history = trainer.state.log_history
    train_losses = [entry["loss"] for entry in history if "loss" in entry]
    eval_losses = [entry["eval_loss"] for entry in history if "eval_loss" in entry]
    tokens = trainer.state.num_input_tokens_seen
    # A resumed run's tokens/s counts only the tokens of this segment, the one `runtime` measures.
    segment_tokens = tokens - getattr(trainer, "_initial_num_input_tokens_seen", tokens)
    summary |= {
        "first_loss": train_losses[0] if train_losses else None,
        "train_tokens_seen": tokens,
        "segment_tokens": segment_tokens,
        "tokens_per_sec": round(segment_tokens / runtime, 1) if runtime and segment_tokens else None,
    }
    return TrainingResult(
        success=True,
        global_step=trainer.state.global_step,
        last_checkpoint_path=run_dir.newest_checkpoint(),
        final_model_path=str(run_dir.final_model_dir),
        final_loss=train_losses[-1] if train_losses else None,
        eval_loss=eval_losses[-1] if eval_losses else None,
        summary=summary,
    )
