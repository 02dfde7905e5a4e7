"""Real tiny runs, watched the way a user watches them: status.json while training, TensorBoard
after, and a run whose loss turns NaN."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, metadata
from transformers import TrainerCallback

from tests.helpers import FAST_RUN
from trainer.config.load import to_trainer_config
from trainer.engine import TrainerEngine
from trainer.monitoring.hparams import run_hparams
from trainer.run.layout import RunDirectory
from trainer.run.status import Alert, StatusReader

pytestmark = pytest.mark.slow

HPARAM_METRICS = [
    "hparams/final_train_loss",
    "hparams/eval_loss",
    "hparams/tokens_per_sec",
    "hparams/trainable_parameters",
    "hparams/total_parameters",
    "hparams/peak_memory_mib",
]


@dataclass
class StatusObservations:
    """What a reader thread saw in status.json while the run trained."""

    statuses: list[str] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def watch_status(path: Path, stop: threading.Event, seen: StatusObservations) -> None:
    # 50 reads a second: several per status write, and the CPU left to training.
    while not stop.wait(0.02):
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        try:
            data = json.loads(text)
        except ValueError:
            seen.unreadable.append(text)
            continue
        seen.statuses.append(data["status"])
        seen.steps.append(data["current_step"])


@pytest.fixture(scope="module")
def config_for(compose_dictconfig, model_cache, tmp_path_factory):
    def compose(*overrides: str):
        run_dir = tmp_path_factory.mktemp("run")
        return to_trainer_config(
            compose_dictconfig([f"run.output_dir={run_dir}", f"model.cache_dir={model_cache}", *FAST_RUN, *overrides])
        )

    return compose


@pytest.fixture(scope="module")
def watched_run(config_for):
    """A run that rewrites status.json every step while another thread reads it continuously."""
    config = config_for("monitoring.status_interval_sec=0", "train.save_steps=12")
    run_dir = Path(config.run.output_dir)
    seen, stop = StatusObservations(), threading.Event()
    reader = threading.Thread(target=watch_status, args=(run_dir / "status.json", stop, seen))
    reader.start()
    try:
        result = TrainerEngine().run_job(config)
    finally:
        stop.set()
        reader.join()
    assert result.success, result.error_message
    return config, run_dir, seen


def tensorboard_events(run_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(RunDirectory(run_dir).tensorboard_dir))
    events.Reload()
    return events


def hparams_session(events: EventAccumulator) -> tuple[dict, int, list[str]]:
    """(hparam values, session end status, experiment metric tags) from the HParams plugin data."""
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    values = {key: getattr(value, value.WhichOneof("kind")) for key, value in start.hparams.items()}
    return values, end.status, [info.name.tag for info in experiment.metric_infos]


def test_status_json_is_never_half_written_while_a_run_trains(watched_run):
    _, _, seen = watched_run
    assert seen.unreadable == []
    assert "training" in seen.statuses
    assert len(set(seen.steps)) > 3
    assert seen.steps == sorted(seen.steps)


def test_the_final_status_is_completed_at_the_last_step(watched_run):
    _, run_dir, _ = watched_run
    status = StatusReader(run_dir).read()
    assert (status.status, status.current_step, status.total_steps) == ("completed", 12, 12)
    assert status.tokens_per_sec > 0 and status.eta_sec == 0.0
    assert status.loss_trend == "improving"
    assert status.validation_loss is not None and status.error_type is None


def test_tensorboard_reports_real_tokens_per_sec_at_every_logged_step(watched_run):
    _, run_dir, _ = watched_run
    events = tensorboard_events(run_dir)
    loss_steps = [event.step for event in events.Scalars("train/loss")]
    assert [event.step for event in events.Scalars("train/tokens_per_sec")] == loss_steps
    assert all(event.value > 0 for event in events.Scalars("train/tokens_per_sec"))


def test_tensorboard_holds_the_resolved_config_as_text(watched_run):
    config, run_dir, _ = watched_run
    text = tensorboard_events(run_dir).Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "learning_rate: 0.002" in text and f"output_dir: {config.run.output_dir}" in text


def test_hparams_hold_the_key_set_and_the_final_metrics(watched_run):
    config, run_dir, _ = watched_run
    result = json.loads((run_dir / "result.json").read_text())
    events = tensorboard_events(run_dir)
    values, end_status, metric_tags = hparams_session(events)
    assert values == pytest.approx(run_hparams(config))
    assert {"profile", "profile_version", "precision", "model", "peft", "learning_rate", "seed"} <= values.keys()
    assert end_status == api_pb2.STATUS_SUCCESS
    assert metric_tags == HPARAM_METRICS
    final = {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in metric_tags}
    assert final == {
        "hparams/final_train_loss": [(12, pytest.approx(result["final_loss"]))],
        "hparams/eval_loss": [(12, pytest.approx(result["eval_loss"]))],
        "hparams/tokens_per_sec": [(12, pytest.approx(result["summary"]["tokens_per_sec"]))],
        "hparams/trainable_parameters": [(12, result["summary"]["trainable_parameters"])],
        "hparams/total_parameters": [(12, result["summary"]["total_parameters"])],
        "hparams/peak_memory_mib": [(12, pytest.approx(result["summary"]["peak_memory_mib"]))],
    }


class PoisonLossFrom(TrainerCallback):
    """From optimizer step `step` on, the model's loss is NaN; counts the optimizer steps taken."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.optimizer_steps = 0
        self.model = None

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step + 1 == self.step:
            self.model = model
            # The embeddings, not the output's loss: the chunked loss is computed after the model's forward.
            model.get_input_embeddings().register_forward_hook(poison_embeddings)

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.optimizer_steps += 1


