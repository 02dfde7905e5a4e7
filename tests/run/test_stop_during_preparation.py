"""Before training starts there is no step to finish: a SIGTERM while the data is fingerprinted,
read, checked or tokenized stops the run at once, as interrupted (exit 3, result.json)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.helpers import read_json, trainer_command
from trainer.data.loading import SAMPLE_DATA
from trainer.run.interruption import RunInterrupted, masked_interruption
from trainer.run.outcome import EXIT_INTERRUPTED

# Blank lines, skipped by the reader: enough bytes that hashing them takes a while.
BLANK_MEGABYTE = (" " * 1023 + "\n") * 1024


def padded_chats(path: Path, megabytes: int) -> Path:
    with path.open("w", encoding="utf-8") as file:
        file.write(SAMPLE_DATA.read_text(encoding="utf-8"))
        for _ in range(megabytes):
            file.write(BLANK_MEGABYTE)
    return path


def test_sigterm_while_the_data_is_fingerprinted_stops_the_run_before_any_tokenizing(model_cache, tmp_path):
    run_dir, cache_dir = tmp_path / "run", tmp_path / "cache"
    data = padded_chats(tmp_path / "chats.jsonl", megabytes=100)
    command = trainer_command(
        model_cache,
        f"data.train={data}",
        f"data.cache_dir={cache_dir}",
        "train.max_steps=2",
        f"hydra.run.dir={run_dir}",
    )
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in process.stdout:
        output.append(line)
        if "Fingerprinting the data" in line:
            process.send_signal(signal.SIGTERM)
            break
    output.append(process.communicate(timeout=300)[0])
    assert process.returncode == EXIT_INTERRUPTED, "".join(output)
    result = read_json(run_dir / "result.json")
    assert result["error_type"] == "interrupted"
    assert result["error_message"].startswith("Stopped by SIGTERM before training started")
    assert not (run_dir / "tokenized.json").exists() and not any(cache_dir.glob("*/stats.json"))


def test_a_stop_that_a_librarys_clean_up_replaced_by_its_own_error_is_still_found():
    """As datasets' map does: its `finally` waits on the worker processes and raises TimeoutError."""
    stop = RunInterrupted("Stopped by SIGTERM before training started")
    try:
        try:
            raise stop
        finally:
            raise TimeoutError
    except TimeoutError as error:
        assert masked_interruption(error) is stop
    assert masked_interruption(TimeoutError()) is None
