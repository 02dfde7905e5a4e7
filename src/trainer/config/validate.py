"""Semantic checks of a `TrainerConfig`, run before any model loads.

Every problem is collected, so one run tells the user all there is to fix. What the checks need
from the machine and the installed libraries arrives as `Facts` (gathered by `trainer.facts`), so
this module imports no torch, transformers, peft or datasets.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from safetensors import SafetensorError, safe_open

from trainer.config.schema import (
    BAD_RECORD_POLICIES,
    CHAT_TEMPLATE_MODES,
    DISTRIBUTED_BACKENDS,
    EVAL_METRIC_PREFIX,
    FINAL_MODEL_CHOICES,
    FUSED_LOSSES,
    LOG_LEVELS,
    MIN_TREND_POINTS,
    MODEL_SOURCES,
    OBJECTIVES,
    PEFT_METHODS,
    PRECISIONS,
    PREFERENCE_LOSSES,
    PREFERENCE_METRICS,
    PREFERENCE_OBJECTIVES,
    PREVIEW_BACKENDS,
    REMOTE_PROTOCOLS,
    STATE_DICT_TYPES,
    STRATEGIES,
    SWEEP_METRICS,
    SWEEP_MODES,
    WANDB_MODES,
    DataConfig,
    DistributedConfig,
    LoggerConfig,
    PreviewConfig,
    TrainerConfig,
)
from trainer.config.sources import is_mixture, parse_sources, source_problems
from trainer.errors import ConfigError

WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin")
# Any one of these holds a tokenizer's vocabulary (fast, SentencePiece, BPE, WordPiece).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt")
# What `save_to_disk` writes into a Dataset's (state.json) or a DatasetDict's directory.
TOKEN_ENV_KEY = "preview.remote.token_env"
ENVIRONMENT_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Some tokens are valid variable names (hf_..., ghp_...): known prefixes, and long mixed-case
# strings with digits, which no one names a variable, are taken for tokens.
TOKEN_PREFIXES = ("hf_", "ghp_", "gho_", "ghs_", "github_pat_", "glpat", "xox")
TOKEN_LIKE = re.compile(r"(?=.*[a-z])(?=.*[A-Z])(?=.*[0-9]).{20,}")
TYPE_NAMES: dict[Any, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}
LIST_ELEMENT_NAMES: dict[Any, str] = {str: "strings", int: "integers", float: "numbers"}
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def token_env_problems(token_env: str | None) -> list[str]:
    if token_env is None or (
        ENVIRONMENT_VARIABLE_NAME.fullmatch(token_env)
        and not token_env.startswith(TOKEN_PREFIXES)
        and not TOKEN_LIKE.fullmatch(token_env)
    ):
        return []
    return [
        f"{TOKEN_ENV_KEY} must be the NAME of an environment variable that holds the token (letters, digits "
        "and _), never the token itself; the value given is not shown or recorded"
    ]


@dataclass(frozen=True)
class Facts:
    """What validation needs to know beyond the config: this machine, and the names the installed
    libraries and trainer's registries accept."""

    cuda: bool
    bf16_supported: bool
    # Taken from transformers itself, so they follow its version.
    optimizers: tuple[str, ...]
    lr_schedulers: tuple[str, ...]
    attention_implementations: tuple[str, ...]
    profiles: tuple[str, ...]
    tiny_architectures: tuple[str, ...]
    # Per profile: the generation eval metrics it scores answers by (logged as eval/<name>).
    profile_metrics: dict[str, tuple[str, ...]] = field(default_factory=dict)


