"""Runs with the generation eval: what they log and keep, early stopping, the best checkpoint, and
`python -m trainer.eval` on a finished sweep."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2

from tests.helpers import read_json, resume, run_sweep
from trainer.run.layout import RunDirectory

# A tiny, cheap generation eval: 4 answers of at most 4 tokens, scored at every evaluation.
SMALL_EVAL = ["eval.enabled=true", "eval.max_samples=4", "eval.max_new_tokens=4", "eval.batch_size=4"]
# A flat run: the learning rate too small to change a greedy answer, so no evaluation improves.
FLAT_RUN = [
    "profile=regime3", *SMALL_EVAL,
    "train.learning_rate=1e-12", "train.max_steps=12", "train.logging_steps=2",
    "train.eval_steps=2", "train.save_steps=2", "train.save_total_limit=1",
    "train.early_stopping.patience=2", "train.early_stopping.metric=eval/exact_match",
    "train.early_stopping.mode=max", "train.keep_best=true",
]  # fmt: skip


def scalar_steps(run_dir: Path, tag: str) -> list[int]:
    events = EventAccumulator(str(RunDirectory(run_dir).tensorboard_dir))
    events.Reload()
    return [event.step for event in events.Scalars(tag)]


def layout_charts(run_dir: Path) -> dict[str, list[str]]:
    events = EventAccumulator(str(RunDirectory(run_dir).tensorboard_dir))
    events.Reload()
    layout = layout_pb2.Layout()
    layout.ParseFromString(events.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    return {chart.title: list(chart.multiline.tag) for category in layout.category for chart in category.chart}


@pytest.mark.long
def test_a_flat_run_stops_early_keeps_its_best_checkpoint_and_resumes_to_nothing(run_cli, tmp_path):
    run_dir = tmp_path / "flat"
    completed = run_cli(*FLAT_RUN, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr

    result = read_json(run_dir / "result.json")
    # Evaluations at 2 (the best: the first), 4 and 6 (no better twice: patience 2).
    assert result["success"] and result["stopped_early"] and result["global_step"] == 6
    assert result["best_checkpoint_path"] == str(run_dir / "checkpoints" / "checkpoint-2")
    assert Path(result["best_checkpoint_path"]).is_dir(), "save_total_limit=1 must not remove the best"
    evaluations = result["summary"]["generation_eval"]["evaluations"]
    assert [entry["step"] for entry in evaluations] == [2, 4, 6]
    assert result["summary"]["eval/exact_match"] == evaluations[-1]["eval/exact_match"]
    assert "eval/well_formed_answer" in result["summary"]
    for step in (2, 4, 6):
        rows = [json.loads(line) for line in (run_dir / "evals" / f"step-{step}.jsonl").read_text().splitlines()]
        assert len(rows) == 4 and set(rows[0]["checks"]) == {"exact_match", "well_formed_answer"}

    assert scalar_steps(run_dir, "eval/exact_match") == [2, 4, 6]
    assert scalar_steps(run_dir, "eval/well_formed_answer") == [2, 4, 6]
    assert layout_charts(run_dir)["generation eval: share of answers"] == [
        "^eval/exact_match$",
        "^eval/well_formed_answer$",
    ]
    status = read_json(run_dir / "status.json")
    assert status["eval_metrics"]["step"] == 6 and "eval/exact_match" in status["eval_metrics"]

    resumed = resume(run_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert read_json(run_dir / "result.json") == result, "a run that stopped early trains no more on resume"


@pytest.mark.long
def test_trainer_eval_on_a_sweep_writes_one_row_per_job_and_marks_the_best(model_cache, tmp_path):
    sweep_dir = tmp_path / "sweep"
    completed = run_sweep(sweep_dir, model_cache, "profile=regime3", "train.learning_rate=1e-12,2e-3")
    assert completed.returncode == 0, completed.stderr

    command = [sys.executable, "-m", "trainer.eval", str(sweep_dir), "--metric", "eval/well_formed_answer"]
    scored = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert scored.returncode == 0, scored.stderr

    rows = list(csv.DictReader((sweep_dir / "eval_summary.csv").open()))
    assert [row["job"] for row in rows] == ["0", "1"]
    assert [row["best"] for row in rows].count("True") == 1
    assert all(row["eval/exact_match"] != "" and row["eval/well_formed_answer"] != "" for row in rows)
    for job in ("0", "1"):
        result = read_json(sweep_dir / job / "result.json")
        assert "eval/well_formed_answer" in result["summary"]
        assert (sweep_dir / job / "evals" / f"step-{result['global_step']}.jsonl").is_file()


def test_trainer_eval_of_a_checkpoint_that_does_not_exist_is_one_line_and_exit_2(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("seed: 42\n")
    command = [sys.executable, "-m", "trainer.eval", str(run_dir), "--checkpoint", "7"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        f"--checkpoint 7: {run_dir}/checkpoints/checkpoint-7 does not exist; {run_dir} keeps none"
    ]


def test_trainer_eval_is_a_command_of_trainer_too(tmp_path):
    command = [sys.executable, "-m", "trainer", "eval", str(tmp_path / "missing")]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [f"{tmp_path / 'missing'} does not exist or is not a directory"]


@pytest.mark.long
def test_final_model_best_holds_the_best_checkpoints_weights_not_the_last_steps(run_cli, tmp_path):
    from safetensors.torch import load_file

    run_dir = tmp_path / "best"
    # mode=max on a falling eval loss: the first evaluation is the best, far from the last step.
    completed = run_cli(
        "train.max_steps=6", "train.eval_steps=2", "train.save_steps=2", "train.save_total_limit=1",
        "train.final_model=best", "train.early_stopping.metric=eval_loss", "train.early_stopping.mode=max",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    best = run_dir / "checkpoints" / "checkpoint-2"
    assert read_json(run_dir / "result.json")["best_checkpoint_path"] == str(best)
    final, kept = load_file(run_dir / "final_model" / "model.safetensors"), load_file(best / "model.safetensors")
    assert all(final[name].equal(kept[name]) for name in final)
