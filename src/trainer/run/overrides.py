"""A run's Hydra overrides, read back from its directory, and the ones that set it apart: those
its sweep varies (or, for a single run, all of them). They name the run in TensorBoard and in the
HParams table, so a sweep's jobs are told apart without opening summary.md. Also the one way an
override is written for Hydra to read back (`hydra_override`)."""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import OmegaConf

# Overrides that say how a job ran (or where it was reported: `logger`) rather than what it trained.
HIDDEN_OVERRIDE_PREFIXES = ("hydra.", "sweep.", "run.", "logger=", "logger.")
# Hydra's record of a sweep, at its root: the command line every job of it was expanded from.
MULTIRUN_CONFIG = "multirun.yaml"
# Longest TensorBoard run directory name: file systems allow 255 bytes.
MAX_NAME_LENGTH = 160
# Values Hydra's override grammar reads as they are; anything else is quoted.
PLAIN_VALUE = re.compile(r"[\w./~:+-]+")


def job_overrides(job_dir: Path) -> list[str]:
    """The overrides a run was started with, as Hydra recorded them (.hydra/overrides.yaml)."""
    overrides_file = job_dir / ".hydra" / "overrides.yaml"
    if not overrides_file.is_file():
        return []
    return visible(OmegaConf.to_container(OmegaConf.load(overrides_file)) or [])


def visible(overrides: list[str]) -> list[str]:
    """The overrides that say what a job trained, without those that say how it ran."""
    return [item for item in overrides if not item.startswith(HIDDEN_OVERRIDE_PREFIXES)]


def override_key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def hydra_override(key: str, value: str) -> str:
    """`key=value` as Hydra's override grammar reads it back, quoting paths with spaces and the like."""
    if PLAIN_VALUE.fullmatch(value):
        return f"{key}={value}"
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"{key}='{escaped}'"


def swept_keys(run_dir: Path) -> set[str]:
    """The keys the run's sweep varies: those given several values on the sweep's command line
    (multirun.yaml at the sweep root) and those a sweeper searches (`hydra.sweeper.params`)."""
    keys = set()
    multirun_config = run_dir.parent / MULTIRUN_CONFIG
    if multirun_config.is_file():
        # Imported here: `trainer status` reads run directories too, and stays quick without it.
        from hydra.core.override_parser.overrides_parser import OverridesParser

        command_line = OmegaConf.load(multirun_config).hydra.overrides.task
        parsed = OverridesParser.create().parse_overrides(list(command_line))
        keys |= {override.key_or_group for override in parsed if override.is_sweep_override()}
    hydra_config = run_dir / ".hydra" / "hydra.yaml"
    if hydra_config.is_file():
        keys |= set(OmegaConf.load(hydra_config).hydra.sweeper.get("params") or {})
    return keys


def distinguishing_overrides(run_dir: Path) -> list[str]:
    """The overrides that set this run apart from the other jobs of its sweep; for a single run
    (or a sweep that varies nothing), all of its overrides."""
    overrides = job_overrides(run_dir)
    swept = swept_keys(run_dir)
    return [item for item in overrides if override_key(item) in swept] or overrides


def tensorboard_run_name(run_dir: Path) -> str:
    """A directory name (so TensorBoard's run name) from the run's distinguishing overrides, e.g.
    `profile=plain,train.learning_rate=0.001`; a path value is shortened to its last part."""
    if not (run_dir / ".hydra").is_dir():
        return "run"  # started from Python, not through Hydra: no overrides to tell
    items = [shorten_path_value(item) for item in distinguishing_overrides(run_dir)]
    return ",".join(items).replace("/", "_")[:MAX_NAME_LENGTH] or "defaults"


def session_name(run_dir: Path) -> str:
    """The run's name in the HParams table: its directory (job number) and distinguishing overrides."""
    return " ".join([run_dir.name, *distinguishing_overrides(run_dir)])


def shorten_path_value(override: str) -> str:
    key, separator, value = override.partition("=")
    return f"{key}{separator}{Path(value).name}" if "/" in value else override
