"""conf/hydra/job_logging/trainer.yaml names the console formatter by this path."""

from trainer.cli.errors import ConsoleFormatter

__all__ = ["ConsoleFormatter"]
