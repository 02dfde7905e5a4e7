"""`python -m trainer`: compose the config with Hydra, run the job, exit with its outcome."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from trainer.config import register_schema, to_trainer_config
from trainer.errors import ConfigError
from trainer.result import EXIT_USER_ERROR
from trainer.sweep.metrics import objective

log = logging.getLogger("trainer")


def config_dir() -> str:
    """conf/ inside an installed wheel, else the repository's conf/ (editable installs)."""
    packaged = Path(__file__).parent / "conf"
    return str(packaged if packaged.is_dir() else Path(__file__).parents[2] / "conf")


register_schema()


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def run(cfg: DictConfig) -> float:
    try:
        config = to_trainer_config(cfg)
    except ConfigError as error:
        log.error("%s", error)
        sys.exit(EXIT_USER_ERROR)

    from trainer.sweep.jobs import run_or_reuse

    result = run_or_reuse(config)
    # The engine has logged any failure; a single run (or a fail-fast sweep) ends on it, while a
    # sweep records it in its summary and goes on.
    if not result.success and (HydraConfig.get().mode == RunMode.RUN or config.sweep.fail_fast):
        sys.exit(result.exit_code)
    return objective(result.to_dict(), config.sweep.metric)


def main() -> None:
    run()


if __name__ == "__main__":
    main()
