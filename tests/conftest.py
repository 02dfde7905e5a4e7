"""Shared fixtures: the real composed config, pointed at temporary directories."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from tests.helpers import RUN_DATE, trainer_command
from trainer.cli.main import config_dir
from trainer.config.load import register_schema, to_trainer_config
from trainer.config.schema import TrainerConfig


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny-model cache for the whole session, outside the user's home."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(autouse=True, scope="session")
def private_cache_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The tokenized-data cache's default home ($XDG_CACHE_HOME) moved out of the user's home;
    HF_HOME, which also defaults under it, stays where it was."""
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    os.environ.setdefault("HF_HOME", os.path.join(xdg, "huggingface"))
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


@pytest.fixture(scope="session")
def compose_dictconfig() -> Callable[..., DictConfig]:
    register_schema()

    def compose_with(overrides: list[str] | None = None, return_hydra_config: bool = False) -> DictConfig:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            return compose("train", overrides=overrides or [], return_hydra_config=return_hydra_config)

    return compose_with


@pytest.fixture
def make_config(
    compose_dictconfig: Callable[..., DictConfig], tmp_path: Path, model_cache: Path
) -> Callable[..., TrainerConfig]:
    """The real composed config with `overrides`, writing into this test's tmp_path, dated RUN_DATE
    (as the command line dates a run) unless `overrides` give run.date."""

    def make(*overrides: str) -> TrainerConfig:
        paths = [f"run.output_dir={tmp_path / 'run'}", f"model.cache_dir={model_cache}", f"run.date={RUN_DATE}"]
        return to_trainer_config(compose_dictconfig([*paths, *overrides]))

    return make


@pytest.fixture(scope="session")
def run_cli(model_cache: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`python -m trainer ARGS` in a subprocess, as a user would run it: the one runner of the tests
    that spawn the command line (`trainer_command` builds its command line, for `Popen`)."""

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
        return subprocess.run(
            trainer_command(model_cache, *args), cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )

    return run


# Run only when selected with `-m`: checks that take minutes, left out of the default suite
# (`.ci/run`), which keeps a representative of each (one kill -9 resume, one sweep, one DPO run).
ON_REQUEST = {
    "fuzz": "long fuzzing budget: run with -m fuzz",
    "long": "a long end-to-end check: run with -m long",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = config.option.markexpr or ""
    for marker, reason in ON_REQUEST.items():
        if marker in selected:
            continue
        for item in items:
            if marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))
