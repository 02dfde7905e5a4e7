"""What several test modules share: commands that run trainer, waits, and readers of its files.
Test modules import from here, never from one another."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from trainer.cli.argv import is_override
from trainer.config.validate import validate_config
from trainer.data.tokenization import IGNORE_INDEX
from trainer.errors import ConfigError
from trainer.facts import gather_facts
from trainer.run.layout import RunDirectory

# The date tests' runs are dated (run.date): what the default system prompt's "{date}" says, so
# their tokens (and losses) are the same on any day. The pinned losses were made on this day.
RUN_DATE = "2026-12-01"
# Small enough for a few seconds on 2 CPU cores, large enough for the loss to fall visibly.
FAST_RUN = ["train.max_steps=12", "train.logging_steps=2", "train.eval_steps=6", "train.save_steps=6"]


def trainer_command(model_cache: Path, *arguments: str) -> list[str]:
    """`python -m trainer ARGUMENTS` with the tests' model cache beside the other overrides:
    argparse takes the overrides as one run of words, before or after the flags (`--cfg job`)."""
    first = next((at for at, argument in enumerate(arguments) if is_override(argument)), len(arguments))
    cache = f"model.cache_dir={model_cache}"
    return [sys.executable, "-m", "trainer", *arguments[:first], cache, *arguments[first:]]


def resume(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    """`python -m trainer resume=DIR`: the run's saved config (its model cache included) is used."""
    command = [sys.executable, "-m", "trainer", f"resume={run_dir}", *overrides]
    return subprocess.run(command, cwd=run_dir.parent, capture_output=True, text=True, timeout=600)


def kill_at_checkpoint(model_cache: Path, run_dir: Path, step: int, *arguments: str) -> None:
    """Start `python -m trainer ARGUMENTS` in `run_dir` and SIGKILL it once checkpoint-STEP exists."""
    process = subprocess.Popen(
        trainer_command(model_cache, *arguments, f"hydra.run.dir={run_dir}"),
        cwd=run_dir.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for(lambda: (run_dir / "checkpoints" / f"checkpoint-{step}").is_dir(), process)
    process.send_signal(signal.SIGKILL)
    process.wait()


def losses_by_step(run_dir: Path) -> list[tuple[int, float]]:
    events = EventAccumulator(str(RunDirectory(run_dir).tensorboard_dir))
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars("train/loss")]


def wait_for(condition, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the run ended before the moment the test waits for"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_healthy(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "trainer.serve exited before it was healthy"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"trainer.serve did not become healthy within {timeout}s")


def file_hashes(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def tree_digest(directory: Path) -> dict[str, str]:
    """Every file's sha256 and every directory, by path: what must stay as it was, byte for byte."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for path in sorted(directory.rglob("*"))
    }


def patched_trainer(patch: str, *arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m trainer ARGUMENTS` in a process that first runs the Python statements `patch`: how
    a test puts the process on another day or a full disk without touching the machine."""
    start = (
        "import runpy, sys; sys.argv[0] = 'trainer'; runpy.run_module('trainer', run_name='__main__', alter_sys=True)"
    )
    command = [sys.executable, "-c", f"{patch}\n{start}", *arguments]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


QUICK_JOB = [*FAST_RUN, "train.max_steps=6"]


def sweep_command(sweep_dir: Path, model_cache: Path, *overrides: str) -> list[str]:
    return [
        sys.executable, "-m", "trainer", "--multirun", *QUICK_JOB, *overrides,
        f"model.cache_dir={model_cache}", f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip


def run_sweep(sweep_dir: Path, model_cache: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        sweep_command(sweep_dir, model_cache, *overrides),
        cwd=sweep_dir.parent, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def conversation(turns: int) -> list[dict[str, str]]:
    """A chat of `turns` sums, each answer a turn to learn."""
    messages = [{"role": "system", "content": "Answer with the sum."}]
    for turn in range(turns):
        messages += [
            {"role": "user", "content": f"What is {turn} plus {turn * 7}?"},
            {"role": "assistant", "content": f"{turn} + {turn * 7} = {turn * 8}"},
        ]
    return messages


def summed_loss_one_by_one(model, features) -> torch.Tensor:
    total = torch.zeros(())
    for feature in features:
        labels = torch.tensor([feature["labels"]])
        logits = model(input_ids=torch.tensor([feature["input_ids"]])).logits[0, :-1]
        total += torch.nn.functional.cross_entropy(logits, labels[0, 1:], ignore_index=IGNORE_INDEX, reduction="sum")
    return total


# Four short steps, a preview round every two (and at the end, which is step 4 too).
PREVIEW_RUN = [
    "train.max_steps=4",
    "train.logging_steps=1",
    "train.save_steps=2",
    "train.eval_steps=100",
    "train.per_device_train_batch_size=4",
    "preview.every_steps=2",
    "preview.num_prompts=2",
    "preview.max_new_tokens=6",
]


def read_previews(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "previews.jsonl").read_text().splitlines()]


def problems_of(config) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate_config(config, gather_facts())
    return caught.value.problems


def learned_text(tokenizer, example) -> list[str]:
    """The runs of consecutive labelled tokens, decoded."""
    runs, current = [], []
    for label in example.labels:
        if label == IGNORE_INDEX:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(label)
    if current:
        runs.append(current)
    return [tokenizer.decode(run) for run in runs]
