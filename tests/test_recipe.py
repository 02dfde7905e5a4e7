"""The recipe's callbacks: assembled in one place, and a caller's own among them."""

from __future__ import annotations

from transformers import TrainerCallback

from trainer.engine import TrainerEngine
from trainer.preview.callback import PreviewCallback
from trainer.preview.none import NoPreviewBackend
from trainer.recipe import training_callbacks
from trainer.run.interruption import StopRequest
from trainer.run.layout import RunDirectory
from trainer.run.status import StatusWriter


class EventLog(TrainerCallback):
    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.events.append(("train_begin", state.global_step))

    def on_step_end(self, args, state, control, **kwargs):
        self.events.append(("step_end", state.global_step))


def test_a_callback_given_to_the_engine_sees_the_run_begin_and_every_step_end(make_config):
    events = EventLog()
    config = make_config("train.max_steps=3", "monitoring.tensorboard=false", "data.validation_split=0")
    result = TrainerEngine(callbacks=[events]).run_job(config)
    assert result.success, result.error_message
    assert events.events == [("train_begin", 0), ("step_end", 1), ("step_end", 2), ("step_end", 3)]


def test_a_callers_callbacks_come_after_trainers_own_and_before_the_previews_and_the_stop(make_config, tmp_path):
    config = make_config()
    run_dir = RunDirectory(tmp_path / "run")
    status = StatusWriter(run_dir.status_file, 1.0, enabled=False)
    previews = PreviewCallback(NoPreviewBackend(), [], 0, lambda text: {}, [])
    extra, stop = EventLog(), StopRequest()
    callbacks = training_callbacks(config, run_dir, status, previews, stop, extra=[extra])
    assert callbacks[-3:] == [extra, previews, stop]
    assert type(callbacks[1]).__name__ == "TrainingMonitorCallback"
