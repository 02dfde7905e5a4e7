"""The claim of the run directory a command line names, before Hydra writes into it: two live runs
never share a directory, and a new run never starts over an existing one (`RunDirectory.claim`)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import OverrideParseException

from trainer.errors import UserError
from trainer.run.layout import RunDirectory, SweepDirectory

SWEEP_FLAGS = ("--multirun", "-m")


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
