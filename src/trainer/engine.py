"""`TrainerEngine`: one job, read top to bottom like a recipe.

validate -> profile -> data records -> model + tokenizer -> tokenized data -> Trainer -> train
-> save -> result. Usable from Python without Hydra: build a `TrainerConfig`, call `run_job`.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path

import torch
from accelerate import PartialState
from transformers import PreTrainedModel, Trainer, TrainerCallback, TrainerState, set_seed
from transformers.trainer import TRAINER_STATE_NAME

from trainer.config.schema import TrainerConfig
from trainer.config.validate import validate_config
from trainer.data.cache import tokenized_cache_dir
from trainer.data.fingerprint import check_data_unchanged
from trainer.data.preparation import load_record_split, tokenize_split
from trainer.data.streaming import follow_stream, held_out_split, stream_split
from trainer.distributed.strategy import log_replica_checksum
from trainer.errors import UserError, first_line
from trainer.facts import gather_facts
from trainer.interruption import StopRequest, graceful_stop
from trainer.job_isolation import isolated_job
from trainer.modeling.adapters import apply_adapter, count_parameters, save_merged_model
from trainer.modeling.loading import load_model_and_tokenizer
from trainer.monitoring.environment import describe_environment
from trainer.monitoring.health import NonFiniteLossError
from trainer.monitoring.hparams import write_run_hparams
from trainer.monitoring.memory import peak_memory
from trainer.monitoring.run_log import capture_run_log, route_transformers_logs
from trainer.precision import plan_precision, precision_warning
from trainer.preview import build_preview_callback, read_preview_token
from trainer.profiles import build_profile
from trainer.run.files import write_json_atomic
from trainer.run.layout import RunDirectory, checkpoint_step
from trainer.run.outcome import INTERRUPTED, TrainingResult
from trainer.run.status import StatusWriter
from trainer.training import batch_summary, build_hf_trainer

log = logging.getLogger(__name__)


class RunInterrupted(Exception):
    """Training stopped on SIGTERM/SIGINT; the checkpoint of its last step is on disk."""


class TrainerEngine:
    def __init__(self, environ: Mapping[str, str] | None = None, callbacks: Sequence[TrainerCallback] = ()) -> None:
        # Secrets (the remote preview's token) come from here, never from the config or os.environ:
        # the entrypoint passes its environment, a Python caller what it chooses.
        self.environ = environ or {}
        # Added after trainer's own callbacks (a Python caller's, a test's), before previews and stop.
        self.callbacks = tuple(callbacks)

    def run_job(self, config: TrainerConfig) -> TrainingResult:
        """Run one training job; every outcome, failures included, is returned and (once the run
        directory is this job's) written to result.json there."""
        run_dir = RunDirectory(Path(config.run.output_dir))
        # One process of a torchrun/accelerate launch, or the only one; rank 0 owns the run's files.
        process = PartialState(cpu=not torch.cuda.is_available(), backend=config.distributed.backend)
        claim = run_dir.claim(resume=config.run.resume) if process.is_main_process else nullcontext()
        # From here a signal, start-up included, ends the job as interrupted.
        with graceful_stop() as stop:
            try:
                with claim:
                    checkpoint = resumed_checkpoint(run_dir, config.train.max_steps) if config.run.resume else None
                    if config.run.resume and (previous := completed_result(run_dir, config.train.max_steps)):
                        log.info("%s already completed; its result is reused", run_dir.root)
                        return previous
                    if process.is_main_process:
                        check_data_unchanged(run_dir.data_file, config.data, config.run.resume)
                    return self.run_claimed(config, run_dir, process, stop, checkpoint)
            except UserError as error:
                # The directory is not ours (busy, or another run's), or the resume is refused:
                # nothing may be written into it.
                log.error("%s", error)
                return failure(error, user_error=True)

    def run_claimed(
        self,
        config: TrainerConfig,
        run_dir: RunDirectory,
        process: PartialState,
        stop: StopRequest,
        checkpoint: str | None,
    ) -> TrainingResult:
        run_dir.create()
        status = StatusWriter(
            run_dir.status_file, config.monitoring.status_interval_sec, enabled=process.is_main_process
        )
        status.mark_idle()
        started = time.monotonic()
        with isolated_job(), capture_run_log(run_dir.log_file_of(process.process_index)):
            try:
                result = self.train(config, run_dir, status, stop, checkpoint)
            except NonFiniteLossError as error:
                log.error("%s", error)
                status.add_alert(error.alert)
                result = failure(error, global_step=error.step - 1)
            except (RunInterrupted, KeyboardInterrupt) as error:
                result = interrupted(error, run_dir)
                log.warning("%s", result.error_message)
            except UserError as error:
                log.error("%s", error)
                result = failure(error, user_error=True)
            except Exception as error:
                # The console shows this line; the traceback goes to trainer.log only.
                log.exception(
                    "The run crashed: %s: %s (traceback in %s)",
                    type(error).__name__,
                    first_line(error),
                    run_dir.log_file,
                )
                result = failure(error, message=f"{type(error).__name__}: {error}")
            result.runtime_sec = round(time.monotonic() - started, 3)
            if status.enabled:
                write_json_atomic(run_dir.result_file, result.to_dict())
            if config.monitoring.tensorboard and status.enabled:
                write_run_hparams(run_dir, config, result)
            if result.success:
                status.mark_completed()
            elif result.error_type == INTERRUPTED:
                status.mark_interrupted(result.error_message)
            else:
                status.mark_crashed(result.error_message, result.error_type)
            log.info("%s in %.1fs; run directory: %s", outcome(result), result.runtime_sec, run_dir.root)
        return result

    def train(
        self,
        config: TrainerConfig,
        run_dir: RunDirectory,
        status: StatusWriter,
        stop: StopRequest,
        checkpoint: str | None,
    ) -> TrainingResult:
        validate_config(config, gather_facts())
        preview_token = read_preview_token(config.preview, self.environ)
        log.info(
            "Run: model=%s profile=%s precision=%s data=%s -> %s",
            config.model.name,
            config.profile.name,
            config.precision.name,
            config.data.train or "sample",
            run_dir.root,
        )
        if warning := precision_warning(config.precision.name):
            log.warning(warning)
        route_transformers_logs(config.monitoring.transformers_log_level)
        if status.enabled:
            write_json_atomic(run_dir.env_file, describe_environment())
        set_seed(config.seed)

        profile = build_profile(config.profile, config.seed)
        # Streaming reads only the validation records now; the training records as training needs them.
        records = (held_out_split if config.data.streaming else load_record_split)(config.data, profile, config.seed)
        plan = plan_precision(config.precision.name)
        quantize_4bit = config.peft.method == "qlora"
        # Rank 0 builds (or downloads) the model into its cache first; the other ranks then read it.
        with PartialState().main_process_first():
            model, tokenizer, added_tokens = load_model_and_tokenizer(config.model, plan.model_dtype, quantize_4bit)
        model = apply_adapter(model, config.peft, config.model.architecture, added_tokens)
        parameters = count_parameters(model)
        check_free_space(run_dir, model, config.train.save_total_limit)
        system_prompt = profile.render_system_prompt(config.data.system_prompt)
        # Rank 0 tokenizes into the cache; the other ranks then read it back.
        with PartialState().main_process_first():
            data = (
                stream_split(records, config.data, profile, system_prompt, tokenizer, config.seed)
                if config.data.streaming
                else tokenize_split(
                    records,
                    profile,
                    system_prompt,
                    tokenizer,
                    config.data.max_length,
                    cache_dir=tokenized_cache_dir(config.data, run_dir.tokenized_dir),
                    num_proc=config.data.num_proc,
                )
            )
        if status.enabled:
            write_json_atomic(run_dir.tokenized_file, data.summary())

        if checkpoint:
            log.info("Resuming from %s", checkpoint)
        trainer = build_hf_trainer(config, run_dir, model, tokenizer, data, plan, status)
        if config.data.streaming:
            follow_stream(trainer, data.train, checkpoint)
        for callback in self.callbacks:
            trainer.add_callback(callback)
        previews = build_preview_callback(
            config, run_dir, profile, records, system_prompt, tokenizer, preview_token, checkpoint_step(checkpoint)
        )
        previews.listeners.append(status.record_preview)
        trainer.add_callback(previews)
        trainer.add_callback(stop)
        if stop.requested:
            raise RunInterrupted(f"Stopped by {stop.signal_name} before the first step")
        if checkpoint and checkpoint_step(checkpoint) == config.train.max_steps:
            log.info("%s is at train.max_steps=%d: no step left to train", checkpoint, config.train.max_steps)
            restore_checkpoint(trainer, checkpoint)
            runtime = 0.0
        else:
            runtime = trainer.train(resume_from_checkpoint=checkpoint).metrics["train_runtime"]
        if stop.requested:
            raise RunInterrupted(f"Stopped by {stop.signal_name} at step {trainer.state.global_step}")
        memory = peak_memory()
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
        }
        return collect_result(trainer, run_dir, runtime, summary=summary)


