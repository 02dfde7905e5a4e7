"""`distributed.nproc_per_node=N`: the job starts torchrun itself (the way LLaMA-Factory re-launches
under torchrun) with N processes on this machine, all writing into this job's run directory, so a
`--multirun` sweep of multi-process jobs is a sweep like any other. The parent process validates
the config, waits for torchrun and reads the job's result.json; it never trains or touches a GPU."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from trainer.config.schema import TrainerConfig
from trainer.errors import ConfigError
from trainer.run.layout import RunDirectory
from trainer.run.outcome import TrainingResult, record_refusal
from trainer.run.overrides import hydra_override

log = logging.getLogger(__name__)


def torchrun_command(config: TrainerConfig, overrides: list[str], config_name: str) -> list[str]:
    """torchrun running this job again, with the job's own overrides, into the job's run directory.
    --standalone: a free local port per job, so parallel jobs of a sweep never collide."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={config.distributed.nproc_per_node}",
        "-m",
        "trainer",
        f"--config-name={config_name}",
        *overrides,
        hydra_override("hydra.run.dir", config.run.output_dir),
        # This process already recorded the composed config in .hydra/.
        "hydra.output_subdir=null",
    ]


def run_under_torchrun(config: TrainerConfig, overrides: list[str], config_name: str) -> TrainingResult:
    """Run the job in `nproc_per_node` processes and return the result its rank 0 wrote."""
    from trainer.config.validate import validate_config
    from trainer.facts import gather_facts

    run_dir = RunDirectory(Path(config.run.output_dir))
    try:
        # Here, once: a config mistake is one line, not one per rank plus torchrun's own report.
        validate_config(config, gather_facts())
    except ConfigError as error:
        log.error("%s", error)
        return record_refusal(
            run_dir,
            TrainingResult(success=False, error_message=str(error), error_type=error.error_type, user_error=True),
        )
    command = torchrun_command(config, overrides, config_name)
    log.info("Starting %d processes with torchrun: %s", config.distributed.nproc_per_node, " ".join(command))
    earlier_result = result_version(run_dir)
    run_dir.hand_over_claim()
    completed = subprocess.run(command, check=False)
    # A resumed run's result.json is its earlier outcome until rank 0 writes this job's. Rank 0
    # leaves it as it is for a run already complete (torchrun then succeeds) and for a job it
    # refuses (its console says why).
    written = completed.returncode == 0 or result_version(run_dir) != earlier_result
    if written and (result := run_dir.read_result()) is not None:
        return TrainingResult(**result)
    message = f"torchrun exited with status {completed.returncode} before rank 0 wrote {run_dir.result_file}"
    return record_refusal(run_dir, TrainingResult(success=False, error_message=message, error_type="launch_failed"))


def result_version(run_dir: RunDirectory) -> tuple[int, int] | None:
    """Which write of result.json the directory holds (None: none): each write replaces the file."""
    try:
        stat = run_dir.result_file.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns
