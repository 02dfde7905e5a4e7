"""A composed DictConfig turned into the typed `TrainerConfig`: unknown keys refused, values typed.

This module imports no torch or transformers: `--help` and `--cfg job` stay fast.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from trainer.config.schema import SCHEMA_NAME, TrainerConfig
from trainer.errors import ConfigError, first_line


def register_schema() -> None:
    """Register `TrainerConfig` as the schema that `conf/train.yaml` composes over."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA_NAME, node=TrainerConfig)


def to_trainer_config(cfg: DictConfig) -> TrainerConfig:
    """Turn a composed DictConfig into the typed `TrainerConfig`, resolving interpolations."""
    try:
        if unknown := unknown_keys(cfg, TrainerConfig):
            raise ConfigError(
                [f"unknown key '{key}'; {section} accepts {allowed}" for key, section, allowed in unknown]
            )
        config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainerConfig), cfg))
    except OmegaConfBaseException as error:
        # An interpolation that resolves to nothing, or to a value of the wrong type.
        raise ConfigError([f"{error.full_key}: {first_line(error)}"]) from error
    assert isinstance(config, TrainerConfig)
    return config


def unknown_keys(node: DictConfig, schema: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, section, allowed keys) for each key the schema lacks. Hydra's `+key=value` adds keys
    even to typed sections, and `to_object` would silently drop them."""
    known = {item.name: item.type for item in fields(schema)}
    found = []
    for key in node:
        path = f"{prefix}{key}"
        if key not in known:
            found.append((path, prefix.rstrip(".") or "the top level", ", ".join(known)))
        elif isinstance(child := node[key], DictConfig) and is_dataclass(child_type := OmegaConf.get_type(child)):
            found += unknown_keys(child, child_type, f"{path}.")
    return found