def resumed_checkpoint(run_dir: RunDirectory, max_steps: int) -> str | None:
    run_dir.remove_unfinished_save()
    return run_dir.checkpoint_to_resume(max_steps)


def restore_checkpoint(trainer: Trainer, checkpoint: str) -> None:
    """The weights and state of a checkpoint that needs no more steps, as training would leave them."""
    trainer._load_from_checkpoint(checkpoint)
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / TRAINER_STATE_NAME))


def completed_result(run_dir: RunDirectory, max_steps: int) -> TrainingResult | None:
    """The result of a run that succeeded, saved its final model and needs no more steps (a resume
    may raise max_steps)."""
    previous = run_dir.read_result()
    if not previous or not previous["success"] or not run_dir.final_model_dir.is_dir():
        return None
    if max_steps > 0 and previous["global_step"] < max_steps:
        return None
    return TrainingResult(**previous)


def failure(
    error: BaseException, user_error: bool = False, global_step: int = 0, message: str | None = None
) -> TrainingResult:
    error_type = getattr(error, "error_type", type(error).__name__)
    return TrainingResult(
        success=False,
        global_step=global_step,
        error_message=message or str(error),
        error_type=error_type,
        user_error=user_error,
    )


def interrupted(error: BaseException, run_dir: RunDirectory) -> TrainingResult:
    """A stop on a signal: the steps since the newest checkpoint are all that is lost."""
    checkpoint = run_dir.newest_checkpoint()
    step = checkpoint_step(checkpoint) or 0
    cause = str(error) if isinstance(error, RunInterrupted) else "Stopped at once by a second SIGINT"
    return TrainingResult(
        success=False,
        global_step=step,
        last_checkpoint_path=checkpoint,
        error_message=f"{cause}; continue with: python -m trainer resume={run_dir.root}",
        error_type=INTERRUPTED,
    )


