"""A real run of the tiny model through the CLI, and what it leaves in its run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.helpers import FAST_RUN
from trainer.run.layout import RunDirectory

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished_run(run_cli, tmp_path_factory) -> Path:
    """One default run (shortened), started exactly as a user would start it."""
    workdir = tmp_path_factory.mktemp("cli-run")
    run_dir = workdir / "outputs" / "the-run"
    completed = run_cli(*FAST_RUN, f"hydra.run.dir={run_dir}", "monitoring.transformers_log_level=info", cwd=workdir)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return run_dir


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_the_run_directory_holds_every_file_of_the_contract(finished_run):
    expected = [
        ".hydra/config.yaml", ".hydra/overrides.yaml", ".hydra/hydra.yaml", "trainer.log", "env.json",
        "result.json", "final_model/config.json", "final_model/model.safetensors",
        "final_model/tokenizer.json", "checkpoints/checkpoint-12/optimizer.pt",
        "checkpoints/checkpoint-12/scheduler.pt", "checkpoints/checkpoint-12/rng_state.pth",
    ]  # fmt: skip
    assert [name for name in expected if not (finished_run / name).is_file()] == []
    assert list(RunDirectory(finished_run).tensorboard_dir.glob("events.out.tfevents.*"))


def test_result_json_reports_success_and_a_falling_loss(finished_run):
    result = read_json(finished_run / "result.json")
    assert result["success"] is True and result["error_message"] is None
    assert result["global_step"] == 12
    assert result["final_loss"] < result["summary"]["first_loss"] - 1.0
    assert result["eval_loss"] is not None
    assert result["last_checkpoint_path"] == str(finished_run / "checkpoints" / "checkpoint-12")
    assert result["final_model_path"] == str(finished_run / "final_model")
    assert result["summary"]["profile"] == {"name": "plain", "version": "1"}
    assert result["summary"]["packing"] is True  # data.packing=null packs the full-attention tiny model


def test_tensorboard_holds_train_and_eval_scalars(finished_run):
    events = EventAccumulator(str(RunDirectory(finished_run).tensorboard_dir))
    events.Reload()
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "eval/loss"} <= set(events.Tags()["scalars"])
    losses = [event.value for event in events.Scalars("train/loss")]
    assert [event.step for event in events.Scalars("train/loss")] == [1, 2, 4, 6, 8, 10, 12]
    assert losses[-1] < losses[0]


def test_trainer_log_holds_our_lines_and_transformers_own(finished_run):
    log = (finished_run / "trainer.log").read_text()
    assert "[trainer.progress][INFO] step 12/12" in log
    assert "[transformers.trainer][INFO] ***** Running training *****" in log


def test_env_json_names_the_versions_and_device(finished_run):
    env = read_json(finished_run / "env.json")
    assert env["packages"]["torch"] == torch.__version__
    assert env["device"]["type"] in ("cpu", "cuda")
    assert {"python", "git_commit", "cpu_count"} <= env.keys()


def test_final_model_reloads_with_the_last_checkpoints_weights(finished_run):
    final = AutoModelForCausalLM.from_pretrained(finished_run / "final_model")
    checkpoint = AutoModelForCausalLM.from_pretrained(finished_run / "checkpoints" / "checkpoint-12")
    tokenizer = AutoTokenizer.from_pretrained(finished_run / "final_model")
    inputs = tokenizer("What is 2 plus 3?", return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(final(**inputs).logits, checkpoint(**inputs).logits)
