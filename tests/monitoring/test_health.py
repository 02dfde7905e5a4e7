"""Throughput, loss trend and alerts from plain numbers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from trainer.config.schema import MonitoringConfig
from trainer.monitoring.health import (
    ThroughputMeter,
    loss_noise_alert,
    loss_trend,
    throughput_drop_alert,
    train_val_gap_alert,
)
from trainer.monitoring.monitor import TrainingMonitorCallback
from trainer.run.status import StatusReader, StatusWriter


@pytest.mark.parametrize(
    ("losses", "trend"),
    [
        ([3.0, 2.8, 2.5, 2.3, 2.0], "improving"),
        ([2.0, 2.1, 2.3, 2.4, 2.6], "rising"),
        ([2.0, 2.02, 1.99, 2.01, 2.0], "stable"),
        ([3.0, 2.0], None),
    ],
)
def test_loss_trend_over_the_window(losses, trend):
    assert loss_trend(losses) == trend


def test_throughput_counts_tokens_over_time_and_leaves_out_pauses():
    meter = ThroughputMeter(window_steps=4)
    meter.restart(now=0.0, tokens_seen=0)
    meter.record(now=1.0, tokens_seen=500)
    meter.record(now=2.0, tokens_seen=1000)
    assert (meter.tokens_per_sec(), meter.sec_per_step()) == (500.0, 1.0)
    meter.restart(now=30.0, tokens_seen=1000)  # after a 28 s evaluation
    meter.record(now=32.0, tokens_seen=2000)
    assert meter.tokens_per_sec() == 500.0
    assert not meter.full


def test_throughput_window_keeps_only_the_last_steps():
    meter = ThroughputMeter(window_steps=2)
    for second, tokens in enumerate([0, 100, 200, 1200, 2200]):
        meter.record(now=float(second), tokens_seen=tokens)
    assert meter.full and meter.tokens_per_sec() == 1000.0


def test_throughput_drop_alerts_below_the_share_of_the_best():
    assert throughput_drop_alert(current=600.0, best=1000.0, drop=0.5) is None
    alert = throughput_drop_alert(current=400.0, best=1000.0, drop=0.5)
    assert alert.type == "throughput_drop" and "60% below" in alert.message


def test_train_val_gap_alerts_when_validation_loss_is_far_above_train_loss():
    assert train_val_gap_alert(train_loss=1.0, validation_loss=1.4, gap=0.5) is None
    assert train_val_gap_alert(train_loss=1.0, validation_loss=1.6, gap=0.5).type == "train_val_gap"


def test_a_steadily_falling_loss_is_not_noise_but_a_jumping_one_is():
    assert loss_noise_alert([5.0, 4.0, 3.0, 2.0, 1.0], limit=0.25) is None
    assert loss_noise_alert([2.0, 4.0, 1.0, 5.0, 2.0], limit=0.25).type == "loss_noise"


def test_a_loss_that_falls_fast_then_levels_off_is_not_noise():
    # The first 100 steps of the default run, logged every 10 steps.
    falling = [5.541, 4.01, 2.798, 2.18, 1.94, 1.898, 1.858, 1.748, 1.74, 1.624]
    assert loss_noise_alert(falling, limit=0.25) is None


def test_the_monitor_raises_and_clears_alerts_in_the_status(tmp_path, caplog):
    writer = StatusWriter(tmp_path / "status.json", interval_sec=0)
    monitor = TrainingMonitorCallback(writer, MonitoringConfig(loss_window=5))
    state = SimpleNamespace(global_step=0, max_steps=10, num_input_tokens_seen=0, is_world_process_zero=True)
    monitor.on_train_begin(None, state, None)
    for loss in (1.0, 3.0, 1.0, 3.0, 1.0):
        monitor.on_log(None, state, None, logs={"loss": loss})
    monitor.on_evaluate(None, state, None, metrics={"eval_loss": 2.0})
    assert [alert.type for alert in StatusReader(tmp_path).read().alerts] == ["loss_noise", "train_val_gap"]
    assert "Alert: the loss swings" in caplog.text
    for loss in (1.0, 1.0, 1.0, 1.0, 1.0):
        monitor.on_log(None, state, None, logs={"loss": loss})
    monitor.on_evaluate(None, state, None, metrics={"eval_loss": 1.1})
    status = StatusReader(tmp_path).read()
    assert (status.alerts, status.validation_loss, status.loss_trend) == ([], 1.1, "stable")
