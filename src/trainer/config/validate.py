"""Semantic checks of a `TrainerConfig`, run before any model loads.

Every problem is collected, so one run tells the user all there is to fix.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Collection, Iterator
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import torch
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.trainer_utils import SchedulerType
from transformers.training_args import OptimizerNames

from trainer.config.schema import TrainerConfig
from trainer.data.loading import SUPPORTED_FORMATS, SUPPORTED_SUFFIXES
from trainer.distributed.strategy import distributed_problems
from trainer.errors import ConfigError
from trainer.modeling.adapters import PEFT_METHODS
from trainer.modeling.chat_template import CHAT_TEMPLATE_MODES
from trainer.modeling.loading import model_directory_problems
from trainer.modeling.tiny import ARCHITECTURES
from trainer.monitoring.health import MIN_TREND_POINTS
from trainer.precision import precision_problems
from trainer.preview import BACKENDS as PREVIEW_BACKENDS
from trainer.preview import preview_problems
from trainer.profiles import PROFILES
from trainer.sweep.metrics import METRICS, MODES

MODEL_SOURCES = ("tiny", "pretrained")
LOG_LEVELS = ("debug", "info", "warning", "error")
BAD_RECORD_POLICIES = ("error", "skip")
# Taken from transformers itself, so they follow its version.
OPTIMIZERS = tuple(name.value for name in OptimizerNames)
LR_SCHEDULERS = tuple(name.value for name in SchedulerType)


def validate_config(config: TrainerConfig) -> None:
    """Raise one `ConfigError` listing every problem in `config`."""
    # The other checks look at these paths, so they must first be paths at all.
    if problems := unusable_path_problems(config):
        raise ConfigError(problems)
    problems = [
        *non_finite_problems(config),
        *model_problems(config),
        *data_problems(config),
        *choice_problems(config),
        *train_problems(config),
        *monitoring_problems(config),
        *precision_problems(config.precision.name),
        *peft_problems(config),
        *preview_problems(config.preview),
        *distributed_problems(config.distributed),
    ]
    if problems:
        raise ConfigError(problems)


def non_finite_problems(config: TrainerConfig) -> list[str]:
    """nan and inf pass every `> 0` check (nan compares false with everything) and fail only in training."""
    return [
        f"{key} must be a finite number (got {value})"
        for key, value in settings(config)
        if isinstance(value, float) and not math.isfinite(value)
    ]


def settings(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) for every leaf setting of a config section."""
    for item in fields(node):
        value = getattr(node, item.name)
        if is_dataclass(value):
            yield from settings(value, f"{prefix}{item.name}.")
        else:
            yield f"{prefix}{item.name}", value


def unusable_path_problems(config: TrainerConfig) -> list[str]:
    paths = {
        "data.train": config.data.train,
        "data.validation": config.data.validation,
        "model.path": config.model.path,
        "model.cache_dir": config.model.cache_dir,
        "distributed.deepspeed": config.distributed.deepspeed,
    }
    problems = []
    for key, path in paths.items():
        if path is None:
            continue
        if "\0" in path:
            problems.append(f"{key} contains a NUL character, which no path may hold")
            continue
        try:
            Path(path).expanduser()
        except RuntimeError:
            problems.append(f"{key}={path}: its ~ names no user's home directory on this machine")
    return problems


def model_problems(config: TrainerConfig) -> list[str]:
    model = config.model
    if model.source not in MODEL_SOURCES:
        return [f"model.source={model.source} is unknown; choose one of {', '.join(MODEL_SOURCES)}"]
    problems = positive("model", {"max_length": model.max_length})
    problems += attention_problems(model.attn_implementation)
    if model.chat_template not in CHAT_TEMPLATE_MODES:
        problems.append(
            f"model.chat_template={model.chat_template} is unknown; choose one of {', '.join(CHAT_TEMPLATE_MODES)}"
        )
    if model.source == "tiny":
        if model.architecture not in ARCHITECTURES:
            problems.append(
                f"model.architecture={model.architecture} cannot be built as a tiny model; "
                f"choose one of {', '.join(ARCHITECTURES)}"
            )
        if model.path:
            problems.append(
                f"model.path={model.path} is set, but model={model.name} builds its own tiny model; "
                "load a pretrained model with a pretrained model config (e.g. model=qwen3-0.6b model.path=...) "
                "or model.source=pretrained"
            )
        return problems + positive("model.tiny", vars(model.tiny), allow_zero={"init_seed"})
    return problems + pretrained_path_problems(model.name, model.path)


def pretrained_path_problems(name: str, path: str | None) -> list[str]:
    if not path:
        return [f"model.path is required for model={name}: a local directory or a hub id"]
    if not looks_like_local_path(path):
        return []
    directory = Path(path).expanduser()
    if not directory.is_dir():
        return [f"model.path={path} does not exist or is not a directory"]
    return [f"model.path={path} {problem}" for problem in model_directory_problems(directory)]


def attention_problems(name: str) -> list[str]:
    # "org/repo" names a kernel from the hub, which transformers checks when it loads the model.
    allowed = ["eager", *ALL_ATTENTION_FUNCTIONS.valid_keys()]
    if name in allowed or "/" in name:
        return []
    return [f"model.attn_implementation={name} is unknown; choose one of {', '.join(allowed)}"]


def looks_like_local_path(path: str) -> bool:
    """Hub ids are `org/name`; anything else that names a path is treated as local."""
    return path.startswith(("/", ".", "~")) or path.count("/") != 1 or Path(path).exists()


