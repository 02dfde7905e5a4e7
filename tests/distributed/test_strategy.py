"""distributed.strategy as the HF Trainer's own settings, and its checks."""

from __future__ import annotations

import pytest
import torch

from trainer.config.validate import validate_config
from trainer.errors import ConfigError
from trainer.facts import gather_facts
from trainer.precision import plan_precision
from trainer.run.layout import RunDirectory
from trainer.training import build_training_arguments


def training_arguments(config, tmp_path, monkeypatch):
    # The Trainer's FSDP set-up exports this variable; monkeypatch puts it back afterwards.
    monkeypatch.setenv("FSDP_CPU_RAM_EFFICIENT_LOADING", "false")
    return build_training_arguments(config, RunDirectory(tmp_path), plan_precision("fp32"), has_validation=True)


def test_fsdp_composes_into_the_trainers_fsdp2_plugin_settings(make_config, tmp_path, monkeypatch):
    config = make_config("distributed.strategy=fsdp", "distributed.fsdp.reshard_after_forward=false")
    arguments = training_arguments(config, tmp_path, monkeypatch)
    assert arguments.fsdp is True
    plugin = arguments.fsdp_plugin_args
    assert plugin["fsdp_version"] == 2
    assert plugin["reshard_after_forward"] is False
    assert plugin["state_dict_type"] == "FULL_STATE_DICT"
    assert "cpu_offload" not in plugin


def test_ddp_leaves_fsdp_off(make_config, tmp_path, monkeypatch):
    arguments = training_arguments(make_config(), tmp_path, monkeypatch)
    assert not arguments.fsdp and arguments.fsdp_plugin_args is None
    assert arguments.ddp_find_unused_parameters is False


@pytest.mark.skipif(torch.cuda.is_available(), reason="FSDP is allowed where CUDA exists")
def test_fsdp_without_cuda_is_refused_instead_of_quietly_running_ddp(make_config):
    with pytest.raises(ConfigError, match=r"distributed\.strategy=fsdp needs CUDA GPUs"):
        validate_config(make_config("distributed.strategy=fsdp"), gather_facts())


def test_every_distributed_mistake_is_reported_at_once(make_config, tmp_path):
    config = make_config(
        "distributed.strategy=zero3",
        "distributed.nproc_per_node=0",
        "distributed.fsdp.state_dict_type=LOCAL",
        f"distributed.deepspeed={tmp_path / 'ds.json'}",
    )
    with pytest.raises(ConfigError) as raised:
        validate_config(config, gather_facts())
    problems = "\n".join(raised.value.problems)
    assert "distributed.strategy=zero3 is unknown; choose one of ddp, fsdp" in problems
    assert "distributed.nproc_per_node must be >= 1 (got 0)" in problems
    assert "distributed.fsdp.state_dict_type=LOCAL is unknown" in problems
    assert f"distributed.deepspeed={tmp_path / 'ds.json'} does not exist" in problems
