"""Semantic checks of a `TrainerConfig`, run before any model loads.

Every problem is collected, so one run tells the user all there is to fix.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Collection
from pathlib import Path

import torch

from trainer.config import TrainerConfig
from trainer.data.loading import SUPPORTED_FORMATS, SUPPORTED_SUFFIXES
from trainer.distributed.strategy import distributed_problems
from trainer.errors import ConfigError
from trainer.modeling.adapters import PEFT_METHODS
from trainer.modeling.chat_template import CHAT_TEMPLATE_MODES
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
WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin")


def validate_config(config: TrainerConfig) -> None:
    """Raise one `ConfigError` listing every problem in `config`."""
    problems = [
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


def model_problems(config: TrainerConfig) -> list[str]:
    model = config.model
    if model.source not in MODEL_SOURCES:
        return [f"model.source={model.source} is unknown; choose one of {', '.join(MODEL_SOURCES)}"]
    problems = positive("model", {"max_length": model.max_length})
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
    if not [file for pattern in WEIGHT_FILES for file in directory.glob(pattern)]:
        return [f"model.path={path} holds no model weights (none of {', '.join(WEIGHT_FILES)})"]
    return []


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
    if train.max_steps <= 0 and train.num_train_epochs <= 0:
        problems.append("train.max_steps or train.num_train_epochs must be > 0")
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
        if value < 0 or (value == 0 and key not in allow_zero)
    ]


def non_negative(section: str, values: dict[str, float]) -> list[str]:
    return positive(section, values, allow_zero=set(values))
