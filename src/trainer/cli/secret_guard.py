"""Secrets stay out of configs and run directories: the remote preview's token is read from the
environment variable `preview.remote.token_env` names, so a value that is no variable name is most
likely the token itself. It is refused without being repeated, before Hydra records the config
in `.hydra/` (a Hydra callback), and again by validation for runs started from Python.
This module imports no torch or transformers."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from trainer.cli.errors import exit_on_error
from trainer.config.validate import TOKEN_ENV_KEY, token_env_problems
from trainer.errors import ConfigError


class SecretGuard(Callback):
    """Checks the composed config before a run's or a sweep's first file is written. Hydra turns
    a callback's exceptions into warnings, so the guard exits itself."""

    @exit_on_error()
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_secrets(config)

    @exit_on_error()
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_secrets(config)


def refuse_secrets(config: DictConfig) -> None:
    """Raise `ConfigError` for a token_env that is no variable name, in the config or in any
    override (a sweep's values are in no single composed config)."""
    # Nothing is resolved here: a broken interpolation elsewhere is the job's to report.
    values = [OmegaConf.select(config, TOKEN_ENV_KEY, throw_on_resolution_failure=False)]
    for override in OmegaConf.to_container(config.hydra.overrides.task, resolve=False):
        key, _, value = override.partition("=")
        if key.lstrip("+~") == TOKEN_ENV_KEY:
            values.append(value)
    if problems := [problem for value in values for problem in token_env_problems(value)][:1]:
        raise ConfigError(problems)
