"""`TrainerEngine`: one job, read top to bottom like a recipe.

validate -> profile -> data records -> model + tokenizer -> tokenized data -> Trainer -> train
-> save -> result. Usable from Python without Hydra: build a `TrainerConfig`, call `run_job`.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from transformers import Trainer, set_seed
from transformers.trainer_utils import get_last_checkpoint

from trainer.config import TrainerConfig
from trainer.data.preparation import load_record_split, tokenize_split
from trainer.errors import UserError
from trainer.job_isolation import isolated_job
from trainer.modeling.loading import load_model_and_tokenizer
from trainer.monitoring.environment import describe_environment
from trainer.monitoring.run_log import capture_run_log, route_transformers_logs
from trainer.precision import plan_precision, precision_warning
from trainer.preview import build_preview_callback, read_preview_token
from trainer.profiles import build_profile
from trainer.result import TrainingResult
from trainer.run_dir import RunDirectory, write_json_atomic
from trainer.training import build_hf_trainer
from trainer.validation import validate_config

log = logging.getLogger(__name__)


class TrainerEngine:
    def run_job(self, config: TrainerConfig) -> TrainingResult:
        """Run one training job; every outcome, failures included, is returned and written to
        result.json in the run directory."""
        run_dir = RunDirectory(Path(config.run.output_dir))
        run_dir.create()
        started = time.monotonic()
        with isolated_job(), capture_run_log(run_dir.log_file):
            try:
                result = self.train(config, run_dir)
            except UserError as error:
                log.error("%s", error)
                result = TrainingResult(
                    success=False, error_message=str(error), error_type=error.error_type, user_error=True
                )
            except Exception as error:
                log.exception("The run crashed")
                result = TrainingResult(
                    success=False, error_message=f"{type(error).__name__}: {error}", error_type=type(error).__name__
                )
            result.runtime_sec = round(time.monotonic() - started, 3)
            write_json_atomic(run_dir.result_file, result.to_dict())
            log.info("%s in %.1fs; run directory: %s", outcome(result), result.runtime_sec, run_dir.root)
        return result

    def train(self, config: TrainerConfig, run_dir: RunDirectory) -> TrainingResult:
        validate_config(config)
        # The one read of the environment below the entrypoint: a secret, kept out of the config.
        preview_token = read_preview_token(config.preview, os.environ)
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
        write_json_atomic(run_dir.env_file, describe_environment())
        set_seed(config.seed)

        profile = build_profile(config.profile, config.seed)
        records = load_record_split(config.data, profile, config.seed)
        plan = plan_precision(config.precision.name)
        model, tokenizer = load_model_and_tokenizer(config.model, plan.model_dtype)
        system_prompt = profile.render_system_prompt(config.data.system_prompt)
        data = tokenize_split(
            records, profile, system_prompt, tokenizer, config.data.max_length, cache_dir=run_dir.tokenized_dir
        )

        trainer = build_hf_trainer(config, run_dir, model, tokenizer, data, plan)
        previews = build_preview_callback(config, run_dir, profile, records, system_prompt, tokenizer, preview_token)
        trainer.add_callback(previews)
        runtime = trainer.train().metrics["train_runtime"]
        trainer.save_model(str(run_dir.final_model_dir))
        summary = {"profile": profile.metadata(), **data.stats, "previews": previews.summary()}
        return collect_result(trainer, run_dir, runtime, summary=summary)


def collect_result(trainer: Trainer, run_dir: RunDirectory, runtime: float, summary: dict) -> TrainingResult:
    history = trainer.state.log_history
    train_losses = [entry["loss"] for entry in history if "loss" in entry]
    eval_losses = [entry["eval_loss"] for entry in history if "eval_loss" in entry]
    tokens = trainer.state.num_input_tokens_seen
    summary |= {
        "first_loss": train_losses[0] if train_losses else None,
        "train_tokens_seen": tokens,
        "tokens_per_sec": round(tokens / runtime, 1) if runtime else None,
    }
    return TrainingResult(
        success=True,
        global_step=trainer.state.global_step,
        last_checkpoint_path=get_last_checkpoint(str(run_dir.checkpoints_dir)),
        final_model_path=str(run_dir.final_model_dir),
        final_loss=train_losses[-1] if train_losses else None,
        eval_loss=eval_losses[-1] if eval_losses else None,
        summary=summary,
    )


def outcome(result: TrainingResult) -> str:
    if not result.success:
        return f"Run failed ({result.error_type})"
    eval_loss = "n/a" if result.eval_loss is None else f"{result.eval_loss:.4f}"
    return f"Run completed: {result.global_step} steps, final loss {result.final_loss:.4f}, eval loss {eval_loss}"
