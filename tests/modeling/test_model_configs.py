"""conf/model/: every shipped model composes and validates offline, and a bad path is named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trainer.cli.main import config_dir
from trainer.config.validate import validate_config
from trainer.errors import ConfigError
from trainer.facts import gather_facts
from trainer.modeling.adapters import LORA_TARGET_MODULES

MODEL_OPTIONS = sorted(path.stem for path in (Path(config_dir()) / "model").glob("*.yaml"))


def problems_of(config) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_config(config, gather_facts())
    return caught.value.problems


def test_the_documented_models_ship():
    assert MODEL_OPTIONS == ["llama-3.2-1b", "qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "smollm2-135m", "tiny"]


@pytest.mark.parametrize("option", MODEL_OPTIONS)
def test_every_model_config_composes_and_validates_without_a_download(make_config, option):
    config = make_config(f"model={option}")
    validate_config(config, gather_facts())
    assert config.model.name == option
    assert config.model.architecture in LORA_TARGET_MODULES
    assert config.model.trust_remote_code is False
    assert config.data.max_length == config.model.max_length


def test_cfg_job_shows_a_model_composed_over_its_family(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "trainer", "model=qwen3-4b", "peft=qlora", "--cfg", "job"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    for line in ["  name: qwen3-4b", "  architecture: qwen3", "  path: Qwen/Qwen3-4B", "  max_length: 2048"]:
        assert line in completed.stdout.splitlines()
    assert "  method: qlora" in completed.stdout.splitlines()


def test_a_model_directory_without_weights_is_named(make_config, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "tokenizer.json").write_text("{}")
    assert problems_of(make_config("model=qwen3-0.6b", f"model.path={tmp_path}")) == [
        f"model.path={tmp_path} holds no model weights (none of *.safetensors, pytorch_model*.bin)"
    ]


def test_a_tiny_model_is_built_only_in_known_families(make_config):
    assert problems_of(make_config("model.architecture=gpt2", "model.chat_template=jinja")) == [
        "model.chat_template=jinja is unknown; choose one of auto, chatml, tokenizer",
        "model.architecture=gpt2 cannot be built as a tiny model; choose one of qwen3, llama",
    ]
