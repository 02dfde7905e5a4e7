"""A composed DictConfig turned into the typed `TrainerConfig`: unknown keys refused, values typed;
a run's saved config read under today's key names first.

This module imports no torch or transformers: `--help` and `--cfg job` stay fast.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields, is_dataclass, replace
from datetime import date
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from trainer.config.schema import SCHEMA_NAME, TrainerConfig
from trainer.errors import ConfigError, first_line

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyRename:
    old: str
    new: str
    # When the key was renamed (date, version, commit): a saved config older than that has `old`.
    since: str


# Every key renamed since runs were first saved. A saved config is read with its old keys moved to
# their new names, so runs started before a rename stay resumable. Append; never remove a row.
KEY_RENAMES: tuple[KeyRename, ...] = (
    # Sweep resumes became run resumes: a job that completed is returned as it is.
    KeyRename("sweep.skip_completed", "run.resume", "2026-11-30, 0.1.0 (f8a036e)"),
)


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


def today() -> str:
    """The calendar's date, as a run started now records it in run.date: the one place a run reads
    the clock for it (tests replace it to start a run on another day)."""
    return date.today().isoformat()


def dated(config: TrainerConfig) -> TrainerConfig:
    """`config` with its run.date decided: its own (the command line records the first start's),
    else today's."""
    if config.run.date is not None:
        return config
    return replace(config, run=replace(config.run, date=today()))


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


def load_saved_config(path: Path) -> DictConfig:
    """A run's saved config (its `.hydra/config.yaml`) under today's key names."""
    return migrate_renamed_keys(OmegaConf.load(path), str(path))


def migrate_renamed_keys(config: DictConfig, source: str) -> DictConfig:
    """`config` with each key of `KEY_RENAMES` it holds moved to its new name (in place), logged.
    Keys that were never renamed are left for `to_trainer_config` to refuse."""
    for rename in KEY_RENAMES:
        old_parent, old_leaf = parent_and_leaf(config, rename.old)
        if old_parent is None or old_leaf not in old_parent:
            continue
        value = old_parent.pop(old_leaf)
        new_parent, new_leaf = parent_and_leaf(config, rename.new)
        if new_parent is not None and new_leaf in new_parent:
            log.info(
                "%s: dropped %s, renamed %s (%s), which it also holds", source, rename.old, rename.new, rename.since
            )
        else:
            OmegaConf.update(config, rename.new, value, force_add=True)
            log.info("%s: read %s as %s, its name since %s", source, rename.old, rename.new, rename.since)
    return config


def parent_and_leaf(config: DictConfig, key: str) -> tuple[DictConfig | None, str]:
    """The section holding dotted `key` (None where the config has no such section) and its last part."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(config, parent_key) if parent_key else config
    return (parent if isinstance(parent, DictConfig) else None), leaf
