"""The harness around the recipe: one job, from its config to its `TrainingResult`.

validate -> claim the run directory -> isolate the job -> capture its log -> recipe -> outcome ->
the run's files (result.json, hparams, status.json). Every process of a distributed job trains;
the main process (rank 0, or the only one) owns the run's directory and its files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path

import torch
from accelerate import PartialState
from transformers import TrainerCallback

from trainer import recipe
from trainer.config.load import dated
from trainer.config.schema import TrainerConfig
from trainer.config.validate import validate_config
from trainer.data.sources import check_repositories
from trainer.errors import ConfigError, DataError, UserError, first_line
from trainer.facts import gather_facts
from trainer.monitoring.health import NonFiniteLossError
from trainer.monitoring.hparams import write_run_hparams
from trainer.monitoring.run_log import capture_run_log
from trainer.monitoring.trackers import RunTrackers, open_trackers
from trainer.run.files import write_json_atomic
from trainer.run.interruption import (
    RunInterrupted,
    StopRequest,
    graceful_stop,
    interrupted_result,
    masked_interruption,
)
from trainer.run.job_isolation import isolated_job
from trainer.run.layout import RunDirectory
from trainer.run.outcome import INTERRUPTED, TrainingResult, record_refusal
from trainer.run.resume import ResumePlan, plan_job, start_planned_job
from trainer.run.status import StatusWriter

log = logging.getLogger(__name__)


def run_harnessed(
    config: TrainerConfig, environ: Mapping[str, str], callbacks: Sequence[TrainerCallback] = ()
) -> TrainingResult:
    """Run one training job; every outcome, failures included, is returned and (once the run
    directory is this job's) written to result.json there. The config is validated first."""
    run_dir = RunDirectory(Path(config.run.output_dir))
    try:
        # First of all: a config mistake starts no process group and creates no run directory.
        validate_config(config, gather_facts())
        # A dataset repository or Hub id without the subset or split asked for, or not cached offline.
        check_repositories(config.data)
    except (ConfigError, DataError) as error:
        log.error("%s", error)
        return record_refusal(run_dir, failure(error, user_error=True))
    if config.run.resume and config.run.date is None:
        log.warning(
            "%s has no run.date (started before runs recorded it, or from Python without one): {date} in its "
            "system prompt is today's, which may not be its first start's",
            run_dir.root,
        )
    config = dated(config)
    # One process of a torchrun/accelerate launch, or the only one.
    process = PartialState(cpu=not torch.cuda.is_available(), backend=config.distributed.backend)
    main_process = process.is_main_process
    claim = run_dir.claim(resume=config.run.resume) if main_process else nullcontext()
    # From here a signal, start-up included, ends the job as interrupted.
    with graceful_stop() as stop:
        try:
            with claim:
                plan = plan_job(config, run_dir, main_process=main_process)
                if plan.completed is not None:
                    log.info("%s already completed; its result is reused", run_dir.root)
                    return plan.completed
                # Refused until here, a resume has written nothing into the run.
                if main_process:
                    start_planned_job(plan, run_dir)
                return run_claimed(
                    config, run_dir, process.process_index, stop, plan, environ=environ, callbacks=callbacks
                )
        except UserError as error:
            # The directory is not ours (busy, or another run's), or the resume is refused:
            # nothing may be written into it.
            log.error("%s", error)
            return failure(error, user_error=True)
        except RunInterrupted as error:
            # Stopped while the data's fingerprint was taken: only a new run's directory records it.
            result = interrupted_result(error, run_dir)
            log.warning("%s", result.error_message)
            return record_refusal(run_dir, result)


def run_claimed(
    config: TrainerConfig,
    run_dir: RunDirectory,
    rank: int,
    stop: StopRequest,
    plan: ResumePlan,
    *,
    environ: Mapping[str, str],
    callbacks: Sequence[TrainerCallback],
) -> TrainingResult:
    """The job in a run directory that is its own: every outcome ends in result.json and status.json."""
    # Until the recipe reaches the data, a signal waits for result.json to be writable.
    stop.at_once = False
    main_process = rank == 0
    run_dir.create()
    status = StatusWriter(run_dir.status_file, config.monitoring.status_interval_sec, enabled=main_process)
    status.mark_idle()
    started = time.monotonic()
    trackers = RunTrackers([])
    with isolated_job(), capture_run_log(run_dir.log_file_of(rank)):
        try:
            # Before anything loads: a tracker that cannot be reached stops the run here.
            if main_process:
                trackers = open_trackers(config, run_dir, environ)
            result = recipe.train(
                config,
                run_dir,
                status,
                stop,
                plan,
                main_process=main_process,
                environ=environ,
                extra_callbacks=callbacks,
                trackers=trackers,
            )
        except NonFiniteLossError as error:
            log.error("%s", error)
            status.add_alert(error.alert)
            result = failure(error, global_step=error.step - 1)
        except (RunInterrupted, KeyboardInterrupt) as error:
            result = interrupted_result(error, run_dir)
            log.warning("%s", result.error_message)
        except UserError as error:
            log.error("%s", error)
            result = failure(error, user_error=True)
        except Exception as error:
            if (interruption := masked_interruption(error)) is not None:
                # A library's clean-up raised its own error over the stop (datasets' map: TimeoutError).
                result = interrupted_result(interruption, run_dir)
                log.warning("%s", result.error_message)
            else:
                # The console shows this line; the traceback goes to trainer.log only.
                log.exception(
                    "The run crashed: %s: %s (traceback in %s)",
                    type(error).__name__,
                    first_line(error),
                    run_dir.log_file,
                )
                result = failure(error, message=f"{type(error).__name__}: {error}")
        result.runtime_sec = round(time.monotonic() - started, 3)
        if main_process:
            write_json_atomic(run_dir.result_file, result.to_dict())
            if config.monitoring.tensorboard:
                write_run_hparams(run_dir, config, result)
            trackers.finish(result)
        if result.success:
            status.mark_completed()
        elif result.error_type == INTERRUPTED:
            status.mark_interrupted(result.error_message)
        else:
            status.mark_crashed(result.error_message, result.error_type)
        log.info("%s in %.1fs; run directory: %s", outcome(result), result.runtime_sec, run_dir.root)
    return result


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


def outcome(result: TrainingResult) -> str:
    if not result.success:
        return f"Run failed ({result.error_type})"
    eval_loss = "n/a" if result.eval_loss is None else f"{result.eval_loss:.4f}"
    tokens_per_sec = result.summary.get("tokens_per_sec")
    speed = "no step trained now" if tokens_per_sec is None else f"{tokens_per_sec:,.0f} tokens/s"
    stopped = " (stopped early)" if result.stopped_early else ""
    return f"Run completed{stopped}: {result.global_step} steps, final loss {result.final_loss:.4f}, eval loss {eval_loss}, {speed}"
