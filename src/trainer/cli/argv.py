"""The command line as Hydra gets it: `resume=DIR` rewritten into the overrides that continue the
run in its own directory, and, under torchrun, the overrides that put every rank into the one run
directory rank 0's Hydra picks. Values are written with `hydra_override`, so a path with spaces
or quotes reaches Hydra unchanged."""

from __future__ import annotations

import re
from pathlib import Path

from trainer.config import load
from trainer.errors import ConfigError, UserError
from trainer.run.layout import RunDirectory
from trainer.run.overrides import hydra_override, override_key
from trainer.run.rendezvous import LaunchedRank, published_run_dir
from trainer.run.resume import RESUME_OUTPUT_SUBDIR, SWEEP_FLAGS, refuse_unresumable, saved_config_resumed

RESUME_PREFIX = "resume="
# Hydra prints completions for these: no run starts.
COMPLETION_FLAGS = ("--shell-completion", "-sc")


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
    from trainer.run.harness import refuse_resume  # loads torch: for a resume only

    config = load.to_trainer_config(saved_config_resumed(run_dir, overrides))
    refuse_resume(config, RunDirectory(run_dir))


def pin_run_date(arguments: list[str]) -> list[str]:
    """The command line with `run.date=TODAY` added unless it gives one: a run's date is decided
    once, at its first start (a sweep's, for every job of it), and kept in its composed config,
    which a resume (`run.resume=true`) reads back instead."""
    given = any(override_key(argument) == "run.date" for argument in arguments if not argument.startswith("-"))
    if given or "run.resume=true" in arguments or any(flag in arguments for flag in COMPLETION_FLAGS):
        return arguments
    # Beside the other overrides: Hydra's parser takes them as one run of words, before or after its flags.
    first = next((at for at, argument in enumerate(arguments) if is_override(argument)), len(arguments))
    return [*arguments[:first], f"run.date={load.today()}", *arguments[first:]]


def is_override(argument: str) -> bool:
    return not argument.startswith("-") and "=" in argument


def resume_overrides(directory_key: str, directory: Path) -> list[str]:
    """Hydra writes into `directory` (`hydra.run.dir` or `hydra.sweep.dir`) again, its record of
    this invocation beside the original `.hydra/`, and the job runs in resume mode."""
    return [
        hydra_override(directory_key, str(directory)),
        f"hydra.output_subdir={RESUME_OUTPUT_SUBDIR}",
        "run.resume=true",
    ]


def rank_overrides(rank: LaunchedRank | None, arguments: list[str]) -> list[str]:
    """Hydra overrides that put this rank into the job's one run directory. Rank 0 needs none:
    its Hydra decides, and it shares the result with `publish_run_dir`."""
    if rank is None:
        return []
    if any(argument in SWEEP_FLAGS for argument in arguments):
        raise ConfigError(
            [
                "--multirun under torchrun would run the whole sweep on every rank; "
                "start the sweep without torchrun and give each job processes with distributed.nproc_per_node=N"
            ]
        )
    chosen = any(argument.startswith("hydra.run.dir=") for argument in arguments)
    if not chosen and not rank.agent_store:
        raise ConfigError(
            [
                "this launcher gives the ranks no shared store to agree on a run directory; "
                "pass the same hydra.run.dir=DIR to every rank (e.g. outputs/$SLURM_JOB_ID)"
            ]
        )
    if rank.rank == 0:
        return []
    # Rank 0 alone records the composed config in .hydra/.
    overrides = ["hydra.output_subdir=null"]
    if not chosen:
        overrides.append(hydra_override("hydra.run.dir", published_run_dir(rank)))
    return overrides


def refuse_unselected_tracker_keys(arguments: list[str]) -> None:
    """`logger.mlflow.KEY=...` sets a key of a tracker only `logger=` selects; without it the
    section does not exist, and Hydra would fail on it with an assertion instead of a message."""
    selected = {name for item in arguments if item.startswith("logger=") for name in re.findall(r"\w+", item[7:])}
    for item in arguments:
        if (match := re.match(r"logger\.(\w+)\.", item)) and match.group(1) not in selected:
            name = match.group(1)
            raise UserError(
                f"{item.partition('=')[0]} is a key of logger={name}, which is not selected: "
                f"add logger={name} (or a list, e.g. logger=[mlflow,wandb])"
            )
