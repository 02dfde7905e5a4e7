"""The recipe of one training job, read top to bottom: `train` runs its named steps, profile ->
`record_split` -> `setup_model` -> `setup_data` -> `build_trainer` -> `fit` -> `save_final_model`
-> `collect_result`, which tests and the bench call as well. `training_callbacks` is the one place
where a run's callbacks are assembled. The harness (`trainer.run.harness`) owns everything
around it: the claim of the run directory, signals, logs, status.json and result.json.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path

from accelerate import PartialState
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainerState,
    set_seed,
)
from transformers.trainer import TRAINER_STATE_NAME

from trainer.config.schema import PREFERENCE_OBJECTIVES, TrainerConfig
from trainer.config.sources import source_name
from trainer.data.cache import tokenized_cache_dir
from trainer.data.cache_entry import TokenizedData
from trainer.data.mixture import tokenize_data_split
from trainer.data.preference import PreferenceSplit, load_preference_split, tokenize_preference_split
from trainer.data.split import MixtureSplit, RecordSplit, record_split
from trainer.data.streaming import stream_position, stream_split
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
from trainer.precision import PrecisionPlan, plan_precision, precision_warning
from trainer.preview import build_preview_callback, read_preview_token
from trainer.preview.callback import PreviewCallback
from trainer.profiles import build_profile
from trainer.profiles.base import Profile
from trainer.run.disk_space import check_space_for_new_run, disk_full_reported, model_sizes
from trainer.run.files import write_json_atomic
from trainer.run.interruption import StopRequest
from trainer.run.layout import RunDirectory, checkpoint_step
from trainer.run.outcome import TrainingResult
from trainer.run.resume import ResumePlan
from trainer.run.status import StatusWriter
from trainer.training import IntervalsFromArguments, LastStepLogged, batch_summary, build_hf_trainer

log = logging.getLogger(__name__)


@dataclass
class ModelSetup:
    """The run's model (adapter applied), its tokenizer and the precision it trains in."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    precision: PrecisionPlan
    # Trainable and total parameter counts, for the run's summary.
    parameters: dict[str, int]


@dataclass
class DataSetup:
    """The run's data: its records (what previews and the generation eval draw prompts from) and
    its tokenized split, rendered with `system_prompt` under `profile`."""

    profile: Profile
    records: RecordSplit | MixtureSplit | PreferenceSplit
    system_prompt: str
    tokenized: TokenizedData


