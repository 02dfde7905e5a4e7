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
from trainer.run.files import write_json_atomic
from trainer.run.layout import RunDirectory
from trainer.run.outcome import TrainingResult
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
        return record(
            run_dir,
            TrainingResult(success=False, error_message=str(error), error_type=error.error_type, user_error=True),
        )
    command = torchrun_command(config, overrides, config_name)
    log.info("Starting %d processes with torchrun: %s", config.distributed.nproc_per_node, " ".join(command))
    run_dir.hand_over_claim()
    completed = subprocess.run(command, check=False)
    if (result := run_dir.read_result()) is not None:
        return TrainingResult(**result)
    message = f"torchrun exited with status {completed.returncode} before rank 0 wrote {run_dir.result_file}"
    return record(run_dir, TrainingResult(success=False, error_message=message, error_type="launch_failed"))


def record(run_dir: RunDirectory, result: TrainingResult) -> TrainingResult:
    """result.json for an outcome no rank got to write, as the engine writes one for every other."""
    write_json_atomic(run_dir.result_file, result.to_dict())
    return result
