"""The command line Hydra gets for `resume=DIR` and `python -m trainer.sweep resume=DIR`: every
directory reaches Hydra as it is named, whatever characters its path holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from trainer.cli.argv import refuse_unselected_tracker_keys
from trainer.errors import UserError
from trainer.run.resume import resume_command, rewrite_resume_arguments

AWKWARD_NAMES = ["plain", "my runs", "lr=1e-3,2e-3", "it's"]


def parsed(arguments: list[str]) -> dict[str, object]:
    overrides = OverridesParser.create().parse_overrides([item for item in arguments if not item.startswith("-")])
    return {override.key_or_group: override.value() for override in overrides}


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_a_resumed_run_directory_reaches_hydra_unchanged(tmp_path, name):
    run_dir = tmp_path / name
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("train:\n  max_steps: 4\n")
    arguments = rewrite_resume_arguments(["--cfg", f"resume={run_dir}", "train.max_steps=8"])
    assert arguments[0] == "--cfg"
    assert parsed(arguments) == {
        "train.max_steps": 8,
        "hydra.run.dir": str(run_dir),
        "hydra.output_subdir": ".hydra/resume",
        "run.resume": True,
    }


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_a_resumed_sweep_directory_reaches_hydra_unchanged(tmp_path, name):
    sweep_dir = tmp_path / name
    sweep_dir.mkdir()
    (sweep_dir / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task: ['train.learning_rate=1e-4,2e-4', 'hydra.sweep.dir=old']\n"
    )
    command = resume_command(sweep_dir, ["train.max_steps=8"])
    assert command[1:4] == ["-m", "trainer", "--multirun"]
    assert parsed(command[4:])["hydra.sweep.dir"] == str(sweep_dir)


def test_a_command_line_without_resume_is_left_alone():
    assert rewrite_resume_arguments(["-m", "train.learning_rate=1e-4,2e-4"]) == ["-m", "train.learning_rate=1e-4,2e-4"]


def test_resume_with_multirun_points_to_the_sweep_resume(tmp_path):
    with pytest.raises(UserError, match=r"use `python -m trainer\.sweep resume="):
        rewrite_resume_arguments(["--multirun", f"resume={tmp_path}"])


def test_resume_of_a_directory_without_a_saved_config_is_refused(tmp_path):
    with pytest.raises(UserError, match=r"is not a run directory"):
        rewrite_resume_arguments([f"resume={Path(tmp_path)}"])


@pytest.mark.parametrize(
    "arguments",
    [["logger.mlflow.experiment=x"], ["logger=wandb", "logger.mlflow.tracking_uri=http://h:5000"]],
)
def test_a_key_of_a_tracker_that_is_not_selected_is_refused_naming_the_choice(arguments):
    with pytest.raises(UserError, match=r"add logger=(mlflow|wandb)"):
        refuse_unselected_tracker_keys(arguments)


def test_keys_of_selected_trackers_pass():
    refuse_unselected_tracker_keys(["logger=[mlflow,wandb]", "logger.mlflow.experiment=x", "logger.wandb.mode=offline"])
