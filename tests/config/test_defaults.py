"""Every default lives once, in the schema: conf/train.yaml sets only what the schema cannot know
(interpolations), so a new knob is the schema's field and its consumer, and no copy can drift."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from trainer.cli.main import config_dir
from trainer.config.schema import TrainerConfig

# Hydra's own settings and the group list are not the schema's.
NOT_SCHEMA = {"defaults", "hydra"}


def leaves(node: object, prefix: str = "") -> dict[str, object]:
    if not isinstance(node, dict):
        return {prefix: node}
    return {key: value for name, child in node.items() for key, value in leaves(child, f"{prefix}{name}.").items()}


def test_conf_train_yaml_repeats_no_schema_default():
    written = OmegaConf.to_container(OmegaConf.load(Path(config_dir()) / "train.yaml"), resolve=False)
    schema = OmegaConf.to_container(OmegaConf.structured(TrainerConfig), resolve=False)
    set_here = {key.rstrip("."): value for key, value in leaves(written).items() if key.split(".")[0] not in NOT_SCHEMA}
    defaults = {key.rstrip("."): value for key, value in leaves(schema).items()}
    assert set_here, "conf/train.yaml sets no key: the test would prove nothing"
    unknown = sorted(set_here.keys() - defaults.keys())
    assert not unknown, f"conf/train.yaml sets keys the schema does not have: {unknown}"
    copies = sorted(key for key, value in set_here.items() if value == defaults[key])
    assert not copies, f"conf/train.yaml repeats the schema's defaults of {copies}: keep them in the schema only"
    assert all(str(value).startswith("${") for value in set_here.values()), set_here
