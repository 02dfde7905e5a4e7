"""TensorBoard HParams: every run, completed or crashed, reports the same hyper-parameters and its
final metrics, so the HParams dashboard compares all runs under a directory column by column."""

from __future__ import annotations

import math
import time
from typing import NamedTuple

from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from tensorboard.plugins.hparams.summary_v2 import hparams_pb
from torch.utils.tensorboard import SummaryWriter

from trainer.config.schema import EVAL_METRIC_PREFIX, TrainerConfig
from trainer.config.sources import source_name
from trainer.profiles import PROFILES
from trainer.run.layout import RunDirectory
from trainer.run.outcome import TrainingResult
from trainer.run.overrides import distinguishing_overrides, override_key, session_name

HParamValue = str | int | float | bool


class HParam(NamedTuple):
    name: str
    value: HParamValue
    # The config key (or group) it comes from: a sweep over that key marks the column as one
    # that differs between runs, and TensorBoard shows such columns first. None: derived, so
    # whether it differs is not known from the overrides.
    source: str | None


def reported_hparams(config: TrainerConfig) -> list[HParam]:
    """The one key set every run reports. A new hyper-parameter to compare is one line here."""
    return [
        HParam("profile", config.profile.name, "profile"),
        HParam("profile_version", PROFILES[config.profile.name].version, None),
        HParam("precision", config.precision.name, "precision"),
        HParam("model", config.model.name, "model"),
        HParam("data", source_name(config.data.train, "data.train"), "data.train"),
        HParam("learning_rate", config.train.learning_rate, "train.learning_rate"),
        HParam("lr_scheduler_type", config.train.lr_scheduler_type, "train.lr_scheduler_type"),
        HParam(
            "per_device_train_batch_size",
            config.train.per_device_train_batch_size,
            "train.per_device_train_batch_size",
        ),
        HParam(
            "gradient_accumulation_steps",
            config.train.gradient_accumulation_steps,
            "train.gradient_accumulation_steps",
        ),
        HParam("max_steps", config.train.max_steps, "train.max_steps"),
        HParam("max_length", config.data.max_length, "data.max_length"),
        HParam("peft", config.peft.method, "peft"),
        HParam("seed", config.seed, "seed"),
    ]


def run_hparams(config: TrainerConfig) -> dict[str, HParamValue]:
    return {hparam.name: hparam.value for hparam in reported_hparams(config)}


def final_metrics(result: TrainingResult) -> dict[str, float | None]:
    """The HParams metrics, by TensorBoard scalar tag; None where the run did not get that far."""
    return {
        "hparams/final_train_loss": result.final_loss,
        "hparams/eval_loss": result.eval_loss,
        "hparams/tokens_per_sec": result.summary.get("tokens_per_sec"),
        "hparams/trainable_parameters": result.summary.get("trainable_parameters"),
        "hparams/total_parameters": result.summary.get("total_parameters"),
        "hparams/peak_memory_mib": result.summary.get("peak_memory_mib"),
        # The generation eval's last metrics (eval.enabled): eval/exact_match -> hparams/eval_exact_match.
        **{
            "hparams/" + name.replace("/", "_"): value
            for name, value in result.summary.items()
            if name.startswith(EVAL_METRIC_PREFIX)
        },
    }


def write_run_hparams(run_dir: RunDirectory, config: TrainerConfig, result: TrainingResult) -> None:
    """One HParams session in the run's own TensorBoard directory, ended as a success or a failure,
    named by its job number and the overrides that set it apart (not a hash of its values)."""
    hparams = reported_hparams(config)
    metrics = final_metrics(result)
    set_apart = {override_key(item) for item in distinguishing_overrides(run_dir.root)}
    summaries = (
        experiment_pb(hparams, set_apart, metrics),
        hparams_pb(
            run_hparams(config),
            trial_id=session_name(run_dir.root),
            start_time_secs=time.time() - result.runtime_sec,
        ),
        session_end_pb(result.success),
    )
    with SummaryWriter(log_dir=str(run_dir.tensorboard_dir)) as writer:
        for summary in summaries:
            writer.file_writer.add_summary(summary, result.global_step)
        for tag, value in metrics.items():
            if value is not None and math.isfinite(value):
                writer.add_scalar(tag, value, result.global_step)
        for tag, value in source_scalars(result.summary).items():
            writer.add_scalar(tag, value, result.global_step)


# What a mixture reports of each source (result.json summary.sources), as scalars data/source_N/COUNT.
SOURCE_COUNTS = ("examples", "tokens", "assistant_tokens", "truncated", "skipped")


def source_scalars(summary: dict) -> dict[str, int]:
    """A mixture's per-source counts by TensorBoard tag, sources numbered as data.train lists them."""
    return {
        f"data/source_{position}/{count}": source[count]
        for position, source in enumerate(summary.get("sources") or [])
        for count in SOURCE_COUNTS
    }


def experiment_pb(hparams: list[HParam], set_apart: set[str], metrics: dict[str, float | None]) -> summary_pb2.Summary:
    """The columns of the dashboard, typed, so it can filter and sort on them. Those the run's
    distinguishing overrides set (a sweep's swept keys) are marked as differing: shown first."""
    experiment = api_pb2.Experiment(
        hparam_infos=[
            api_pb2.HParamInfo(name=hparam.name, type=data_type(hparam.value), differs=hparam.source in set_apart)
            for hparam in hparams
        ],
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