def poison_embeddings(module, args, output):
    return output * float("nan")


@pytest.fixture(scope="module")
def nan_run(config_for):
    poison = PoisonLossFrom(step=3)
    config = config_for()
    result = TrainerEngine(callbacks=[poison]).run_job(config)
    return config, Path(config.run.output_dir), result, poison


def test_a_nan_loss_stops_training_before_the_optimizer_applies_it(nan_run):
    _, _, result, poison = nan_run
    assert poison.optimizer_steps == 2
    assert all(torch.isfinite(parameter).all() for parameter in poison.model.parameters())
    assert (result.success, result.error_type, result.global_step) == (False, "nan_loss", 2)
    assert "the loss of step 3 is nan" in result.error_message


def test_a_nan_loss_marks_the_run_crashed_with_an_alert(nan_run):
    _, run_dir, _, _ = nan_run
    status = StatusReader(run_dir).read()
    assert (status.status, status.error_type) == ("crashed", "nan_loss")
    assert status.alerts == [Alert("nan_loss", "the loss of step 3 is nan")]
    assert json.loads((run_dir / "result.json").read_text())["success"] is False


def test_a_crashed_run_reports_the_same_hparams_keys_as_a_finished_one(nan_run, watched_run):
    _, run_dir, _, _ = nan_run
    values, end_status, metric_tags = hparams_session(tensorboard_events(run_dir))
    finished_values, _, finished_tags = hparams_session(tensorboard_events(watched_run[1]))
    assert (values.keys(), metric_tags) == (finished_values.keys(), finished_tags)
    assert end_status == api_pb2.STATUS_FAILURE


def test_a_user_error_after_the_status_starts_marks_the_run_crashed(config_for, tmp_path):
    data = tmp_path / "chats.jsonl"
    data.write_text("{not json\n")
    config = config_for(f"data.train={data}")
    result = TrainerEngine().run_job(config)
    status = StatusReader(Path(config.run.output_dir)).read()
    assert (result.success, status.status, status.error_type) == (False, "crashed", "data_error")
    assert f"{data}:1" in status.error_message
