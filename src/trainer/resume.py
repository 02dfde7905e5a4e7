"""`python -m trainer resume=outputs/DATE/TIME [SAFE OVERRIDE ...]`: continue a run in its own
directory with the config it was started with.

The command line is rewritten before Hydra sees it: Hydra keeps the run's directory (and writes
this invocation's files under `.hydra/resume/`, leaving the original `.hydra/` alone), and the
job then loads the run's saved config and applies only overrides that cannot change what is
being trained.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from trainer.errors import UserError
from trainer.overrides import override_key

RESUME_PREFIX = "resume="
SAVED_CONFIG = Path(".hydra") / "config.yaml"
# Keys a resumed run may change: how long it runs and how often it reports, never what it trains.
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
)


def rewrite_resume_arguments(arguments: list[str]) -> list[str]:
    """The Hydra command line for `resume=DIR ...`; other command lines are returned unchanged."""
    resume = [argument for argument in arguments if argument.startswith(RESUME_PREFIX)]
    if not resume:
        return arguments
    run_dir = Path(resume[-1].removeprefix(RESUME_PREFIX))
    if not (run_dir / SAVED_CONFIG).is_file():
        raise UserError(f"Cannot resume: {run_dir} is not a run directory (it has no {SAVED_CONFIG})")
    overrides = [argument for argument in arguments if not argument.startswith((RESUME_PREFIX, "-"))]
    refused = [override for override in overrides if override_key(override) not in SAFE_KEYS]
    if refused:
        raise UserError(
            f"Cannot resume with {' '.join(refused)}: a resumed run keeps the config it started with; "
            f"only {', '.join(SAFE_KEYS)} may change"
        )
    flags = [argument for argument in arguments if argument.startswith("-")]
    return [*flags, *overrides, f"hydra.run.dir={run_dir}", "hydra.output_subdir=.hydra/resume", "run.resume=true"]


def resumed_config(run_dir: Path, overrides: list[str]) -> DictConfig:
    """The run's saved config with this invocation's safe overrides applied."""
    config = OmegaConf.load(run_dir / SAVED_CONFIG)
    for override in OverridesParser.create().parse_overrides(
        [item for item in overrides if override_key(item) in SAFE_KEYS]
    ):
        OmegaConf.update(config, override.key_or_group, override.value())
    config.run.output_dir = str(run_dir)
    config.run.resume = True
    return config
