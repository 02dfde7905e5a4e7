"""Semantic checks before any model loads: every problem at once, in words a user can act on."""

from __future__ import annotations

import functools

import pytest
import torch

from tests.helpers import problems_of
from trainer.config.schema import TrainConfig, TrainerConfig
from trainer.config.validate import settings, validate_config
from trainer.engine import TrainerEngine
from trainer.errors import ConfigError
from trainer.facts import gather_facts
from trainer.precision import precision_warning
from trainer.run.outcome import EXIT_USER_ERROR

NO_CUDA = not torch.cuda.is_available()


def test_the_default_config_is_valid(make_config):
    validate_config(make_config(), gather_facts())


def test_every_problem_is_reported_in_one_error(make_config, tmp_path):
    config = make_config(
        "train.learning_rate=0",
        "train.per_device_train_batch_size=0",
        f"data.train={tmp_path / 'missing.jsonl'}",
        "profile.name=nonexistent",
    )
    problems = problems_of(config)
    assert problems == [
        f"data.train={tmp_path / 'missing.jsonl'} does not exist",
        "profile.name=nonexistent is unknown; choose one of plain, emoji_think, regime3",
        "train.learning_rate must be > 0 (got 0.0)",
        "train.per_device_train_batch_size must be > 0 (got 0)",
    ]
    assert str(ConfigError(problems)).startswith("Invalid configuration (4 problems):\n  - data.train=")


def test_pretrained_model_needs_an_existing_local_path(make_config, tmp_path):
    assert problems_of(make_config("model=qwen3-0.6b", "model.path=null")) == [
        "model.path is required for model=qwen3-0.6b: a local directory or a hub id"
    ]
    missing = tmp_path / "no-such-model"
    assert problems_of(make_config("model=qwen3-0.6b", f"model.path={missing}")) == [
        f"model.path={missing} does not exist or is not a directory"
    ]


def test_a_hub_id_is_accepted_for_users_who_are_online(make_config):
    validate_config(make_config("model=qwen3-0.6b"), gather_facts())


def test_unsupported_data_format_is_named(make_config, tmp_path):
    data = tmp_path / "chats.txt"
    data.write_text("hello\n")
    assert problems_of(make_config(f"data.train={data}")) == [
        f"data.train={data} has an unsupported format; use .jsonl, .json, .parquet (JSON ones also compressed: "
        ".gz, .bz2, .xz, .zst, .lz4), a directory written by datasets' save_to_disk, or a dataset repository "
        "(README.md with configs:)"
    ]


@pytest.mark.skipif(not NO_CUDA, reason="fp16 is allowed where CUDA exists")
def test_fp16_without_cuda_is_refused(make_config):
    (problem,) = problems_of(make_config("precision=fp16"))
    assert problem.startswith("precision=fp16 needs a CUDA GPU")
    assert "precision=fp32" in problem


@pytest.mark.skipif(not NO_CUDA or torch.cpu._is_amx_tile_supported(), reason="needs a CPU without AMX")
def test_bf16_on_a_cpu_without_amx_is_allowed_with_a_warning(make_config):
    validate_config(make_config("precision=bf16"), gather_facts())
    assert "emulated" in precision_warning("bf16")
    assert precision_warning("fp32") is None


def test_monitoring_knobs_are_checked(make_config):
    config = make_config(
        "monitoring.status_interval_sec=-1", "monitoring.loss_window=2", "monitoring.alert_loss_noise=0"
    )
    assert problems_of(config) == [
        "monitoring.alert_loss_noise must be > 0 (got 0.0)",
        "monitoring.status_interval_sec must be >= 0 (got -1.0)",
        "monitoring.loss_window must be >= 3 (got 2)",
    ]


def test_data_num_proc_is_positive_or_null(make_config):
    assert problems_of(make_config("data.num_proc=0")) == [
        "data.num_proc must be >= 1, or null for the CPU cores available (got 0)"
    ]
    validate_config(make_config("data.num_proc=3"), gather_facts())


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused(make_config, value):
    assert problems_of(make_config(f"train.learning_rate={value}")) == [
        f"train.learning_rate must be a finite number (got {float(value)})"
    ]


@pytest.mark.parametrize("steps", [0, -2])
def test_max_steps_is_positive_or_minus_one(make_config, steps):
    assert problems_of(make_config(f"train.max_steps={steps}")) == [
        f"train.max_steps must be > 0, or -1 to train for train.num_train_epochs (got {steps})"
    ]


