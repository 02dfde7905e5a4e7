"""`python -m trainer.review` over a real 2x2 sweep, checked through the TensorBoard server's own
HTTP API: run names, the HParams experiment and sessions, the Custom Scalars layout, the scalars."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from trainer.run.outcome import EXIT_USER_ERROR

SWEEP = ["profile=plain,emoji_think", "train.learning_rate=1e-3,3e-3"]
QUICK_JOB = ["train.max_steps=4", "train.logging_steps=2", "train.eval_steps=2", "train.save_steps=4"]
PREVIEWS = ["preview=local", "preview.every_steps=2", "preview.num_prompts=1", "preview.max_new_tokens=4"]
JOBS = [
    "0/tensorboard/profile=plain,train.learning_rate=0.001",
    "1/tensorboard/profile=plain,train.learning_rate=0.003",
    "2/tensorboard/profile=emoji_think,train.learning_rate=0.001",
    "3/tensorboard/profile=emoji_think,train.learning_rate=0.003",
]
ALL_STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]


def review(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainer.review", *arguments], capture_output=True, text=True, timeout=60
    )


def test_a_path_that_is_not_a_directory_is_one_line_and_exit_2(tmp_path):
    completed = review(str(tmp_path / "missing"))
    assert completed.returncode == EXIT_USER_ERROR
    assert completed.stderr == f"Cannot review {tmp_path / 'missing'}: no such directory\n"


def test_a_directory_without_event_files_is_one_line_and_exit_2(tmp_path):
    completed = review(str(tmp_path))
    assert completed.returncode == EXIT_USER_ERROR
    assert completed.stderr.startswith(f"Cannot review {tmp_path}: no TensorBoard event files under it;")
    assert completed.stderr.count("\n") == 1


def test_print_only_prints_the_command_with_the_run_tensorboard_dir_as_logdir(tmp_path):
    event_dir = tmp_path / "run" / "tensorboard" / "profile=plain"
    event_dir.mkdir(parents=True)
    (event_dir / "events.out.tfevents.1.host.1.0").touch()
    completed = review(str(tmp_path / "run"), "--print-only")
    assert completed.returncode == 0, completed.stderr
    words = completed.stdout.split()
    assert words[:6] == [
        "tensorboard",
        "--logdir",
        str(tmp_path / "run" / "tensorboard"),
        "--host",
        "127.0.0.1",
        "--port",
    ]
    assert int(words[6]) > 0 and len(words) == 7


@pytest.fixture(scope="module")
def sweep(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The issue's 2x2 sweep, a few steps per job, with previews."""
    sweep_dir = tmp_path_factory.mktemp("review") / "sweep"
    command = [
        sys.executable, "-m", "trainer", "--multirun", *SWEEP, *QUICK_JOB, *PREVIEWS,
        f"model.cache_dir={model_cache}", f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip
    completed = subprocess.run(command, cwd=sweep_dir.parent, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return sweep_dir, completed


def start_review(sweep_dir: Path, sigint_ignored: bool = False) -> tuple[subprocess.Popen, str]:
    """`python -m trainer.review SWEEP` running, and the first URL it printed; with `sigint_ignored`,
    started as a shell starts a background job of a script (SIGINT ignored, inherited)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "trainer.review", str(sweep_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None,
    )
    first_line = process.stdout.readline()
    assert first_line.startswith(f"TensorBoard for {sweep_dir}: http://127.0.0.1:"), first_line + process.stderr.read()
    return process, first_line.split(": ", 1)[1].strip()


def stop_with_ctrl_c(process: subprocess.Popen) -> str:
    """SIGINT, as a terminal's Ctrl-C sends it; returns what the process wrote to stderr."""
    process.send_signal(signal.SIGINT)
    return process.communicate(timeout=30)[1]


@pytest.fixture(scope="module")
def server(sweep):
    """The review's TensorBoard, once it has loaded every job's HParams session."""
    process, url = start_review(sweep[0])
    try:
        deadline = time.monotonic() + 120
        while not fully_loaded(url) and time.monotonic() < deadline:
            time.sleep(0.5)
        yield url
    finally:
        stop_with_ctrl_c(process)


def fully_loaded(url: str) -> bool:
    """Every job's run and previews run listed, and every job's HParams session read to its end."""
    return len(get(f"{url}data/runs")) == 2 * len(JOBS) and len(session_groups(url)) == len(JOBS)


def session_groups(url: str) -> list[dict]:
    request = {"experimentName": "", "allowedStatuses": ALL_STATUSES, "startIndex": 0, "sliceSize": 100}
    return get(f"{url}data/plugin/hparams/session_groups", request).get("sessionGroups", [])


def get(url: str, request: dict | None = None):
    """A TensorBoard API call; the hparams plugin takes its request as a JSON body."""
    body = None if request is None else json.dumps(request).encode()
    headers = {"Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=60) as response:
        return json.load(response)


@pytest.mark.slow
def test_the_sweep_console_has_no_tensorboard_reader_lines(sweep):
    _, completed = sweep
    output = completed.stdout + completed.stderr
    assert "Sweep summary:" in output
    assert "Directory watcher" not in output and "No path found" not in output


@pytest.mark.slow
def test_run_names_carry_the_overrides_and_previews_sit_under_their_run(server):
    runs = get(f"{server}data/runs")
    assert sorted(runs) == sorted(JOBS + [f"{job}/previews" for job in JOBS])
    text_tags = get(f"{server}data/plugin/text/tags")
    for job in JOBS:
        [tag] = text_tags[f"{job}/previews"]
        assert tag.startswith("preview/prompt_")
        query = urllib.parse.urlencode({"run": f"{job}/previews", "tag": tag})
        assert [entry["step"] for entry in get(f"{server}data/plugin/text/text?{query}")] == [2, 4]
        assert "config/text_summary" in text_tags[job]


@pytest.mark.slow
def test_hparams_list_the_swept_keys_first_and_the_final_metrics(server):
    experiment = get(f"{server}data/plugin/hparams/experiment", {"experimentName": ""})
    differing = [info["name"] for info in experiment["hparamInfos"] if info.get("differs")]
    assert {"profile", "learning_rate"} <= set(differing)
    assert [info["name"] for info in experiment["hparamInfos"][: len(differing)]] == differing
    assert {info["name"]["tag"] for info in experiment["metricInfos"]} >= {
        "hparams/eval_loss",
        "hparams/tokens_per_sec",
    }


@pytest.mark.slow
def test_hparams_sessions_are_named_by_job_number_and_overrides(server):
    groups = session_groups(server)
    assert sorted(group["name"] for group in groups) == [
        "0 profile=plain train.learning_rate=0.001",
        "1 profile=plain train.learning_rate=0.003",
        "2 profile=emoji_think train.learning_rate=0.001",
        "3 profile=emoji_think train.learning_rate=0.003",
    ]
    by_name = {group["name"]: group for group in groups}
    assert by_name["2 profile=emoji_think train.learning_rate=0.001"]["hparams"]["profile"] == "emoji_think"
    assert all(group["sessions"][0]["status"] == "STATUS_SUCCESS" for group in groups)
    assert all(len(group["metricValues"]) == 6 for group in groups)


@pytest.mark.slow
def test_the_custom_scalars_layout_overlays_train_and_eval_loss(server):
    layout = get(f"{server}data/plugin/custom_scalars/layout")
    [category] = layout["category"]
    charts = {chart["title"]: chart["multiline"]["tag"] for chart in category["chart"]}
    assert charts == {
        "loss: train vs eval": ["^train/loss$", "^eval/loss$"],
        "tokens/s": ["^train/tokens_per_sec$"],
        "learning rate": ["^train/learning_rate$"],
        "grad norm": ["^train/grad_norm$"],
    }


@pytest.mark.slow
def test_only_the_compared_scalars_and_final_metrics_are_written(server):
    tags = get(f"{server}data/plugin/scalars/tags")
    assert set(tags) == set(JOBS)
    for run_tags in tags.values():
        assert {tag for tag in run_tags if not tag.startswith("hparams/")} == {
            "train/loss", "eval/loss", "train/tokens_per_sec", "train/learning_rate", "train/grad_norm",
        }  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["foreground", "inherited-ignored"])
def test_ctrl_c_stops_the_review_with_exit_0_and_no_traceback(sweep, sigint_ignored):
    process, url = start_review(sweep[0], sigint_ignored)
    assert get(f"{url}data/runs") is not None
    stderr = stop_with_ctrl_c(process)
    assert process.returncode == 0
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
