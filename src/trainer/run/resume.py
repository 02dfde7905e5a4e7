"""`python -m trainer resume=outputs/DATE/TIME [SAFE OVERRIDE ...]`: continue a run in its own
directory with the config it was started with.

The command line is rewritten before Hydra sees it (`rewrite_resume_arguments`):
Hydra keeps the run's directory (and writes this invocation's files under `.hydra/resume/`,
leaving the original `.hydra/` alone), and the job then loads the run's saved config and applies
only overrides that cannot change what is being trained. Every refusal of a resume comes before
Hydra writes anything into the run (`refuse_resume_before_hydra`).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from trainer.config import load
from trainer.config.load import load_saved_config
from trainer.config.schema import TrainerConfig
from trainer.errors import UserError
from trainer.run.claim import SWEEP_FLAGS
from trainer.run.disk_space import check_space_for_resume
from trainer.run.layout import SAVED_CONFIG, RunDirectory, SweepDirectory, checkpoint_step
from trainer.run.outcome import TrainingResult
from trainer.run.overrides import hydra_override, override_key

if TYPE_CHECKING:
    from trainer.data.fingerprint import DataChanges

# Where Hydra records a resume's own config and overrides, beside the run's original `.hydra/`.
RESUME_OUTPUT_SUBDIR = ".hydra/resume"
RESUME_PREFIX = "resume="
# Overrides a sweep's resume sets itself, so the originals must not compete with them.
RESUME_OWNED = ("hydra.sweep.dir=", "run.resume=", "hydra.output_subdir=")
# Keys a resumed run (or sweep) may change: how long it runs and how often it reports, never what
# it trains. The one list for `resume=DIR` and `python -m trainer.sweep resume=DIR`.
SAFE_KEYS = (
    "train.max_steps",
    "train.num_train_epochs",
    "train.logging_steps",
    "train.eval_steps",
    "train.save_steps",
    "train.save_total_limit",
    "train.dataloader_num_workers",
    "monitoring.status_interval_sec",
    "monitoring.transformers_log_level",
    "preview.every_steps",
    "preview.num_prompts",
    "preview.max_new_tokens",
    "data.allow_changed",
)


def refuse_unresumable(run_dir: Path, overrides: list[str]) -> None:
    """Raise `UserError` unless `run_dir` is a run that a resume with `overrides` can continue."""
    if not (run_dir / SAVED_CONFIG).is_file():
        raise UserError(f"Cannot resume: {run_dir} is not a run directory (it has no {SAVED_CONFIG})")
    refuse_unsafe_overrides(overrides)


def refuse_unsafe_overrides(overrides: list[str]) -> None:
    """A resume keeps what its run trains: any override outside `SAFE_KEYS` is refused, each named."""
    refused = [override for override in overrides if override_key(override) not in SAFE_KEYS]
    if refused:
        raise UserError(
            f"Cannot resume with {' '.join(refused)}: a resumed run keeps the config it started with; "
            f"only {', '.join(SAFE_KEYS)} may change"
        )


def resumed_config(run_dir: Path, composed: DictConfig, overrides: list[str]) -> DictConfig:
    """The run's saved config with this invocation's safe overrides applied. A sweep job that
    never started has none: it runs as composed, and this resume's files become its record."""
    if not (run_dir / SAVED_CONFIG).is_file():
        if (run_dir / RESUME_OUTPUT_SUBDIR).is_dir():
            shutil.copytree(run_dir / RESUME_OUTPUT_SUBDIR, run_dir / SAVED_CONFIG.parent, dirs_exist_ok=True)
        return composed
    return saved_config_resumed(run_dir, overrides)


def saved_config_resumed(run_dir: Path, overrides: list[str]) -> DictConfig:
    """The config saved in `run_dir` with the safe ones of `overrides` applied, in resume mode."""
    config = load_saved_config(run_dir / SAVED_CONFIG)
    for override in OverridesParser.create().parse_overrides(
        [item for item in overrides if override_key(item) in SAFE_KEYS]
    ):
        OmegaConf.update(config, override.key_or_group, override.value())
    OmegaConf.update(config, "run.output_dir", str(run_dir), force_add=True)
    OmegaConf.update(config, "run.resume", True, force_add=True)
    return config


def rewrite_resume_arguments(arguments: list[str]) -> list[str]:
    """The Hydra command line for `resume=DIR ...`; other command lines are returned unchanged."""
    resume = [argument for argument in arguments if argument.startswith(RESUME_PREFIX)]
    if not resume:
        return arguments
    run_dir = Path(resume[-1].removeprefix(RESUME_PREFIX))
    if any(argument in SWEEP_FLAGS for argument in arguments):
        raise UserError(f"Cannot resume a sweep with --multirun: use `python -m trainer.sweep resume={run_dir}`")
    overrides = [argument for argument in arguments if not argument.startswith((RESUME_PREFIX, "-"))]
    refuse_unresumable(run_dir, overrides)
    refuse_resume_before_hydra(run_dir, overrides)
    flags = [argument for argument in arguments if argument.startswith("-")]
    return [*flags, *overrides, *resume_overrides("hydra.run.dir", run_dir)]


