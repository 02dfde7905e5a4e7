"""Weights & Biases: one W&B run per run directory, its files in the run directory's wandb/. A sweep
is a W&B group; a resume continues the run whose id trackers.json keeps.

The mode is the config's (`logger.wandb.mode`), never W&B's environment variables: `auto` is online
only when the API key is there. The key is a secret, so it comes where the engine's secrets come
from (its `environ`, the process environment on the command line), under the name W&B gives it,
and is handed to W&B explicitly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import wandb

from trainer.config.schema import WandbLoggerConfig
from trainer.errors import UserError
from trainer.monitoring.trackers import TrackedRun, Tracker
from trainer.preview.base import PreviewResult
from trainer.run.outcome import TrainingResult

log = logging.getLogger(__name__)

API_KEY_VARIABLE = "WANDB_API_KEY"
# W&B refuses longer tags and group names.
MAX_TAG_LENGTH = 64
MAX_GROUP_LENGTH = 128
PREVIEW_COLUMNS = ["step", "prompt_index", "prompt", "golden_answer", "answer", "match", "error"]
# The scored answers' columns (evals/step-N.jsonl's keys); each of the profile's checks follows.
EVAL_ANSWER_COLUMNS = ["step", "prompt_index", "reference", "answer", "tokens_generated"]


class WandbTracker(Tracker):
    name = "W&B"

    def __init__(self, run: wandb.Run) -> None:
        self.run = run
        # One table for the run, rows added as previews come; each log shows all rows so far.
        self.previews = wandb.Table(columns=PREVIEW_COLUMNS, log_mode="INCREMENTAL")
        # Likewise every evaluation's answers; its columns wait for the first (the checks are the profile's).
        self.eval_answers: wandb.Table | None = None

    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        self.run.log(scalars, step=step)

    def log_preview(self, result: PreviewResult) -> None:
        self.previews.add_data(
            result.step,
            result.prompt_index,
            result.prompt,
            result.golden_answer,
            result.text,
            result.match,
            result.error_message or "",
        )
        self.run.log({"previews": self.previews}, step=result.step)

    def log_eval_answers(self, step: int, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self.eval_answers is None:
            columns = [*EVAL_ANSWER_COLUMNS, *rows[0]["checks"]]
            self.eval_answers = wandb.Table(columns=columns, log_mode="INCREMENTAL")
        for row in rows:
            self.eval_answers.add_data(*(row[column] for column in EVAL_ANSWER_COLUMNS), *row["checks"].values())
        self.run.log({"eval_answers": self.eval_answers}, step=step)

    def finish(self, result: TrainingResult, metrics: dict[str, float]) -> None:
        self.run.summary.update({**metrics, "result": result.to_dict()})
        self.run.finish(exit_code=0 if result.success else 1)


def wandb_mode(config: WandbLoggerConfig, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """The mode W&B runs in and the API key it is given; online without a key is refused."""
    key = environ.get(API_KEY_VARIABLE) or None
    mode = config.mode if config.mode != "auto" else ("online" if key else "offline")
    if mode == "online" and key is None:
        raise UserError(
            f"logger.wandb.mode=online needs a W&B API key in {API_KEY_VARIABLE} (https://wandb.ai/authorize); "
            "or use logger.wandb.mode=offline and `wandb sync` later"
        )
    return mode, key


def open_wandb(config: WandbLoggerConfig, run: TrackedRun, mode: str, key: str | None) -> WandbTracker:
    # The id of the run's first start (a new run has none).
    previous = run.read_ids("wandb").get("id")
    tracked = wandb.init(
        project=config.project,
        entity=config.entity,
        group=config.group or (str(run.sweep_dir)[-MAX_GROUP_LENGTH:] if run.sweep_dir else None),
        name=run.name,
        dir=str(run.run_dir.root),
        mode=mode,
        id=previous,
        resume="allow" if previous else None,
        config=run.params,
        tags=[f"{name}:{value}"[:MAX_TAG_LENGTH] for name, value in run.tags.items() if name != "run_dir"],
        notes=f"run directory: {run.tags['run_dir']}",
        settings=wandb.Settings(api_key=key, console="off", silent=True, save_code=False),
        # A resume may change a few keys (train.max_steps, ...); W&B keeps the newest value.
        allow_val_change=bool(previous),
    )
    run.keep_ids("wandb", {"id": tracked.id})
    where = "online" if mode == "online" else f"offline: send it later with `wandb sync {tracked.settings.sync_dir}`"
    log.info("W&B: run %s of project %s, %s", tracked.id, config.project, where)
    return WandbTracker(tracked)
