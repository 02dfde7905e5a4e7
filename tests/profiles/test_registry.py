"""The profile registry: one module, one registry line and one YAML file per profile."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trainer.cli.main import config_dir
from trainer.config.schema import ProfileConfig
from trainer.data.split import load_record_split
from trainer.errors import DataError
from trainer.profiles import PROFILES, build_profile


def test_every_registered_profile_has_a_yaml_and_every_yaml_a_profile():
    yaml_names = {path.stem for path in (Path(config_dir()) / "profile").glob("*.yaml")}
    assert yaml_names == set(PROFILES) == {"plain", "emoji_think", "regime3"}


@pytest.mark.parametrize("name", ["plain", "emoji_think", "regime3"])
def test_each_profile_yaml_names_its_profile_and_keeps_the_python_defaults(make_config, name):
    loaded = yaml.safe_load((Path(config_dir()) / "profile" / f"{name}.yaml").read_text())
    assert loaded["name"] == name
    assert make_config(f"profile={name}").profile == ProfileConfig(name=name)


@pytest.mark.parametrize("name", ["plain", "emoji_think", "regime3"])
def test_the_profile_metadata_names_it_and_its_version(name):
    assert build_profile(ProfileConfig(name=name), seed=0).metadata() == {"name": name, "version": "1"}


def test_plain_applies_only_the_system_prompt():
    example = {"messages": [{"role": "user", "content": "Q <think>"}, {"role": "assistant", "content": "A"}]}
    result = build_profile(ProfileConfig(name="plain"), seed=0).transform_example(example, 3, "SYS")
    assert result == {"messages": [{"role": "system", "content": "SYS"}, *example["messages"]]}


@pytest.mark.parametrize("name", ["emoji_think", "regime3"])
def test_bad_examples_are_reported_with_their_file_line_index_and_problem(make_config, tmp_path, name):
    data = tmp_path / "bad.jsonl"
    data.write_text(
        '{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}\n'
        '{"messages": [{"role": "robot", "content": "Q"}]}\n'
        '{"messages": []}\n'
    )
    config = make_config(f"profile={name}", f"data.train={data}")
    with pytest.raises(DataError) as caught:
        load_record_split(config.data, build_profile(config.profile, config.seed), config.seed)
    assert caught.value.problems == [
        f"{data}:2 (example 1): messages[0].role must be one of system, user, assistant, tool (got 'robot')",
        f"{data}:3 (example 2): 'messages' must be a non-empty list",
    ]
