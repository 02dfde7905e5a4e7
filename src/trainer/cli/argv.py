"""The command line as Hydra gets it: the run's date pinned and, under torchrun, the overrides that
put every rank into the one run directory rank 0's Hydra picks (`resume=DIR` is rewritten by
trainer.run.resume). Values are written with `hydra_override`, so a path with spaces or quotes
reaches Hydra unchanged."""

from __future__ import annotations

import re

from trainer.config import load
from trainer.errors import ConfigError, UserError
from trainer.run.claim import SWEEP_FLAGS
from trainer.run.overrides import hydra_override, override_key
from trainer.run.rendezvous import LaunchedRank, published_run_dir

# Hydra prints completions for these: no run starts.
COMPLETION_FLAGS = ("--shell-completion", "-sc")


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
