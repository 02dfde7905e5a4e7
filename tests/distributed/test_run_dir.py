"""How the ranks of a torchrun job agree on one run directory, before Hydra starts."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from trainer.cli.argv import rank_overrides
from trainer.errors import ConfigError
from trainer.run.overrides import hydra_override
from trainer.run.rendezvous import LaunchedRank

TORCHRUN_RANK_1 = {
    "RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "localhost", "MASTER_PORT": "29500",
    "TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_RESTART_COUNT": "0",
}  # fmt: skip


def test_a_single_process_is_no_rank_and_keeps_its_arguments():
    assert LaunchedRank.from_environment({}) is None
    assert LaunchedRank.from_environment({"WORLD_SIZE": "1", "RANK": "0"}) is None
    assert rank_overrides(None, ["train.max_steps=4"]) == []


def test_other_ranks_given_a_run_directory_only_leave_the_hydra_record_to_rank_zero():
    rank = LaunchedRank.from_environment(TORCHRUN_RANK_1)
    assert rank_overrides(rank, ["hydra.run.dir=/runs/a"]) == ["hydra.output_subdir=null"]


def test_rank_zero_decides_the_run_directory_itself():
    rank = LaunchedRank.from_environment(TORCHRUN_RANK_1 | {"RANK": "0"})
    assert rank_overrides(rank, []) == []


def test_a_sweep_under_torchrun_is_refused():
    rank = LaunchedRank.from_environment(TORCHRUN_RANK_1)
    with pytest.raises(ConfigError, match=r"distributed\.nproc_per_node"):
        rank_overrides(rank, ["--multirun", "train.learning_rate=1e-3,2e-3"])


def test_a_launcher_without_torchruns_store_needs_an_explicit_run_directory():
    rank = LaunchedRank.from_environment(TORCHRUN_RANK_1 | {"TORCHELASTIC_USE_AGENT_STORE": "False"})
    with pytest.raises(ConfigError, match=r"pass the same hydra\.run\.dir=DIR to every rank"):
        rank_overrides(rank, [])


@pytest.mark.parametrize("path", ["/runs/2026-11-30/12-00-00-000001", "/my runs/a,b", "/it's/here"])
def test_a_run_directory_reaches_hydra_unchanged(path):
    override = OverridesParser.create().parse_override(hydra_override("hydra.run.dir", path))
    assert override.value() == path