def train(
    config: TrainerConfig,
    run_dir: RunDirectory,
    status: StatusWriter,
    stop: StopRequest,
    plan: ResumePlan,
    *,
    main_process: bool,
    environ: Mapping[str, str],
    extra_callbacks: Sequence[TrainerCallback] = (),
    trackers: RunTrackers | None = None,
) -> TrainingResult:
    """Train one validated config in its claimed run directory, from the checkpoint the harness's
    `plan` chose (or from step 0). The main process (rank 0, or the only one) writes the run's
    files and reports to the `trackers` (MLflow, W&B) the harness opened; `environ` holds the
    secrets (the remote preview's token)."""
    preview_token = read_preview_token(config.preview, environ)
    start_run(config, run_dir, main_process)
    # Until the data is tokenized a signal stops the run at once: there is no step to finish.
    stop.at_once = True
    profile = build_profile(config.profile, config.seed)
    # Preference pairs (objective=dpo|simpo) are read, tokenized and batched as pairs; the rest is SFT's.
    pairs = config.objective.name in PREFERENCE_OBJECTIVES
    records = (load_preference_split if pairs else record_split)(config.data, profile, config.seed)
    setup = setup_model(config)
    if plan.checkpoint is None:
        # A resume from a checkpoint was checked against the disk before anything was written.
        check_space_for_new_run(run_dir, setup.model, config.train.save_total_limit)
    data = setup_data(config, run_dir, profile, records, setup.tokenizer)
    stop.at_once = False
    if main_process:
        write_json_atomic(run_dir.tokenized_file, data.tokenized.summary())

    if plan.checkpoint:
        log.info("Resuming from %s", plan.checkpoint)
    previews = build_preview_callback(
        config,
        run_dir,
        profile,
        records.chats() if pairs else records,
        data.system_prompt,
        setup.tokenizer,
        preview_token,
        plan.start_step,
    )
    previews.listeners.append(status.record_preview)
    if trackers is not None:
        previews.listeners.append(trackers.record_preview)
    if config.data.streaming:
        stream = stream_position(data.tokenized.train, plan.checkpoint, PartialState().num_processes)
        extra_callbacks = [stream, *extra_callbacks]
    if pairs:
        extra_callbacks = [PreferenceStatusCallback(status), *extra_callbacks]
    generation_eval = setup_generation_eval(config, run_dir, data, setup.tokenizer, status, trackers, main_process)
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
    trainer = build_trainer(config, run_dir, setup, data.tokenized, callbacks, generation_eval)
    stop.raise_if_requested("before the first step")
    runtime = fit(trainer, plan.checkpoint, config.train.max_steps)
    stop.raise_if_requested(f"at step {trainer.state.global_step}")
    memory = peak_memory()
    save_final_model(config, run_dir, trainer, setup)
    summary = {
        "profile": profile.metadata(),
        **data.tokenized.stats,
        **setup.parameters,
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
        write_model_card(run_dir, config, result, data.tokenized.stats, trainer.state.log_history)
    return result


def start_run(config: TrainerConfig, run_dir: RunDirectory, main_process: bool) -> None:
    """Say what the run trains, record its environment, seed everything."""
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


def setup_model(config: TrainerConfig) -> ModelSetup:
    """The model in the run's precision, with its adapter (LoRA, QLoRA) applied."""
    precision = plan_precision(config.precision.name)
    quantize_4bit = config.peft.method == "qlora"
    # Rank 0 builds (or downloads) the model into its cache first; the other ranks then read it.
    with PartialState().main_process_first():
        model, tokenizer, added_tokens = load_model_and_tokenizer(config.model, precision.model_dtype, quantize_4bit)
    model = apply_adapter(model, config.peft, config.model.architecture, added_tokens)
    return ModelSetup(model, tokenizer, precision, count_parameters(model))


def setup_data(
    config: TrainerConfig,
    run_dir: RunDirectory,
    profile: Profile,
    records: RecordSplit | MixtureSplit | PreferenceSplit,
    tokenizer: PreTrainedTokenizerBase,
) -> DataSetup:
    """The records tokenized with the run's system prompt: from the shared cache (or into the run's
    own tokenized/ with data.cache=false), or as a stream."""
    system_prompt = profile.render_system_prompt(config.data.system_prompt, date.fromisoformat(config.run.date))
    # Rank 0 tokenizes into the cache; the other ranks then read it back.
    with PartialState().main_process_first():
        if config.data.streaming:
            tokenized = stream_split(records, config.data, profile, system_prompt, tokenizer, config.seed)
        else:
            tokenize = (
                tokenize_preference_split
                if isinstance(records, PreferenceSplit)
                else partial(tokenize_data_split, num_proc=config.data.num_proc)
            )
            cache_dir = tokenized_cache_dir(config.data, run_dir.tokenized_dir)
            tokenized = tokenize(
                records, profile, system_prompt, tokenizer, config.data.max_length, cache_dir=cache_dir
            )
    return DataSetup(profile, records, system_prompt, tokenized)


def setup_generation_eval(
    config: TrainerConfig,
    run_dir: RunDirectory,
    data: DataSetup,
    tokenizer: PreTrainedTokenizerBase,
    status: StatusWriter,
    trackers: RunTrackers | None,
    main_process: bool,
) -> GenerationEval | None:
    """The generation eval of `eval.enabled`, on held-out prompts chosen once for every evaluation
    of the run; None when it is off."""
    if not config.eval.enabled:
        return None
    prompts = held_out_prompts(data.records, data.profile, data.system_prompt, tokenizer, config.eval)
    generation_eval = GenerationEval(
        prompts, data.profile, tokenizer, config.eval, run_dir, main_process, listeners=[status.record_eval]
    )
    if trackers is not None:
        generation_eval.answers_listeners.append(trackers.record_eval_answers)
    return generation_eval


def build_trainer(
    config: TrainerConfig,
    run_dir: RunDirectory,
    setup: ModelSetup,
    tokenized: TokenizedData,
    callbacks: Sequence[TrainerCallback],
    generation_eval: GenerationEval | None = None,
) -> Trainer:
    """The Hugging Face Trainer of the run, with `callbacks` (see `training_callbacks`)."""
    return build_hf_trainer(
        config, run_dir, setup.model, setup.tokenizer, tokenized, setup.precision, list(callbacks), generation_eval
    )


def fit(trainer: Trainer, checkpoint: str | None, max_steps: int) -> float:
    """Train to the end, from `checkpoint` when there is one; the seconds it took. A checkpoint
    already at `max_steps` is restored, not trained on."""
    if checkpoint and checkpoint_step(checkpoint) == max_steps:
        log.info("%s is at train.max_steps=%d: no step left to train", checkpoint, max_steps)
        restore_checkpoint(trainer, checkpoint)
        return 0.0
    return trainer.train(resume_from_checkpoint=checkpoint).metrics["train_runtime"]


def save_final_model(config: TrainerConfig, run_dir: RunDirectory, trainer: Trainer, setup: ModelSetup) -> None:
    """final_model/ (and, with peft.merge_on_save, base + adapter merged); a full disk is named."""
    with disk_full_reported(run_dir, run_dir.final_model_dir, lambda: model_sizes(setup.model)[1]):
        trainer.save_model(str(run_dir.final_model_dir))
        log_replica_checksum(trainer)
        if config.peft.merge_on_save and config.peft.method != "none" and trainer.is_world_process_zero():
            save_merged_model(
                config.model, run_dir.final_model_dir, run_dir.merged_model_dir, setup.precision.model_dtype
            )


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
