"""Data sources beyond one local file: a directory laid out like a Hub dataset repository (data
files and a README.md with `configs:`) and a Hub dataset id both go through `load_dataset`, with
the source's subset, split and revision; what cannot be loaded is one line naming the source."""

from __future__ import annotations

import json

import pytest

from tests.data.repositories import chat
from tests.helpers import problems_of
from trainer.config.schema import DataConfig, ProfileConfig
from trainer.data.sources import check_repositories
from trainer.data.split import load_record_split
from trainer.engine import TrainerEngine
from trainer.errors import DataError
from trainer.profiles.plain import PlainProfile
from trainer.run.layout import RunDirectory
from trainer.run.outcome import EXIT_USER_ERROR
from trainer.run.resume import refuse_resume

PROFILE = PlainProfile(ProfileConfig(), seed=0)


def first_user_turns(table) -> list[str]:
    return [record.example["messages"][0]["content"] for _, record in table]


def test_a_repository_subset_and_split_are_read_by_path(repository):
    config = DataConfig(
        train={"path": str(repository), "subset": "alpaca"},
        validation={"path": str(repository), "subset": "alpaca", "split": "validation"},
    )
    split = load_record_split(config, PROFILE, seed=0)
    assert first_user_turns(split.train) == [f"alpaca train {number}" for number in range(8)]
    assert first_user_turns(split.validation) == ["alpaca validation 0", "alpaca validation 1"]


def test_a_repository_without_keys_reads_its_default_config_and_the_train_split(repository):
    split = load_record_split(DataConfig(train=str(repository), validation_max_samples=2), PROFILE, seed=0)
    assert sorted(first_user_turns(split.train) + first_user_turns(split.validation)) == sorted(
        f"chat train {number}" for number in range(12)
    )


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"split": "test"}, "(split test): Unknown split \"test\". Should be one of ['train', 'validation']."),
        (
            {"subset": "nope"},
            "(subset nope, split train): BuilderConfig 'nope' not found. Available: ['chat', 'alpaca']",
        ),
    ],
)
def test_a_split_or_subset_that_does_not_exist_is_one_line_naming_the_source(repository, keys, message):
    with pytest.raises(DataError) as raised:
        load_record_split(DataConfig(train={"path": str(repository), **keys}), PROFILE, seed=0)
    assert raised.value.problems == [f"{repository} {message}"]


def test_a_bad_row_is_named_by_its_source_and_row(repository):
    (repository / "chat" / "train.jsonl").write_text(json.dumps(chat("train", 0)) + "\n" + '{"body": "?"}\n')
    with pytest.raises(DataError) as raised:
        load_record_split(DataConfig(train=str(repository)), PROFILE, seed=0)
    [problem] = raised.value.problems
    assert problem.startswith(f"{repository} (split train) row 2 (example 1): expected 'messages'")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("{path: REPO, splt: train}", "data.train has unknown key(s) 'splt'; a source takes path, subset, split, revision, weight, examples"),
        ("{subset: chat}", "data.train needs a 'path': a file, a directory or a Hub dataset id"),
        ("''", "data.train is empty: name a file, a directory or a Hub dataset id"),
        ("{path: FILE, split: train}", "data.train: split select(s) within a dataset repository or Hub dataset, not within the file FILE; remove it"),
    ],
)  # fmt: skip
def test_a_malformed_source_is_refused_before_anything_runs(make_config, repository, value, problem):
    file = repository / "chat" / "train.jsonl"
    value, problem = (text.replace("REPO", str(repository)).replace("FILE", str(file)) for text in (value, problem))
    assert problems_of(make_config(f"data.train={value}")) == [problem]


def test_an_uncached_hub_id_offline_is_one_line_naming_it_and_what_to_do(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    result = run_cli(
        "data.train={path: someone/chats, revision: v1}", f"run.output_dir={tmp_path / 'run'}", cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    [line] = [line for line in (result.stdout + result.stderr).splitlines() if "ERROR" in line]
    assert "someone/chats (split train, revision v1): not in the local datasets cache" in line
    assert "unset HF_DATASETS_OFFLINE" in line and "Traceback" not in result.stdout + result.stderr
    # Refused before the run directory is claimed: nothing is written.
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"split": "test"}, "(split test): Unknown split \"test\". Should be one of ['train', 'validation']."),
        ({"subset": "nope"}, "(subset nope, split train): BuilderConfig 'nope' not found. Available: ['chat', 'alpaca']"),
    ],
)  # fmt: skip
def test_a_missing_split_or_subset_is_refused_before_the_run_directory_is_made(make_config, repository, tmp_path, keys, message):  # fmt: skip
    train = "{" + ", ".join(f"{key}: {value}" for key, value in {"path": repository, **keys}.items()) + "}"
    result = TrainerEngine().run_job(make_config(f"data.train={train}", "data.validation_max_samples=2"))
    assert (result.error_type, result.user_error, result.exit_code) == ("data_error", True, EXIT_USER_ERROR)
    assert result.error_message == f"Invalid data: {repository} {message}"
    assert not (tmp_path / "run").exists()


def test_every_missing_split_is_named_at_once(repository):
    train = {"path": str(repository), "split": "test"}
    validation = {"path": str(repository), "subset": "alpaca", "split": "dev"}
    with pytest.raises(DataError) as raised:
        check_repositories(DataConfig(train=train, validation=validation))
    assert [problem.split(":")[0] for problem in raised.value.problems] == [
        f"{repository} (split test)",
        f"{repository} (subset alpaca, split dev)",
    ]


def test_a_resume_whose_repository_lost_its_split_is_refused_before_hydra_writes_into_the_run(
    make_config, repository, tmp_path
):
    train = "{" + f"path: {repository}, split: test" + "}"
    run_dir = RunDirectory(tmp_path / "run")
    with pytest.raises(DataError, match=r"\(split test\): Unknown split"):
        refuse_resume(make_config(f"data.train={train}", "run.resume=true"), run_dir)
    assert not run_dir.root.exists()
