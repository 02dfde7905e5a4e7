"""`distributed.nproc_per_node=N`: the job starts torchrun itself (the way LLaMA-Factory re-launches
under torchrun) with N processes on this machine, all writing into this job's run directory, so a
`--multirun` sweep of multi-process jobs is a sweep like any other. No torch import here: the
parent process only waits for torchrun and reads the job's result.json."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from trainer.config import TrainerConfig
from trainer.distributed.run_dir import hydra_override
from trainer.result import TrainingResult
from trainer.run_dir import RunDirectory

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
    run_dir = RunDirectory(Path(config.run.output_dir))
    # A result left by an earlier attempt must not pass for this one's.
    run_dir.result_file.unlink(missing_ok=True)
    command = torchrun_command(config, overrides, config_name)
    log.info("Starting %d processes with torchrun: %s", config.distributed.nproc_per_node, " ".join(command))
    completed = subprocess.run(command, check=False)
    if (result := run_dir.read_result()) is not None:
        return TrainingResult(**result)
    return TrainingResult(
        success=False,
        error_message=f"torchrun exited with status {completed.returncode} before rank 0 wrote {run_dir.result_file}",
        error_type="launch_failed",
    )
