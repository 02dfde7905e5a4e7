"""One run directory for every rank of a torchrun job. Each rank's Hydra would stamp its own
`outputs/<date>/<time>`; instead rank 0's Hydra picks the directory and puts it in the key-value
store of torchrun's agent (the one the process group is later built on), and the other ranks
read it from there before their Hydra starts and get it as `hydra.run.dir` (trainer.cli.argv).

Only the entrypoint uses this module: it reads the launcher's environment. It imports no torch
unless it runs under a launcher, so `--help` stays fast."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

# Long enough for rank 0 to start Python and compose the config on a busy machine.
RUN_DIR_WAIT = timedelta(minutes=5)


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


def publish_run_dir(rank: LaunchedRank | None, run_dir: str) -> None:
    """Rank 0: tell the waiting ranks the run directory its Hydra chose."""
    if rank is not None and rank.rank == 0 and rank.agent_store:
        rank.store().set(rank.run_dir_key, run_dir)


def published_run_dir(rank: LaunchedRank) -> str:
    """The run directory rank 0 published, waiting for it up to `RUN_DIR_WAIT`."""
    return rank.store().get(rank.run_dir_key).decode()