def validate_config(config: TrainerConfig, facts: Facts) -> None:
    """Raise one `ConfigError` listing every problem in `config`."""
    # The other checks compare and combine values, so each must first be of its key's type.
    if problems := type_problems(config):
        raise ConfigError(problems)
    # The other checks look at these paths, so they must first be paths at all.
    if problems := unusable_path_problems(config):
        raise ConfigError(problems)
    problems = [
        *non_finite_problems(config),
        *model_problems(config, facts),
        *data_problems(config),
        *streaming_problems(config),
        *choice_problems(config, facts),
        *train_problems(config),
        *loss_problems(config, facts),
        *monitoring_problems(config),
        *logger_problems(config.logger),
        *run_date_problems(config.run.date),
        *precision_problems(config.precision.name, facts),
        *peft_problems(config, facts),
        *preview_problems(config.preview),
        *evaluation_problems(config, facts),
        *distributed_problems(config.distributed, facts),
        *objective_problems(config),
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


def type_problems(section: Any, prefix: str = "") -> list[str]:
    """Each value whose type is not its key's, named by its key: Hydra checks the command line's,
    this a `TrainerConfig` built in Python."""
    problems = []
    hints = get_type_hints(type(section))
    for item in fields(section):
        key, value, expected = f"{prefix}{item.name}", getattr(section, item.name), hints[item.name]
        if is_dataclass(expected) and isinstance(value, expected):
            problems += type_problems(value, f"{key}.")
        elif not is_dataclass(expected) and is_of_type(value, expected):
            continue
        else:
            problems.append(f"{key} must be {type_name(expected)} (got {value!r}, of type {type(value).__name__})")
    return problems


def is_of_type(value: Any, expected: Any) -> bool:
    """`isinstance` for the annotations of the schema: unions, lists of a type, an int as a float,
    never a bool as a number; `Any` is a data source (trainer.config.sources checks the rest)."""
    if expected is Any:
        return isinstance(value, str | dict | list | tuple | None)
    if get_origin(expected) in (Union, UnionType):
        return any(is_of_type(value, option) for option in get_args(expected))
    if get_origin(expected) is list:
        return isinstance(value, list) and all(is_of_type(element, get_args(expected)[0]) for element in value)
    if expected is type(None):
        return value is None
    if isinstance(value, bool):
        return expected is bool
    return isinstance(value, int | float) if expected is float else isinstance(value, expected)


def type_name(expected: Any) -> str:
    if expected is Any:
        return "a path, a Hub dataset id, a source {path, ...} or a list of sources"
    if get_origin(expected) in (Union, UnionType):
        return " or ".join(type_name(option) for option in get_args(expected))
    if get_origin(expected) is list:
        element = get_args(expected)[0]
        return f"a list of {LIST_ELEMENT_NAMES.get(element, element.__name__)}"
    return TYPE_NAMES.get(expected) or f"a {expected.__name__} section"


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
        **source_paths(config.data),
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


def source_paths(data: DataConfig) -> dict[str, str]:
    """The paths of the data sources, by key; a source that is not well formed has none here."""
    return {
        f"{key}[{position}]" if is_mixture(value) else key: source.path
        for key, value in data_keys(data).items()
        for position, source in enumerate(parse_sources(value, key)[0])
        if source.path is not None
    }


def data_keys(data: DataConfig) -> dict[str, Any]:
    return {"data.train": data.train, "data.validation": data.validation}


def model_problems(config: TrainerConfig, facts: Facts) -> list[str]:
    model = config.model
    if model.source not in MODEL_SOURCES:
        return [f"model.source={model.source} is unknown; choose one of {', '.join(MODEL_SOURCES)}"]
    problems = positive("model", {"max_length": model.max_length})
    problems += attention_problems(model.attn_implementation, facts)
    if model.chat_template not in CHAT_TEMPLATE_MODES:
        problems.append(
            f"model.chat_template={model.chat_template} is unknown; choose one of {', '.join(CHAT_TEMPLATE_MODES)}"
        )
    if model.source == "tiny":
        if model.architecture not in facts.tiny_architectures:
            problems.append(
                f"model.architecture={model.architecture} cannot be built as a tiny model; "
                f"choose one of {', '.join(facts.tiny_architectures)}"
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


def attention_problems(name: str, facts: Facts) -> list[str]:
    # "org/repo" names a kernel from the hub, which transformers checks when it loads the model.
    allowed = ["eager", *facts.attention_implementations]
    if name in allowed or "/" in name:
        return []
    return [f"model.attn_implementation={name} is unknown; choose one of {', '.join(allowed)}"]


def looks_like_local_path(path: str) -> bool:
    """Hub ids are `org/name`; anything else that names a path is treated as local."""
    return path.startswith(("/", ".", "~")) or path.count("/") != 1 or Path(path).exists()


def data_problems(config: TrainerConfig) -> list[str]:
    data = config.data
    problems = [problem for key, value in data_keys(data).items() for problem in source_problems(value, key)]
    if not 0.0 <= data.validation_split < 1.0:
        problems.append(f"data.validation_split must be in [0, 1) (got {data.validation_split})")
    if data.validation_max_samples < 0:
        problems.append(f"data.validation_max_samples must be >= 0 (got {data.validation_max_samples})")
    if data.max_length < 16:
        problems.append(f"data.max_length must be >= 16 tokens (got {data.max_length})")
    if data.num_proc is not None and data.num_proc < 1:
        problems.append(f"data.num_proc must be >= 1, or null for the CPU cores available (got {data.num_proc})")
    return [*problems, *token_budget_problems(data)]


def token_budget_problems(data: DataConfig) -> list[str]:
    """A token budget packs examples into batches of up to `data.tokens_per_batch` tokens: it needs
    packing, and room for the longest example."""
    budget = data.tokens_per_batch
    if not budget:
        return []
    problems = []
    if budget < 0:
        problems.append(
            f"data.tokens_per_batch must be >= 0, 0 for batches of a fixed number of examples (got {budget})"
        )
    if data.packing is False:
        problems.append(f"data.tokens_per_batch={budget} needs packing: data.packing=true or null (got false)")
    if 0 < budget < data.max_length:
        problems.append(f"data.tokens_per_batch={budget} must be at least data.max_length={data.max_length}")
    return problems


def streaming_problems(config: TrainerConfig) -> list[str]:
    """What `data.streaming` cannot be combined with: a stream has no length, is read in order by
    one reader, and is never seen whole."""
    problems = []
    if config.data.shuffle_buffer < 1:
        problems.append(f"data.shuffle_buffer must be >= 1, 1 for file order (got {config.data.shuffle_buffer})")
    if not config.data.streaming:
        return problems
    if is_mixture(config.data.train):
        sources = parse_sources(config.data.train, "data.train")[0]
        problems += [
            f"data.train[{position}].examples: a streamed mixture mixes by weight (a stream has no end to count "
            "examples to); give the source a weight, or set data.streaming=false"
            for position, source in enumerate(sources)
            if source.examples is not None
        ]
    if config.train.max_steps <= 0:
        problems.append(
            f"data.streaming=true needs train.max_steps > 0 (got {config.train.max_steps}): "
            "a stream has no length to count train.num_train_epochs in"
        )
    if config.data.tokens_per_batch:
        problems.append(
            f"data.streaming=true cannot plan data.tokens_per_batch={config.data.tokens_per_batch}: the budget "
            "sorts the whole data set by length; stream with data.tokens_per_batch=0 (data.packing=true works)"
        )
    if config.train.dataloader_num_workers:
        problems.append(
            "data.streaming=true reads records in the training process (worker processes would each read the "
            f"whole stream): set train.dataloader_num_workers=0 (got {config.train.dataloader_num_workers})"
        )
    if config.distributed.nproc_per_node > 1:
        problems.append(
            "data.streaming=true trains in one process (the stream is not sharded across ranks): "
            f"set distributed.nproc_per_node=1 (got {config.distributed.nproc_per_node}) or data.streaming=false"
        )
    return problems


def objective_problems(config: TrainerConfig) -> list[str]:
    """The objective's own values, and what preference pairs cannot be trained with (yet)."""
    objective = config.objective
    if objective.name not in OBJECTIVES:
        return [f"objective.name={objective.name} is unknown; choose one of {', '.join(OBJECTIVES)}"]
    if objective.name not in PREFERENCE_OBJECTIVES:
        return []
    problems = positive("objective", {"beta": objective.beta})
    problems += non_negative("objective", {"gamma": objective.gamma})
    if objective.loss_type not in PREFERENCE_LOSSES:
        problems.append(
            f"objective.loss_type={objective.loss_type} is unknown; choose one of {', '.join(PREFERENCE_LOSSES)}"
        )
    elif objective.name == "simpo" and objective.loss_type != "sigmoid":
        problems.append(f"objective=simpo has the sigmoid loss only (got objective.loss_type={objective.loss_type})")
    name, data = objective.name, config.data
    refused = {
        "data.streaming=true": data.streaming,
        "a mixture in data.train (one preference file)": is_mixture(data.train),
        f"data.tokens_per_batch={data.tokens_per_batch} (pairs are packed per batch of pairs)": data.tokens_per_batch,
        "data.packing=false (pairs are always packed, padding-free)": data.packing is False,
        "eval.enabled=true (the generation eval scores chats)": config.eval.enabled,
        f"train.fused_loss={config.train.fused_loss} (log-probs are gathered at the answers)": config.train.fused_loss
        != "none",
        f"distributed.nproc_per_node={config.distributed.nproc_per_node}": config.distributed.nproc_per_node > 1,
    }
    problems += [
        f"objective={name} cannot train with {what}; train pairs without it" for what, on in refused.items() if on
    ]
    return problems


def choice_problems(config: TrainerConfig, facts: Facts) -> list[str]:
    choices = {
        "profile.name": (config.profile.name, facts.profiles),
        "preview.backend": (config.preview.backend, PREVIEW_BACKENDS),
        "monitoring.transformers_log_level": (config.monitoring.transformers_log_level, LOG_LEVELS),
        "sweep.mode": (config.sweep.mode, SWEEP_MODES),
        "data.on_bad_record": (config.data.on_bad_record, BAD_RECORD_POLICIES),
        "train.optim": (config.train.optim, facts.optimizers),
        "train.lr_scheduler_type": (config.train.lr_scheduler_type, facts.lr_schedulers),
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


def has_validation_set(config: TrainerConfig) -> bool:
    """Whether the run evaluates at all: a validation file, or a held-out share of the training data."""
    data = config.data
    held_out = data.validation_max_samples > 0 and (data.streaming or data.validation_split > 0)
    return data.validation is not None or held_out


def logged_metrics(config: TrainerConfig, facts: Facts) -> tuple[str, ...]:
    """The generation eval metrics this run logs (none with eval.enabled=false)."""
    if not config.eval.enabled:
        return ()
    return tuple(EVAL_METRIC_PREFIX + name for name in facts.profile_metrics.get(config.profile.name, ()))


def preference_sweep_metrics(config: TrainerConfig) -> tuple[str, ...]:
    """A preference run's metrics in result.json, training's and evaluation's (`eval_` + name): its
    loss depends on beta, so a sweep over beta ranks jobs by these (eval_rewards/accuracies)."""
    if config.objective.name not in PREFERENCE_OBJECTIVES:
        return ()
    return (*PREFERENCE_METRICS, *(f"eval_{name}" for name in PREFERENCE_METRICS))


def eval_metric_problem(key: str, metric: str, config: TrainerConfig, facts: Facts) -> str | None:
    """Why `key`=`metric` names no generation eval metric this run logs, or None when it does."""
    if not metric.startswith(EVAL_METRIC_PREFIX) or metric in logged_metrics(config, facts):
        return None
    profile_metrics = [EVAL_METRIC_PREFIX + name for name in facts.profile_metrics.get(config.profile.name, ())]
    if metric not in profile_metrics:
        return (
            f"{key}={metric} is not a metric of profile={config.profile.name}; "
            f"it scores answers by {', '.join(profile_metrics) or 'nothing'}"
        )
    return f"{key}={metric} is logged by no run with eval.enabled=false; set eval.enabled=true"


def evaluation_problems(config: TrainerConfig, facts: Facts) -> list[str]:
    """The generation eval, the best checkpoint and early stopping, and the metrics they name."""
    evaluation, train, stopping = config.eval, config.train, config.train.early_stopping
    problems = positive(
        "eval",
        {
            "max_samples": evaluation.max_samples,
            "max_new_tokens": evaluation.max_new_tokens,
            "batch_size": evaluation.batch_size,
        },
    )
    problems += non_negative("train.early_stopping", {"patience": stopping.patience, "threshold": stopping.threshold})
    if train.final_model not in FINAL_MODEL_CHOICES:
        problems.append(
            f"train.final_model={train.final_model} is unknown; choose one of {', '.join(FINAL_MODEL_CHOICES)}"
        )
    if stopping.mode not in SWEEP_MODES:
        problems.append(f"train.early_stopping.mode={stopping.mode} is unknown; choose one of {', '.join(SWEEP_MODES)}")
    sweep_metrics = (*SWEEP_METRICS, *logged_metrics(config, facts), *preference_sweep_metrics(config))
    for key, metric, allowed in (
        ("sweep.metric", config.sweep.metric, sweep_metrics),
        ("train.early_stopping.metric", stopping.metric, ("eval_loss", *logged_metrics(config, facts))),
    ):
        if problem := eval_metric_problem(key, metric, config, facts):
            problems.append(problem)
        elif metric not in allowed:
            problems.append(f"{key}={metric} is unknown; choose one of {', '.join(allowed)}")
    tracks_best = stopping.patience > 0 or train.keep_best or train.final_model == "best"
    if (config.eval.enabled or tracks_best) and not has_validation_set(config):
        wanted = (
            "eval.enabled=true"
            if config.eval.enabled
            else "train.early_stopping / train.keep_best / train.final_model=best"
        )
        problems.append(
            f"{wanted} needs evaluations, and this run has no validation set: "
            "give data.validation or data.validation_split > 0 with data.validation_max_samples > 0"
        )
    if (train.keep_best or train.final_model == "best") and train.save_steps % train.eval_steps:
        problems.append(
            f"train.keep_best needs a checkpoint at every evaluation that may be the best: train.save_steps="
            f"{train.save_steps} must be a multiple of train.eval_steps={train.eval_steps}"
        )
    return problems


# train.fused_loss -> (the module it imports, the extra that installs it).
FUSED_LOSS_PACKAGES = {"liger": ("liger_kernel", "liger"), "cce": ("cut_cross_entropy", "cce")}


def loss_problems(config: TrainerConfig, facts: Facts) -> list[str]:
    train = config.train
    if train.loss_chunk_size is not None and train.loss_chunk_size <= 0:
        return [
            f"train.loss_chunk_size must be > 0 positions, or null for the unchunked loss (got {train.loss_chunk_size})"
        ]
    if train.fused_loss not in FUSED_LOSSES:
        return [f"train.fused_loss={train.fused_loss} is unknown; choose one of {', '.join(FUSED_LOSSES)}"]
    if train.fused_loss == "none":
        return []
    module, extra = FUSED_LOSS_PACKAGES[train.fused_loss]
    if config.distributed.strategy == "fsdp" or config.distributed.deepspeed is not None:
        return [
            f"train.fused_loss={train.fused_loss} needs the output head's weight whole, which FSDP and DeepSpeed "
            "shard; use train.fused_loss=none"
        ]
    if not facts.cuda:
        return [
            f"train.fused_loss={train.fused_loss} needs a CUDA GPU and none is available; use train.fused_loss=none "
            "(the chunked loss, train.loss_chunk_size)"
        ]
    if importlib.util.find_spec(module) is None:
        return [f"train.fused_loss={train.fused_loss} needs the {module} package: pip install 'trainer[{extra}]'"]
    return []


def run_date_problems(run_date: str | None) -> list[str]:
    if run_date is None or (ISO_DATE.fullmatch(run_date) and valid_date(run_date)):
        return []
    return [f"run.date must be a date written YYYY-MM-DD, or null for the day the run starts (got {run_date!r})"]


def valid_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def monitoring_problems(config: TrainerConfig) -> list[str]:
    monitoring = config.monitoring
    alerts = ("alert_throughput_drop", "alert_train_val_gap", "alert_loss_noise")
    problems = positive("monitoring", {name: getattr(monitoring, name) for name in alerts})
    problems += non_negative("monitoring", {"status_interval_sec": monitoring.status_interval_sec})
    if monitoring.loss_window < MIN_TREND_POINTS:
        problems.append(f"monitoring.loss_window must be >= {MIN_TREND_POINTS} (got {monitoring.loss_window})")
    return problems


def logger_problems(config: LoggerConfig) -> list[str]:
    """A selected tracker needs its package; whether its server is reachable is checked when the
    run opens it, still before training (trainer.monitoring.trackers)."""
    problems = [
        f"logger={name} needs the {name} package: pip install 'trainer[{name}]'"
        for name in ("mlflow", "wandb")
        if getattr(config, name) is not None and importlib.util.find_spec(name) is None
    ]
    if config.wandb is not None and config.wandb.mode not in WANDB_MODES:
        problems.append(f"logger.wandb.mode={config.wandb.mode} is unknown; choose one of {', '.join(WANDB_MODES)}")
    return problems


def peft_problems(config: TrainerConfig, facts: Facts) -> list[str]:
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
    if peft.method == "qlora" and not facts.cuda:
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


def model_directory_problems(directory: Path) -> list[str]:
    """What a local model directory lacks to be loaded, checked without loading it: a readable
    config.json, weights (safetensors headers read), and a tokenizer vocabulary."""
    problems = []
    config = directory / "config.json"
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append("has no config.json")
    except (OSError, ValueError) as error:
        problems.append(f"has a config.json that cannot be read ({error})")
    weights = sorted(file for pattern in WEIGHT_FILES for file in directory.glob(pattern))
    if not weights:
        problems.append(f"holds no model weights (none of {', '.join(WEIGHT_FILES)})")
    problems += [problem for file in weights if (problem := safetensors_problem(file))]
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        problems.append(f"holds no tokenizer (none of {', '.join(TOKENIZER_FILES)})")
    return problems


def safetensors_problem(file: Path) -> str | None:
    """Why a safetensors file is unreadable; opening it reads and checks only its header."""
    if file.suffix != ".safetensors":
        return None
    try:
        with safe_open(file, framework="pt"):
            return None
    except (SafetensorError, OSError) as error:
        return f"has a weights file {file.name} that is not readable safetensors ({error})"


def precision_problems(name: str, facts: Facts) -> list[str]:
    """Why this machine cannot train in `name`, as messages naming the setting to change."""
    if name not in PRECISIONS:
        return [f"precision={name} is unknown; choose one of {', '.join(PRECISIONS)}"]
    if name == "fp16" and not facts.cuda:
        return [
            "precision=fp16 needs a CUDA GPU and none is available (on CPU it would silently "
            "train in fp32); use precision=fp32, or precision=bf16"
        ]
    if name == "bf16" and facts.cuda and not facts.bf16_supported:
        return ["precision=bf16 is not supported by this GPU; use precision=fp16 or precision=fp32"]
    return []


def preview_problems(config: PreviewConfig) -> list[str]:
    """What is wrong with the preview section, one message per problem (the backend's name is
    checked with the other choices, in trainer.config.validate)."""
    problems = []
    for key, value in {
        "every_steps": config.every_steps,
        "num_prompts": config.num_prompts,
        "max_new_tokens": config.max_new_tokens,
    }.items():
        if value < 1:
            problems.append(f"preview.{key} must be >= 1 (got {value})")
    if config.temperature < 0:
        problems.append(f"preview.temperature must be >= 0 (got {config.temperature}); 0 means greedy")
    problems += token_env_problems(config.remote.token_env)
    if config.backend == "remote":
        problems += remote_problems(config)
    return problems


def remote_problems(config: PreviewConfig) -> list[str]:
    remote = config.remote
    problems = []
    if not remote.url.startswith(("http://", "https://")):
        problems.append(f"preview.remote.url={remote.url} must start with http:// or https://")
    if remote.protocol not in REMOTE_PROTOCOLS:
        problems.append(
            f"preview.remote.protocol={remote.protocol} is unknown; choose one of {', '.join(REMOTE_PROTOCOLS)}"
        )
    if remote.timeout_sec <= 0:
        problems.append(f"preview.remote.timeout_sec must be > 0 (got {remote.timeout_sec})")
    if remote.retries < 0:
        problems.append(f"preview.remote.retries must be >= 0 (got {remote.retries})")
    return problems


def distributed_problems(config: DistributedConfig, facts: Facts) -> list[str]:
    problems = []
    if config.nproc_per_node < 1:
        problems.append(f"distributed.nproc_per_node must be >= 1 (got {config.nproc_per_node})")
    if config.strategy not in STRATEGIES:
        problems.append(f"distributed.strategy={config.strategy} is unknown; choose one of {', '.join(STRATEGIES)}")
    elif config.strategy == "fsdp" and not facts.cuda:
        # accelerate shards GPU processes only; on CPU it would quietly train with DDP instead.
        problems.append("distributed.strategy=fsdp needs CUDA GPUs and none is available; use distributed.strategy=ddp")
    if config.backend is not None and config.backend not in DISTRIBUTED_BACKENDS:
        problems.append(
            f"distributed.backend={config.backend} is unknown; choose one of {', '.join(DISTRIBUTED_BACKENDS)} or null"
        )
    if config.fsdp.state_dict_type not in STATE_DICT_TYPES:
        problems.append(
            f"distributed.fsdp.state_dict_type={config.fsdp.state_dict_type} is unknown; "
            f"choose one of {', '.join(STATE_DICT_TYPES)}"
        )
    if config.deepspeed is not None:
        if not Path(config.deepspeed).expanduser().is_file():
            problems.append(f"distributed.deepspeed={config.deepspeed} does not exist (a DeepSpeed JSON config)")
        if importlib.util.find_spec("deepspeed") is None:
            problems.append("distributed.deepspeed needs the deepspeed package: pip install deepspeed")
    return problems