def check_free_space(run_dir: RunDirectory, model: PreTrainedModel, save_total_limit: int) -> None:
    """Refuse to start when the disk cannot hold the checkpoints the run will keep: weights plus
    two AdamW states per trainable parameter each, and one more while a save rotates out the oldest."""
    weights = sum(parameter.numel() * parameter.element_size() for parameter in model.parameters())
    optimizer = sum(parameter.numel() * 8 for parameter in model.parameters() if parameter.requires_grad)
    needed = (weights + optimizer) * (save_total_limit + 1) + weights
    free = shutil.disk_usage(run_dir.root).free
    if free < needed:
        raise UserError(
            f"Not enough disk space in {run_dir.root}: {free / 2**20:,.0f} MiB free, about {needed / 2**20:,.0f} MiB "
            f"needed for {save_total_limit} checkpoints (train.save_total_limit) and the final model"
        )


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


def outcome(result: TrainingResult) -> str:
    if not result.success:
        return f"Run failed ({result.error_type})"
    eval_loss = "n/a" if result.eval_loss is None else f"{result.eval_loss:.4f}"
    tokens_per_sec = result.summary.get("tokens_per_sec")
    speed = "no step trained now" if tokens_per_sec is None else f"{tokens_per_sec:,.0f} tokens/s"
    return (
        f"Run completed: {result.global_step} steps, final loss {result.final_loss:.4f}, eval loss {eval_loss}, {speed}"
    )
