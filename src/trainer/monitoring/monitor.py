"""`TrainingMonitorCallback`: what status.json says while a run trains."""

from __future__ import annotations

import logging
import time
from collections import deque

from transformers import TrainerCallback

from trainer.config.schema import MonitoringConfig
from trainer.monitoring.health import (
    ThroughputMeter,
    loss_noise_alert,
    loss_trend,
    throughput_drop_alert,
    train_val_gap_alert,
)
from trainer.run.status import Alert, StatusWriter

log = logging.getLogger(__name__)

# Steps behind tokens/s and the ETA: enough to smooth out uneven batch lengths.
THROUGHPUT_WINDOW_STEPS = 20


class TrainingMonitorCallback(TrainerCallback):
    """Progress, real tokens/s, ETA, loss trend and alerts, into the `StatusWriter` (which
    throttles the file writes). It also adds `tokens_per_sec` to each training log event, so the
    loggers after it in the callback list (TensorBoard, the log line) report it as well."""

    def __init__(self, status: StatusWriter, config: MonitoringConfig) -> None:
        self.status = status
        self.config = config
        self.meter = ThroughputMeter(THROUGHPUT_WINDOW_STEPS)
        self.best_tokens_per_sec = 0.0
        self.losses: deque[float] = deque(maxlen=config.loss_window)
        self.alerts: dict[str, Alert] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.meter.restart(time.monotonic(), state.num_input_tokens_seen)
        self.status.mark_training(current_step=state.global_step, total_steps=state.max_steps)

    def on_step_end(self, args, state, control, **kwargs):
        self.meter.record(time.monotonic(), state.num_input_tokens_seen)
        tokens_per_sec = self.meter.tokens_per_sec()
        if self.meter.full and tokens_per_sec is not None:
            self.best_tokens_per_sec = max(self.best_tokens_per_sec, tokens_per_sec)
            drop = throughput_drop_alert(tokens_per_sec, self.best_tokens_per_sec, self.config.alert_throughput_drop)
            self.set_alert("throughput_drop", drop)
        sec_per_step = self.meter.sec_per_step()
        self.status.update(
            current_step=state.global_step,
            epoch=round(state.epoch, 4) if state.epoch is not None else None,
            tokens_per_sec=round(tokens_per_sec, 1) if tokens_per_sec is not None else None,
            eta_sec=round((state.max_steps - state.global_step) * sec_per_step, 1) if sec_per_step else None,
            alerts=list(self.alerts.values()),
        )

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "loss" not in logs:
            return
        self.losses.append(logs["loss"])
        if (tokens_per_sec := self.meter.tokens_per_sec()) is not None:
            logs["tokens_per_sec"] = round(tokens_per_sec, 1)
        if len(self.losses) == self.losses.maxlen:
            self.set_alert("loss_noise", loss_noise_alert(self.losses, self.config.alert_loss_noise))
        self.status.update(
            loss=logs["loss"],
            learning_rate=logs.get("learning_rate"),
            loss_trend=loss_trend(self.losses),
            alerts=list(self.alerts.values()),
        )

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        validation_loss = (metrics or {}).get("eval_loss")
        if validation_loss is not None and self.losses:
            gap = train_val_gap_alert(self.losses[-1], validation_loss, self.config.alert_train_val_gap)
            self.set_alert("train_val_gap", gap)
        self.status.update(validation_loss=validation_loss, alerts=list(self.alerts.values()))
        self.restart_meter(state)

    def on_save(self, args, state, control, **kwargs):
        self.restart_meter(state)

    def on_train_end(self, args, state, control, **kwargs):
        self.status.update(force=True)

    def restart_meter(self, state) -> None:
        """Evaluation and checkpointing pause training; tokens/s measures the training alone."""
        self.meter.restart(time.monotonic(), state.num_input_tokens_seen)

    def set_alert(self, kind: str, alert: Alert | None) -> None:
        if alert is None:
            self.alerts.pop(kind, None)
            return
        if kind not in self.alerts:
            log.warning("Alert: %s", alert.message)
        self.alerts[kind] = alert
