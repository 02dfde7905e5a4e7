"""Run names from the overrides Hydra recorded: a sweep's jobs are named by what the sweep varies."""

from __future__ import annotations

from pathlib import Path

import yaml

from trainer.run.layout import RunDirectory
from trainer.run.overrides import distinguishing_overrides, session_name, tensorboard_run_name


def hydra_run(run_dir: Path, overrides: list[str], sweeper_params: dict | None = None) -> Path:
    """The files Hydra writes into a run directory, as far as run names read them."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    hydra = {"hydra": {"sweeper": {"params": sweeper_params}}}
    (run_dir / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    return run_dir


def sweep_root(sweep_dir: Path, command_line: list[str]) -> Path:
    sweep_dir.mkdir(parents=True)
    multirun = {"hydra": {"overrides": {"hydra": ["hydra.mode=MULTIRUN"], "task": command_line}}}
    (sweep_dir / "multirun.yaml").write_text(yaml.safe_dump(multirun))
    return sweep_dir


def test_a_sweep_job_is_named_by_the_keys_its_sweep_varies(tmp_path):
    sweep = sweep_root(
        tmp_path / "sweep",
        ["profile=plain,emoji_think", "train.learning_rate=1e-3,3e-3", "train.max_steps=4", "model.cache_dir=/c"],
    )
    job = hydra_run(
        sweep / "1",
        ["profile=plain", "train.learning_rate=0.003", "train.max_steps=4", "model.cache_dir=/c", "run.resume=true"],
    )
    assert tensorboard_run_name(job) == "profile=plain,train.learning_rate=0.003"
    assert session_name(job) == "1 profile=plain train.learning_rate=0.003"
    assert RunDirectory(job).tensorboard_dir == job / "tensorboard" / "profile=plain,train.learning_rate=0.003"


def test_a_searched_key_names_the_trials_of_a_sweeper_without_multirun_yaml(tmp_path):
    params = {"train.learning_rate": "tag(log, interval(1e-4, 1e-2))"}
    job = hydra_run(tmp_path / "3", ["hparams_search=optuna_lr", "train.learning_rate=0.00123"], params)
    assert distinguishing_overrides(job) == ["train.learning_rate=0.00123"]


def test_a_single_run_is_named_by_all_its_overrides_with_paths_shortened(tmp_path):
    run = hydra_run(tmp_path / "12-00-00-000001", ["profile=emoji_think", "data.train=/data/chats/big.jsonl"])
    assert tensorboard_run_name(run) == "profile=emoji_think,data.train=big.jsonl"
    assert session_name(run) == "12-00-00-000001 profile=emoji_think data.train=/data/chats/big.jsonl"


def test_a_run_without_overrides_is_named_defaults_and_one_started_from_python_run(tmp_path):
    assert tensorboard_run_name(hydra_run(tmp_path / "plain", [])) == "defaults"
    assert tensorboard_run_name(tmp_path) == "run"


def test_where_a_run_is_reported_does_not_name_it(tmp_path):
    """The `logger` choice and its keys say where a run was recorded, not what it trained: the same
    training under TensorBoard alone or beside MLflow has the same name."""
    run = hydra_run(tmp_path / "run", ["logger=[mlflow,wandb]", "logger.wandb.project=p", "profile=regime3"])
    assert tensorboard_run_name(run) == "profile=regime3"