def refuse_resume_before_hydra(run_dir: Path, overrides: list[str]) -> None:
    """Every refusal of a resume (its config, checkpoint, disk space, data) comes before Hydra
    writes its record of the resume (.hydra/resume/) into the run: a refused resume writes nothing."""
    config = load.to_trainer_config(saved_config_resumed(run_dir, overrides))
    refuse_resume(config, RunDirectory(run_dir))


def resume_overrides(directory_key: str, directory: Path) -> list[str]:
    """Hydra writes into `directory` (`hydra.run.dir` or `hydra.sweep.dir`) again, its record of
    this invocation beside the original `.hydra/`, and the job runs in resume mode."""
    return [
        hydra_override(directory_key, str(directory)),
        f"hydra.output_subdir={RESUME_OUTPUT_SUBDIR}",
        "run.resume=true",
    ]


@dataclass(frozen=True)
class ResumePlan:
    """What a job continues from, decided once, reading only, before anything is written into the
    run (`plan_job`), and handed down: the harness records the data's fingerprint and clears an
    unfinished save (`start_planned_job`), the recipe trains from `checkpoint`, and what a killed
    run logged after `start_step` (previews, TensorBoard) is dropped, not doubled."""

    # A run continued in its own directory (run.resume), not a new one.
    continues: bool = False
    # The newest complete checkpoint; None: the run trains from step 0.
    checkpoint: str | None = None
    # The result of a run that already completed: returned as it is, nothing trained.
    completed: TrainingResult | None = None
    # The data's fingerprint against the run's record; None in a process that does not record it.
    data: DataChanges | None = None

    @property
    def start_step(self) -> int | None:
        return checkpoint_step(self.checkpoint)


def plan_job(config: TrainerConfig, run_dir: RunDirectory, *, main_process: bool) -> ResumePlan:
    """The plan of a job in `run_dir`, or `UserError` where continuing it is refused: a checkpoint
    past train.max_steps, too little disk for what the run adds, data changed since it started.
    The main process (which records the data's fingerprint) also fingerprints the data."""
    # Loaded for a job only: datasets (the command line stays instant).
    from trainer.data.fingerprint import data_changes

    if not config.run.resume:
        return ResumePlan(data=data_changes(config.data, None) if main_process else None)
    checkpoint = run_dir.checkpoint_to_resume(config.train.max_steps)
    if completed := completed_result(run_dir, config.train.max_steps):
        return ResumePlan(continues=True, checkpoint=checkpoint, completed=completed)
    check_resume_space(config, run_dir, checkpoint)
    data = data_changes(config.data, run_dir.data_file) if main_process else None
    return ResumePlan(continues=True, checkpoint=checkpoint, data=data)


def start_planned_job(plan: ResumePlan, run_dir: RunDirectory) -> None:
    """The plan's writes, by the owner of the claimed run directory: the data's fingerprint
    recorded, and what a kill during a save left behind removed."""
    from trainer.data.fingerprint import record_data_fingerprint

    if plan.data is not None:
        record_data_fingerprint(run_dir.data_file, plan.data)
    if plan.continues:
        run_dir.remove_unfinished_save()


def refuse_resume(config: TrainerConfig, run_dir: RunDirectory) -> None:
    """Raise `UserError` (or `ConfigError`) where resuming `run_dir` with `config` would be refused,
    reading only: the command line asks before Hydra writes its record of the resume into the run."""
    # Loaded for a resume only: torch and datasets (the command line stays instant).
    from trainer.config.validate import validate_config
    from trainer.data.sources import check_repositories
    from trainer.facts import gather_facts

    # The harness's own checks, in its order, then the plan's.
    validate_config(config, gather_facts())
    check_repositories(config.data)
    plan_job(config, run_dir, main_process=True)


def check_resume_space(config: TrainerConfig, run_dir: RunDirectory, checkpoint: str | None) -> None:
    """The disk must hold what the resume adds; without a checkpoint the run starts over, and the
    recipe checks once the model is loaded."""
    if checkpoint is not None:
        steps_left = checkpoint_step(checkpoint) != config.train.max_steps
        check_space_for_resume(run_dir, checkpoint, config.train.save_total_limit, steps_left)


def completed_result(run_dir: RunDirectory, max_steps: int) -> TrainingResult | None:
    """The result of a run that succeeded, saved its final model and needs no more steps (a resume
    may raise max_steps; a run that stopped early needs none)."""
    previous = run_dir.read_result()
    if not previous or not previous["success"] or not run_dir.final_model_dir.is_dir():
        return None
    if max_steps > 0 and previous["global_step"] < max_steps and not previous.get("stopped_early"):
        return None
    return TrainingResult(**previous)


def resume_command(sweep_dir: Path, extra: list[str]) -> list[str]:
    multirun_config = SweepDirectory(sweep_dir).multirun_config
    if not multirun_config.is_file():
        raise UserError(f"Cannot resume: {sweep_dir} is not a sweep directory: it has no {multirun_config.name}")
    refuse_unsafe_overrides(extra)
    original = OmegaConf.load(multirun_config).hydra.overrides.task
    kept = [item for item in original if not item.startswith(RESUME_OWNED)]
    return [
        sys.executable, "-m", "trainer", "--multirun", *kept, *extra, *resume_overrides("hydra.sweep.dir", sweep_dir)
    ]  # fmt: skip
