"""status.json: one writer, written atomically and on a time throttle; a reader gives it back."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from datetime import datetime, timedelta

import pytest

from trainer.errors import NotARunError, UserError
from trainer.run.status import Alert, RunStatus, StatusReader, StatusWriter


def read_file(path) -> dict:
    return json.loads(path.read_text())


def test_the_reader_gives_back_what_the_writer_wrote(tmp_path):
    writer = StatusWriter(tmp_path / "status.json", interval_sec=0)
    writer.mark_training(current_step=0, total_steps=10)
    writer.update(current_step=4, loss=1.5, loss_trend="improving", alerts=[Alert("loss_noise", "noisy")])
    status = StatusReader(tmp_path).read()
    assert status == RunStatus(
        status="training",
        current_step=4,
        total_steps=10,
        loss=1.5,
        loss_trend="improving",
        alerts=[Alert("loss_noise", "noisy")],
        timestamp=status.timestamp,
        pid=os.getpid(),
        host=socket.gethostname(),
        interval_sec=0,
    )
    assert status.timestamp is not None


def test_updates_within_the_interval_stay_in_memory_until_a_state_change(tmp_path):
    path = tmp_path / "status.json"
    writer = StatusWriter(path, interval_sec=3600)
    writer.mark_training(current_step=0, total_steps=10)
    writer.update(current_step=1)
    writer.update(current_step=2)
    assert read_file(path)["current_step"] == 0
    writer.mark_completed()
    assert read_file(path) | {"timestamp": None} == {
        **RunStatus(
            status="completed",
            current_step=2,
            total_steps=10,
            eta_sec=0.0,
            pid=os.getpid(),
            host=socket.gethostname(),
            interval_sec=3600,
        ).to_dict(),
        "timestamp": None,
    }


def test_a_crash_keeps_the_progress_and_adds_the_error(tmp_path):
    writer = StatusWriter(tmp_path / "status.json", interval_sec=0)
    writer.update(current_step=3, loss=2.0)
    writer.add_alert(Alert("nan_loss", "the loss of step 4 is nan"))
    writer.mark_crashed("Training stopped: the loss of step 4 is nan", "nan_loss")
    status = StatusReader(tmp_path).read()
    assert (status.status, status.current_step, status.loss) == ("crashed", 3, 2.0)
    assert (status.error_type, status.error_message) == ("nan_loss", "Training stopped: the loss of step 4 is nan")
    assert [alert.type for alert in status.alerts] == ["nan_loss"]


def test_non_finite_numbers_are_written_as_null(tmp_path):
    StatusWriter(tmp_path / "status.json", interval_sec=0).update(loss=float("nan"), learning_rate=float("inf"))
    data = read_file(tmp_path / "status.json")
    assert (data["loss"], data["learning_rate"]) == (None, None)


def test_a_disabled_writer_writes_nothing(tmp_path):
    writer = StatusWriter(tmp_path / "status.json", interval_sec=0)
    writer.enabled = False
    writer.mark_training(current_step=0, total_steps=10)
    assert not (tmp_path / "status.json").exists()


@pytest.mark.parametrize(
    "content", [None, "{not json", "[1, 2]", '{"status": "training", "current_step": "a", "alerts": [1]}']
)
def test_reading_a_directory_without_a_valid_status_is_a_user_error(tmp_path, content):
    if content is not None:
        (tmp_path / "status.json").write_text(content)
    with pytest.raises(NotARunError) as caught:
        StatusReader(tmp_path).read()
    assert isinstance(caught.value, UserError)
    assert "status" in str(caught.value)


def dead_pid() -> int:
    """The id of a process that has ended."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_running_run_whose_process_is_gone_is_stale(tmp_path):
    StatusWriter(tmp_path / "status.json", interval_sec=2).mark_training(current_step=3, total_steps=10)
    assert StatusReader(tmp_path).read().stale_reason() is None
    status = StatusReader(tmp_path).read()
    status.pid = dead_pid()
    assert status.stale_reason() == f"its process {status.pid} on {socket.gethostname()} is gone"
    status.status = "interrupted"
    assert status.stale_reason() is None


def test_a_run_on_another_host_is_stale_only_after_a_long_silence(tmp_path):
    StatusWriter(tmp_path / "status.json", interval_sec=2).mark_training(current_step=3, total_steps=10)
    status = StatusReader(tmp_path).read()
    status.host = "elsewhere"
    written = datetime.fromisoformat(status.timestamp)
    assert status.stale_reason(now=written + timedelta(minutes=10)) is None
    assert status.stale_reason(now=written + timedelta(minutes=31)) == "no status written for 1860s"
