"""One run directory for every rank of a torchrun job. Each rank's Hydra would stamp its own
`outputs/<date>/<time>`; instead rank 0's Hydra picks the directory and puts it in the key-value
store of torchrun's agent (the one the process group is later built on), and the other ranks
read it from there before their Hydra starts and get it as `hydra.run.dir`.

Only the entrypoint uses this module: it reads the launcher's environment. It imports no torch
unless it runs under a launcher, so `--help` stays fast."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from trainer.errors import ConfigError

# Long enough for rank 0 to start Python and compose the config on a busy machine.
RUN_DIR_WAIT = timedelta(minutes=5)
SWEEP_FLAGS = ("-m", "--multirun")
# Values Hydra's override grammar reads as they are; anything else is quoted.
PLAIN_VALUE = re.compile(r"[\w./~:+-]+")


@dataclass(frozen=True)
class LaunchedRank:
    """This process as one rank of a job that torchrun (or accelerate launch) started."""

    rank: int
    world_size: int
    master_addr: str
    master_port: int
    # torchrun's agent hosts the store the ranks share; other launchers leave rank 0 to host it.
    agent_store: bool
    # A restarted job (torchrun --max-restarts) agrees on its directory afresh.
    restart: int

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> LaunchedRank | None:
        """The rank torchrun described in the environment; None for a single process."""
        if int(environ.get("WORLD_SIZE", "1")) <= 1:
            return None
        return cls(
            rank=int(environ["RANK"]),
            world_size=int(environ["WORLD_SIZE"]),
            master_addr=environ.get("MASTER_ADDR", "localhost"),
            master_port=int(environ.get("MASTER_PORT", "0")),
            agent_store=environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True",
            restart=int(environ.get("TORCHELASTIC_RESTART_COUNT", "0")),
        )

    @property
    def run_dir_key(self) -> str:
        return f"trainer/run_dir/{self.restart}"

    def store(self):
        from torch.distributed import TCPStore

        return TCPStore(self.master_addr, self.master_port, is_master=False, timeout=RUN_DIR_WAIT)


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
        overrides.append(hydra_override("hydra.run.dir", rank.store().get(rank.run_dir_key).decode()))
    return overrides


def publish_run_dir(rank: LaunchedRank | None, run_dir: str) -> None:
    """Rank 0: tell the waiting ranks the run directory its Hydra chose."""
    if rank is not None and rank.rank == 0 and rank.agent_store:
        rank.store().set(rank.run_dir_key, run_dir)


def hydra_override(key: str, value: str) -> str:
    """`key=value` as Hydra's override grammar reads it back, quoting paths with spaces and the like."""
    if PLAIN_VALUE.fullmatch(value):
        return f"{key}={value}"
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"{key}='{escaped}'"
