"""`trainer` (`python -m trainer`): `status DIR`, `sweep resume=DIR`, `eval DIR` and `serve --model
PATH` are commands of their own; any other command line is a run's: Hydra composes the config, the job runs,
the process exits with its outcome. The only code that edits sys.argv."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from trainer.cli.argv import pin_run_date, rank_overrides, refuse_unselected_tracker_keys
from trainer.cli.errors import exit_on_error, hydra_errors_raised
from trainer.config.load import register_schema, to_trainer_config
from trainer.config.schema import TrainerConfig
from trainer.errors import ConfigError, UserError
from trainer.run.claim import claim_before_hydra
from trainer.run.layout import SweepDirectory
from trainer.run.outcome import EXIT_INTERRUPTED, EXIT_USER_ERROR, TrainingResult
from trainer.run.rendezvous import LaunchedRank, publish_run_dir
from trainer.run.resume import resume_command, resumed_config, rewrite_resume_arguments
from trainer.sweep.metrics import objective
from trainer.sweep.summary import write_summary

log = logging.getLogger("trainer")


def config_dir() -> str:
    """conf/ inside an installed wheel, else the repository's conf/ (editable installs)."""
    packaged = Path(__file__).parents[1] / "conf"
    return str(packaged if packaged.is_dir() else Path(__file__).parents[3] / "conf")


SWEEP_USAGE = "usage: python -m trainer.sweep resume=multirun/DATE/TIME [OVERRIDE ...]"

register_schema()


def run_task(cfg: DictConfig) -> float:
    """Hydra's task function: a plain module-level function, so that a launcher running jobs in
    other processes (joblib's loky) pickles it by reference (the worker imports this module)."""
    with exit_on_error():
        return run_configured_job(cfg)


# What `run_task` would be called if Hydra's decorator did not take its name: two objects under
# one qualified name make pickle (and cloudpickle) refuse the task.
run = hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")(run_task)


def run_configured_job(cfg: DictConfig) -> float:
    hydra_config = HydraConfig.get()
    rank = LaunchedRank.from_environment(os.environ)
    # First of all: the other ranks wait for it before their Hydra starts.
    publish_run_dir(rank, hydra_config.runtime.output_dir)
    quiet_console_of_other_ranks(rank)
    if cfg.run.resume:
        cfg = resumed_config(Path(cfg.run.output_dir), cfg, list(hydra_config.overrides.task))
    try:
        config = to_trainer_config(cfg)
    except ConfigError as error:
        log.error("%s", error)
        sys.exit(EXIT_USER_ERROR)

    result = start_job(config, rank)
    from trainer.run.interruption import stop_signal_received  # imports transformers: after the job, like the engine

    # The engine has logged any failure; a single run (or a fail-fast sweep) ends on it, while a
    # sweep records it in its summary and goes on. A signal stops a sweep as a whole, even one
    # that reached its job after the last step.
    if hydra_config.mode == RunMode.RUN:
        if not result.success:
            sys.exit(result.exit_code)
    elif stop_signal_received() or (config.sweep.fail_fast and not result.success):
        write_summary(Path(hydra_config.sweep.dir), config.sweep.metric, config.sweep.mode)
        sys.exit(EXIT_INTERRUPTED if stop_signal_received() else result.exit_code)
    return objective(result.to_dict(), config.sweep.metric)


def quiet_console_of_other_ranks(rank: LaunchedRank | None) -> None:
    """Rank 0 speaks for the job on the console; the others write their INFO lines to their own
    trainer.rankN.log only, and to the console just their warnings and errors."""
    if rank is not None and rank.rank != 0:
        for handler in logging.getLogger().handlers:
            handler.setLevel(logging.WARNING)


def start_job(config: TrainerConfig, rank: LaunchedRank | None) -> TrainingResult:
    """The job in this process, or in the `distributed.nproc_per_node` processes of its own torchrun
    when no launcher has started it yet."""
    if config.distributed.nproc_per_node > 1 and rank is None:
        from trainer.distributed.launch import run_under_torchrun

        hydra_config = HydraConfig.get()
        return run_under_torchrun(config, list(hydra_config.overrides.task), hydra_config.job.config_name)
    from trainer.engine import TrainerEngine

    return TrainerEngine(environ=os.environ).run_job(config)


def main() -> None:
    command, arguments = sys.argv[1:2], sys.argv[2:]
    # Imported on use: each command loads only what it needs (`trainer status` stays instant).
    if command == ["status"]:
        from trainer.cli.status import main as show_status

        sys.exit(show_status(arguments))
    if command == ["sweep"]:
        sys.exit(sweep_command(arguments))
    if command == ["eval"]:
        from trainer.cli.eval import main as evaluate

        sys.exit(evaluate(arguments))
    if command == ["serve"]:
        from trainer.serve.__main__ import main as serve

        serve(arguments)
        return
    run_from_command_line()


def run_from_command_line() -> None:
    with exit_on_error():
        refuse_unselected_tracker_keys(sys.argv[1:])
        sys.argv[1:] = pin_run_date(rewrite_resume_arguments(sys.argv[1:]))
        # Under torchrun every rank must write into the one run directory rank 0's Hydra picks.
        rank = LaunchedRank.from_environment(os.environ)
        sys.argv += rank_overrides(rank, sys.argv[1:])
        # Rank 0 (or the only process) owns the run directory; the others write no .hydra/.
        claim = claim_before_hydra(sys.argv[1:]) if rank is None or rank.rank == 0 else nullcontext()
        with claim, hydra_errors_raised():
            run()


def sweep_command(argv: list[str]) -> int:
    """`python -m trainer.sweep resume=multirun/DATE/TIME [SAFE OVERRIDE ...]`: run the jobs of a
    sweep that have no successful result.json, each in its own directory, and refresh the summary.

    The sweep is launched again with its original overrides (from multirun.yaml) into the same
    directory, its jobs in resume mode: those that already succeeded return their stored result,
    the others continue from their newest checkpoint with their saved config (or start). Only the
    overrides a run resume accepts are accepted; each job's `.hydra/` and the sweep's multirun.yaml
    stay as they were, the resume's own record goes beside them (`.hydra/resume/`,
    `multirun.resume.yaml`)."""
    if not argv or not argv[0].startswith("resume="):
        print(SWEEP_USAGE, file=sys.stderr)
        return EXIT_USER_ERROR
    sweep_dir = Path(argv[0].removeprefix("resume="))
    try:
        command = resume_command(sweep_dir, argv[1:])
    except UserError as error:
        print(error, file=sys.stderr)
        return EXIT_USER_ERROR
    return run_keeping_multirun_config(command, sweep_dir)


def run_keeping_multirun_config(command: list[str], sweep_dir: Path) -> int:
    """Run the resumed sweep; Hydra rewrites multirun.yaml, so the original is put back and the
    resume's kept beside it. A signal to this process is passed on to the sweep, which stops."""
    from trainer.run.interruption import STOP_SIGNALS  # transformers: for this command only

    multirun_config = SweepDirectory(sweep_dir).multirun_config
    original = multirun_config.read_bytes()
    # Its own session: Ctrl-C reaches it once, through this process, not twice (a second stops at once).
    sweep = subprocess.Popen(command, start_new_session=True)
    previous = {
        signum: signal.signal(signum, lambda signum, frame: sweep.send_signal(signum)) for signum in STOP_SIGNALS
    }
    try:
        return sweep.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if multirun_config.read_bytes() != original:
            multirun_config.replace(SweepDirectory(sweep_dir).resume_record)
            multirun_config.write_bytes(original)
