"""Composition of conf/ over the TrainerConfig schema."""

from __future__ import annotations

import re
from dataclasses import fields, replace

import pytest
from hydra.errors import ConfigCompositionException

from trainer.config.load import to_trainer_config
from trainer.config.schema import DataConfig, ModelConfig, PrecisionConfig, ProfileConfig, TrainConfig, TrainerConfig
from trainer.config.validate import validate_config
from trainer.errors import ConfigError
from trainer.facts import gather_facts


def test_default_composition_is_a_typed_trainer_config(make_config):
    config = make_config()
    assert isinstance(config, TrainerConfig)
    assert isinstance(config.model, ModelConfig)
    assert (config.model.name, config.profile.name, config.precision.name, config.preview.backend) == (
        "tiny",
        "plain",
        "fp32",
        "none",
    )


def test_yaml_defaults_equal_the_python_defaults(make_config):
    """Running from Python with TrainerConfig() trains exactly what `python -m trainer` trains."""
    composed = make_config()
    python_default = replace(
        TrainerConfig(), run=composed.run, model=replace(ModelConfig(), cache_dir=composed.model.cache_dir)
    )
    assert composed == python_default


def test_group_options_and_overrides_reach_their_sections(make_config):
    config = make_config("precision=bf16", "model=qwen3-0.6b", "model.path=/models/q", "train.learning_rate=1e-4")
    assert config.precision == PrecisionConfig(name="bf16")
    assert (config.model.source, config.model.path) == ("pretrained", "/models/q")
    assert config.train.learning_rate == pytest.approx(1e-4)
    assert config.profile == ProfileConfig()


@pytest.mark.parametrize("override", ["train.learnin_rate=1e-4", "train.learning_rate=fast", "precision=fp8"])
def test_unknown_keys_and_wrong_types_are_rejected_at_compose(compose_dictconfig, override):
    with pytest.raises(ConfigCompositionException):
        compose_dictconfig([override])


def test_run_dirs_are_timestamped_to_the_microsecond(compose_dictconfig):
    hydra = compose_dictconfig(return_hydra_config=True).hydra
    assert re.fullmatch(r"outputs/\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d-\d{6}", hydra.run.dir)
    assert re.fullmatch(r"multirun/\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d", hydra.sweep.dir)


def test_keys_added_with_plus_are_config_errors_naming_what_is_allowed(compose_dictconfig):
    cfg = compose_dictconfig(["+unknown_section.key=1", "+train.extra=1", "+model.tiny.depth=3", "run.output_dir=x"])
    with pytest.raises(ConfigError) as caught:
        to_trainer_config(cfg)
    assert caught.value.problems == [
        "unknown key 'model.tiny.depth'; model.tiny accepts hidden_size, num_hidden_layers, num_attention_heads, "
        "num_key_value_heads, intermediate_size, max_position_embeddings, vocab_size, init_seed",
        "unknown key 'train.extra'; train accepts " + ", ".join(field.name for field in fields(TrainConfig)),
        "unknown key 'unknown_section'; the top level accepts "
        + ", ".join(field.name for field in fields(TrainerConfig)),
    ]


@pytest.mark.parametrize(
    ("preset", "node", "target"),
    [
        ("hparams_search=optuna_lr", "sweeper", "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"),
        ("launcher=joblib", "launcher", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
        ("launcher=slurm", "launcher", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
    ],
)
def test_sweep_presets_compose_and_validate(compose_dictconfig, preset, node, target, tmp_path):
    hydra = compose_dictconfig([preset], return_hydra_config=True).hydra
    assert hydra[node]._target_ == target
    validate_config(to_trainer_config(compose_dictconfig([preset, f"run.output_dir={tmp_path}"])), gather_facts())


def test_data_max_length_follows_the_model_in_python_as_in_yaml(make_config):
    """`data.max_length` defaults to `model.max_length` without Hydra too; set, it wins."""
    assert TrainerConfig(model=ModelConfig(max_length=64)).data.max_length == 64
    assert TrainerConfig(model=ModelConfig(max_length=64), data=DataConfig(max_length=32)).data.max_length == 32
    assert make_config("model.max_length=64").data.max_length == 64
    assert make_config("model.max_length=64", "data.max_length=null").data.max_length == 64
