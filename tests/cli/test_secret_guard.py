"""A preview.remote.token_env that is no variable name is refused without being repeated, before
anything is written."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from trainer.cli.secret_guard import refuse_secrets
from trainer.config.validate import token_env_problems, validate_config
from trainer.errors import ConfigError
from trainer.facts import gather_facts
from trainer.run.outcome import EXIT_USER_ERROR

SECRET = "sk-live-9f8e7d6c5b4a"


@pytest.mark.parametrize("name", [None, "PREVIEW_TOKEN", "_token2", "hf", "MY_INFERENCE_SERVER_TOKEN_2024"])
def test_variable_names_are_accepted(name):
    assert token_env_problems(name) == []


@pytest.mark.parametrize(
    "value", [SECRET, "hf_abc def", "2TOKEN", "", "TOKEN\n", "hf_AbCdEfGh12", "aB3dEfGhIjKlMnOpQrStUv"]
)
def test_anything_else_is_refused_without_repeating_it(value):
    (problem,) = token_env_problems(value)
    assert "NAME of an environment variable" in problem
    assert value.strip() == "" or value.strip() not in problem


def test_validation_refuses_it_for_runs_started_from_python(make_config):
    with pytest.raises(ConfigError) as caught:
        validate_config(make_config(f"preview.remote.token_env={SECRET}"), gather_facts())
    assert SECRET not in str(caught.value)


def test_a_sweep_value_is_checked_though_no_composed_config_holds_it():
    # A sweep's base config lacks its swept values; they are only in the overrides.
    config = OmegaConf.create(
        {
            "preview": {"remote": {"token_env": None}},
            "hydra": {"overrides": {"task": [f"preview.remote.token_env=OK,{SECRET}"]}},
        }
    )
    with pytest.raises(ConfigError):
        refuse_secrets(config)


@pytest.mark.parametrize("mode", [[], ["--multirun"]], ids=["run", "multirun"])
def test_the_cli_refuses_it_before_writing_anything(tmp_path, mode):
    completed = subprocess.run(
        [sys.executable, "-m", "trainer", *mode, f"preview.remote.token_env={SECRET}",
         f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = completed.stdout + completed.stderr
    assert completed.returncode == EXIT_USER_ERROR, output
    assert output.startswith("Invalid configuration: preview.remote.token_env must be the NAME")
    assert SECRET not in output
    assert list(tmp_path.iterdir()) == []