def test_max_steps_minus_one_trains_for_the_epochs(make_config):
    validate_config(make_config("train.max_steps=-1", "train.num_train_epochs=0.5"), gather_facts())
    assert problems_of(make_config("train.max_steps=-1", "train.num_train_epochs=0")) == [
        "train.num_train_epochs must be > 0 with train.max_steps=-1 (got 0.0)"
    ]


def test_a_model_path_with_the_tiny_model_is_refused(make_config):
    (problem,) = problems_of(make_config("model.path=/models/qwen"))
    assert problem.startswith("model.path=/models/qwen is set, but model=tiny builds its own tiny model")


def test_optimizer_scheduler_and_attention_names_come_from_transformers(make_config):
    problems = problems_of(
        make_config("train.optim=adamw", "train.lr_scheduler_type=cosin", "model.attn_implementation=flash")
    )
    assert [problem.split(" is unknown")[0] for problem in problems] == [
        "model.attn_implementation=flash",
        "train.optim=adamw",
        "train.lr_scheduler_type=cosin",
    ]
    assert "adamw_torch_fused" in problems[1] and "cosine_with_min_lr" in problems[2] and "sdpa" in problems[0]
    validate_config(
        make_config("train.optim=adafactor", "train.lr_scheduler_type=linear", "model.attn_implementation=eager"),
        gather_facts(),
    )


def test_streaming_needs_max_steps_one_reader_and_no_token_budget(make_config):
    config = make_config(
        "data.streaming=true", "train.max_steps=-1", "data.packing=true", "data.tokens_per_batch=1024",
        "train.dataloader_num_workers=2", "distributed.nproc_per_node=2",
    )  # fmt: skip
    assert problems_of(config) == [
        "data.streaming=true needs train.max_steps > 0 (got -1): a stream has no length to count "
        "train.num_train_epochs in",
        "data.streaming=true cannot plan data.tokens_per_batch=1024: the budget sorts the whole data set by length; "
        "stream with data.tokens_per_batch=0 (data.packing=true works)",
        "data.streaming=true reads records in the training process (worker processes would each read the whole "
        "stream): set train.dataloader_num_workers=0 (got 2)",
        "data.streaming=true trains in one process (the stream is not sharded across ranks): "
        "set distributed.nproc_per_node=1 (got 2) or data.streaming=false",
    ]
    validate_config(make_config("data.streaming=true", "data.packing=true"), gather_facts())


def test_the_shuffle_buffer_holds_at_least_one_record(make_config):
    assert problems_of(make_config("data.shuffle_buffer=0")) == [
        "data.shuffle_buffer must be >= 1, 1 for file order (got 0)"
    ]


def test_a_value_of_the_wrong_type_from_python_is_a_config_error_naming_its_key(tmp_path):
    config = TrainerConfig(train=TrainConfig(learning_rate="fast"), data={"train": "chats.jsonl"})
    config.run.output_dir = str(tmp_path / "run")
    result = TrainerEngine().run_job(config)
    assert (result.error_type, result.exit_code) == ("config_error", EXIT_USER_ERROR)
    assert result.error_message.splitlines()[1:] == [
        "  - data must be a DataConfig section (got {'train': 'chats.jsonl'}, of type dict)",
        "  - train.learning_rate must be a number (got 'fast', of type str)",
    ]
    assert not (tmp_path / "run").exists()


def test_every_setting_names_itself_and_its_type_when_given_a_value_of_another_type(make_config):
    config = make_config()
    keys = [key for key, _ in settings(config)]
    for key in keys:
        *sections, name = key.split(".")
        setattr(functools.reduce(getattr, sections, config), name, WRONG_TYPE)
    problems = problems_of(config)
    assert [problem.split(" must be ")[0] for problem in problems] == keys
    assert all(problem.endswith(f"(got {WRONG_TYPE!r}, of type WrongType)") for problem in problems)


class WrongType:
    def __repr__(self) -> str:
        return "<wrong>"


WRONG_TYPE = WrongType()


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (
            ["data.tokens_per_batch=-8"],
            "data.tokens_per_batch must be >= 0, 0 for batches of a fixed number of examples (got -8)",
        ),
        (
            ["data.tokens_per_batch=1024", "data.packing=false"],
            "data.tokens_per_batch=1024 needs packing: data.packing=true or null (got false)",
        ),
        (
            ["data.tokens_per_batch=100", "data.max_length=128"],
            "data.tokens_per_batch=100 must be at least data.max_length=128",
        ),
    ],
)
def test_a_token_budget_is_checked_with_the_config_before_anything_loads(make_config, overrides, problem):
    assert problem in problems_of(make_config(*overrides))
