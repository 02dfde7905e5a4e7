"""TensorBoard HParams: every run, completed or crashed, reports the same hyper-parameters and its
final metrics, so the HParams dashboard compares all runs under a directory column by column."""

from __future__ import annotations

import math
import time
from pathlib import Path

from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from tensorboard.plugins.hparams.summary_v2 import hparams_pb
from torch.utils.tensorboard import SummaryWriter

from trainer.config import TrainerConfig
from trainer.profiles import PROFILES
from trainer.result import TrainingResult

HParamValue = str | int | float | bool


def run_hparams(config: TrainerConfig) -> dict[str, HParamValue]:
    """The one key set every run reports. A new hyper-parameter to compare is one line here."""
    return {
        "profile": config.profile.name,
        "profile_version": PROFILES[config.profile.name].version,
        "precision": config.precision.name,
        "model": config.model.name,
        "data": config.data.train or "sample",
        "learning_rate": config.train.learning_rate,
        "lr_scheduler_type": config.train.lr_scheduler_type,
        "per_device_train_batch_size": config.train.per_device_train_batch_size,
        "gradient_accumulation_steps": config.train.gradient_accumulation_steps,
        "max_steps": config.train.max_steps,
        "max_length": config.data.max_length,
        "peft": config.peft.method,
        "seed": config.seed,
    }


def final_metrics(result: TrainingResult) -> dict[str, float | None]:
    """The HParams metrics, by TensorBoard scalar tag; None where the run did not get that far."""
    return {
        "hparams/final_train_loss": result.final_loss,
        "hparams/eval_loss": result.eval_loss,
        "hparams/tokens_per_sec": result.summary.get("tokens_per_sec"),
        "hparams/trainable_parameters": result.summary.get("trainable_parameters"),
        "hparams/total_parameters": result.summary.get("total_parameters"),
        "hparams/peak_memory_mib": result.summary.get("peak_memory_mib"),
    }


def write_run_hparams(log_dir: Path, config: TrainerConfig, result: TrainingResult) -> None:
    """One HParams session in the run's own TensorBoard directory, ended as a success or a failure."""
    hparams = run_hparams(config)
    metrics = final_metrics(result)
    summaries = (
        experiment_pb(hparams, metrics),
        hparams_pb(hparams, start_time_secs=time.time() - result.runtime_sec),
        session_end_pb(result.success),
    )
    with SummaryWriter(log_dir=str(log_dir)) as writer:
        for summary in summaries:
            writer.file_writer.add_summary(summary, result.global_step)
        for tag, value in metrics.items():
            if value is not None and math.isfinite(value):
                writer.add_scalar(tag, value, result.global_step)


def experiment_pb(hparams: dict[str, HParamValue], metrics: dict[str, float | None]) -> summary_pb2.Summary:
    """The columns of the dashboard, typed, so it can filter and sort on them."""
    experiment = api_pb2.Experiment(
        hparam_infos=[api_pb2.HParamInfo(name=name, type=data_type(value)) for name, value in hparams.items()],
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in metrics],
        time_created_secs=time.time(),
    )
    return hparams_plugin_pb(metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment))


def session_end_pb(success: bool) -> summary_pb2.Summary:
    """The session's end, with its status: the dashboard tells crashed runs from finished ones."""
    status = api_pb2.STATUS_SUCCESS if success else api_pb2.STATUS_FAILURE
    end = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
    return hparams_plugin_pb(metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end))


def data_type(value: HParamValue) -> int:
    if isinstance(value, bool):
        return api_pb2.DATA_TYPE_BOOL
    return api_pb2.DATA_TYPE_STRING if isinstance(value, str) else api_pb2.DATA_TYPE_FLOAT64


def hparams_plugin_pb(tag: str, data: plugin_data_pb2.HParamsPluginData) -> summary_pb2.Summary:
    summary = summary_pb2.Summary()
    summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR)
    return summary
