"""`python -m trainer resume=outputs/DATE/TIME [SAFE OVERRIDE ...]`: continue a run in its own
directory with the config it was started with.

The command line is rewritten before Hydra sees it (trainer.cli.argv, after `refuse_unresumable`):
Hydra keeps the run's directory (and writes this invocation's files under `.hydra/resume/`,
leaving the original `.hydra/` alone), and the job then loads the run's saved config and applies
only overrides that cannot change what is being trained. The directory a command line names is
claimed here, before Hydra writes into it.
"""

from __future__ import annotations

import shutil
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import OverrideParseException
from omegaconf import DictConfig, OmegaConf

from trainer.config.load import load_saved_config
from trainer.errors import UserError
from trainer.run.layout import SAVED_CONFIG, RunDirectory, SweepDirectory
from trainer.run.overrides import override_key

SWEEP_FLAGS = ("--multirun", "-m")
# Where Hydra records a resume's own config and overrides, beside the run's original `.hydra/`.
RESUME_OUTPUT_SUBDIR = ".hydra/resume"
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


def claim_before_hydra(arguments: list[str]) -> AbstractContextManager[None]:
    """Claim the run directory a command line names (`hydra.run.dir=DIR`, as `resume=` sets it)
    before Hydra writes `.hydra/` into it, or refuse a sweep over an existing one's directory.
    A directory Hydra names itself is new (its name has microseconds): the engine claims it."""
    if "hydra.output_subdir=null" in arguments:
        # Hydra writes nothing here (a rank of the job's own torchrun): its engine claims.
        return nullcontext()
    named = {
        override.key_or_group: override.value()
        for override in parse_hydra_dirs(arguments)
        # A directory with an interpolation (${now:...}) is Hydra's to resolve: new, like its default.
        if "${" not in str(override.value())
    }
    resume = "run.resume=true" in arguments
    if any(argument in SWEEP_FLAGS for argument in arguments):
        sweep_dir = named.get("hydra.sweep.dir")
        if sweep_dir and not resume and SweepDirectory(Path(sweep_dir)).multirun_config.exists():
            raise UserError(
                f"{sweep_dir} already holds a sweep; continue it with `python -m trainer.sweep resume={sweep_dir}` "
                "or start the sweep in another directory"
            )
        return nullcontext()
    if run_dir := named.get("hydra.run.dir"):
        return RunDirectory(Path(run_dir)).claim(resume=resume, before_hydra=True)
    return nullcontext()


def parse_hydra_dirs(arguments: list[str]) -> list[Override]:
    wanted = [argument for argument in arguments if argument.startswith(("hydra.run.dir=", "hydra.sweep.dir="))]
    try:
        return OverridesParser.create().parse_overrides(wanted)
    except OverrideParseException:
        return []  # Hydra reports the malformed override itself, before it writes anything


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
