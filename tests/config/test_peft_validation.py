"""The peft section is checked before any model loads; qlora is refused where it cannot run."""

from __future__ import annotations

import pytest
import torch

from trainer.config.validate import validate_config
from trainer.errors import ConfigError
from trainer.facts import gather_facts
from trainer.run.outcome import EXIT_USER_ERROR

NO_CUDA = not torch.cuda.is_available()


def problems_of(config) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_config(config, gather_facts())
    return caught.value.problems


@pytest.mark.parametrize("option", ["none", "lora"])
def test_none_and_lora_are_valid_everywhere(make_config, option):
    validate_config(make_config(f"peft={option}"), gather_facts())


def test_bad_lora_settings_are_all_reported(make_config):
    assert problems_of(make_config("peft=lora", "peft.r=0", "peft.dropout=1.0", "peft.target_modules=[]")) == [
        "peft.r must be > 0 (got 0)",
        "peft.dropout must be in [0, 1) (got 1.0)",
        "peft.target_modules must name at least one module, or be null for the architecture's default",
    ]


def test_an_unknown_method_is_named(make_config):
    assert problems_of(make_config("peft.method=dora")) == [
        "peft.method=dora is unknown; choose one of none, lora, qlora"
    ]


@pytest.mark.skipif(not NO_CUDA, reason="qlora is allowed where CUDA exists")
def test_qlora_on_cpu_exits_non_zero_with_one_clear_line(run_cli, tmp_path):
    completed = run_cli("peft=qlora", cwd=tmp_path)
    assert completed.returncode == EXIT_USER_ERROR
    output = completed.stdout + completed.stderr
    assert "Traceback" not in output
    (line,) = [line for line in output.splitlines() if "peft=qlora" in line]
    assert line.endswith(
        "Invalid configuration: peft=qlora needs a CUDA GPU (bitsandbytes 4-bit kernels) and none is available; "
        "use peft=lora"
    )
