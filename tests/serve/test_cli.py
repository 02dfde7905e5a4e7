"""`python -m trainer.serve` as an operator runs it: its flags, and SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import pytest

from tests.helpers import free_port, wait_until_healthy

pytestmark = pytest.mark.slow


def serve_command(model: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "trainer.serve", "--model", str(model), *flags]


def test_sigterm_stops_the_server_within_seconds_in_a_long_generation(long_context_model):
    port = free_port()
    process = subprocess.Popen(
        serve_command(long_context_model, "--port", str(port), "--max-tokens", "1000000"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
        outcome: list[BaseException] = []

        def endless() -> None:
            try:
                client.chat.completions.create(
                    model="default", messages=[{"role": "user", "content": "hi"}], max_tokens=1_000_000
                )
            except openai.APIError as error:
                outcome.append(error)

        asker = threading.Thread(target=endless)
        asker.start()
        time.sleep(2)  # well into the generation
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        took = time.monotonic() - signalled
        asker.join(timeout=10)
    finally:
        process.kill()
    assert took < 5
    assert isinstance(outcome[0], openai.APIStatusError) and outcome[0].status_code == 503


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--allow-dir", "/no/such/dir"], "--allow-dir /no/such/dir: not a directory"),
        (["--model", "/etc"], "--model /etc: not a model directory (no config.json in it)"),
        (["--queue-size", "-1"], "--queue-size must be >= 0"),
        (["--max-tokens", "0"], "--max-tokens must be >= 1"),
        (["--token-env", "TRAINER_TEST_UNSET_TOKEN"], "TRAINER_TEST_UNSET_TOKEN: that environment variable is not set"),
    ],
)
def test_a_bad_flag_exits_2_with_one_line(tiny_model, flags, message):
    environ = {key: value for key, value in os.environ.items() if key != "TRAINER_TEST_UNSET_TOKEN"}
    finished = subprocess.run(
        serve_command(tiny_model, *flags), capture_output=True, text=True, timeout=120, env=environ
    )
    assert finished.returncode == 2
    assert message in finished.stderr
    assert "Traceback" not in finished.stderr


def test_a_model_that_cannot_be_loaded_exits_2(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    finished = subprocess.run(serve_command(tmp_path), capture_output=True, text=True, timeout=120)
    assert finished.returncode == 2
    assert f"--model {tmp_path} could not be loaded" in finished.stderr
    assert "Traceback" not in finished.stderr