def data_problems(config: TrainerConfig) -> list[str]:
    data = config.data
    problems = [*data_file_problems("data.train", data.train), *data_file_problems("data.validation", data.validation)]
    if not 0.0 <= data.validation_split < 1.0:
        problems.append(f"data.validation_split must be in [0, 1) (got {data.validation_split})")
    if data.validation_max_samples < 0:
        problems.append(f"data.validation_max_samples must be >= 0 (got {data.validation_max_samples})")
    if data.max_length < 16:
        problems.append(f"data.max_length must be >= 16 tokens (got {data.max_length})")
    if data.num_proc is not None and data.num_proc < 1:
        problems.append(f"data.num_proc must be >= 1, or null for the CPU cores available (got {data.num_proc})")
    return problems


def data_file_problems(key: str, path: str | None) -> list[str]:
    if path is None:
        return []
    file = Path(path).expanduser()
    if not file.exists():
        return [f"{key}={path} does not exist"]
    if file.is_file() and file.suffix not in SUPPORTED_SUFFIXES:
        return [f"{key}={path} has an unsupported format; use {SUPPORTED_FORMATS}"]
    return []


def choice_problems(config: TrainerConfig) -> list[str]:
    choices = {
        "profile.name": (config.profile.name, tuple(PROFILES)),
        "preview.backend": (config.preview.backend, PREVIEW_BACKENDS),
        "monitoring.transformers_log_level": (config.monitoring.transformers_log_level, LOG_LEVELS),
        "sweep.metric": (config.sweep.metric, METRICS),
        "sweep.mode": (config.sweep.mode, MODES),
        "data.on_bad_record": (config.data.on_bad_record, BAD_RECORD_POLICIES),
        "train.optim": (config.train.optim, OPTIMIZERS),
        "train.lr_scheduler_type": (config.train.lr_scheduler_type, LR_SCHEDULERS),
    }
    problems = [
        f"{key}={value} is unknown; choose one of {', '.join(allowed)}"
        for key, (value, allowed) in choices.items()
        if value not in allowed
    ]
    if not 0.0 <= config.profile.emoji_ratio <= 1.0:
        problems.append(f"profile.emoji_ratio must be in [0, 1] (got {config.profile.emoji_ratio})")
    if not config.run.output_dir:
        problems.append("run.output_dir must name the run directory")
    return problems


def train_problems(config: TrainerConfig) -> list[str]:
    train = config.train
    problems = positive(
        "train",
        {
            "learning_rate": train.learning_rate,
            "per_device_train_batch_size": train.per_device_train_batch_size,
            "per_device_eval_batch_size": train.per_device_eval_batch_size,
            "gradient_accumulation_steps": train.gradient_accumulation_steps,
            "logging_steps": train.logging_steps,
            "eval_steps": train.eval_steps,
            "save_steps": train.save_steps,
            "save_total_limit": train.save_total_limit,
        },
    )
    problems += non_negative(
        "train",
        {
            "weight_decay": train.weight_decay,
            "max_grad_norm": train.max_grad_norm,
            "dataloader_num_workers": train.dataloader_num_workers,
        },
    )
    if train.max_steps == 0 or train.max_steps < -1:
        problems.append(
            f"train.max_steps must be > 0, or -1 to train for train.num_train_epochs (got {train.max_steps})"
        )
    elif train.max_steps == -1 and train.num_train_epochs <= 0:
        problems.append(f"train.num_train_epochs must be > 0 with train.max_steps=-1 (got {train.num_train_epochs})")
    if not 0.0 <= train.warmup_ratio < 1.0:
        problems.append(f"train.warmup_ratio must be in [0, 1) (got {train.warmup_ratio})")
    return problems


def monitoring_problems(config: TrainerConfig) -> list[str]:
    monitoring = config.monitoring
    alerts = ("alert_throughput_drop", "alert_train_val_gap", "alert_loss_noise")
    problems = positive("monitoring", {name: getattr(monitoring, name) for name in alerts})
    problems += non_negative("monitoring", {"status_interval_sec": monitoring.status_interval_sec})
    if monitoring.loss_window < MIN_TREND_POINTS:
        problems.append(f"monitoring.loss_window must be >= {MIN_TREND_POINTS} (got {monitoring.loss_window})")
    return problems


def peft_problems(config: TrainerConfig) -> list[str]:
    peft = config.peft
    if peft.method not in PEFT_METHODS:
        return [f"peft.method={peft.method} is unknown; choose one of {', '.join(PEFT_METHODS)}"]
    if peft.method == "none":
        return []
    problems = positive("peft", {"r": peft.r, "alpha": peft.alpha})
    if not 0.0 <= peft.dropout < 1.0:
        problems.append(f"peft.dropout must be in [0, 1) (got {peft.dropout})")
    if peft.target_modules == []:
        problems.append("peft.target_modules must name at least one module, or be null for the architecture's default")
    if peft.method == "qlora" and not torch.cuda.is_available():
        problems.append("peft=qlora needs a CUDA GPU (bitsandbytes 4-bit kernels) and none is available; use peft=lora")
    elif peft.method == "qlora" and importlib.util.find_spec("bitsandbytes") is None:
        problems.append("peft=qlora needs the bitsandbytes package: pip install 'trainer[qlora]'")
    return problems


def positive(section: str, values: dict[str, float], allow_zero: Collection[str] = ()) -> list[str]:
    return [
        f"{section}.{key} must be {'>= 0' if key in allow_zero else '> 0'} (got {value})"
        for key, value in values.items()
        # A non-finite value is reported once, by non_finite_problems.
        if math.isfinite(value) and (value < 0 or (value == 0 and key not in allow_zero))
    ]


def non_negative(section: str, values: dict[str, float]) -> list[str]:
    return positive(section, values, allow_zero=set(values))
