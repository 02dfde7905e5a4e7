"""objective=dpo end to end: a run learns to prefer its chosen answers, and reports it under
TRL's names in result.json, status.json and TensorBoard; a bad pair stops the run before any
model loads; a sweep over beta computes the reference log-probs once."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import kill_at_checkpoint, losses_by_step, read_json, resume, run_sweep
from trainer.config.schema import PREFERENCE_METRICS
from trainer.data.preference import PREFERENCE_SAMPLE
from trainer.engine import TrainerEngine
from trainer.run.layout import RunDirectory

# A few dozen of the sample pairs (the right result chosen, one off rejected), evaluated on themselves.
PAIRS = 48


@pytest.fixture
def pairs_file(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(PREFERENCE_SAMPLE.read_text().splitlines(keepends=True)[:PAIRS]))
    return path


@pytest.mark.slow
def test_a_dpo_run_prefers_the_chosen_answers_of_its_training_pairs(make_config, pairs_file):
    config = make_config(
        "objective=dpo",
        f"data.train={pairs_file}",
        f"data.validation={pairs_file}",
        "train.max_steps=30",
        "train.per_device_train_batch_size=8",
        "train.logging_steps=10",
        "train.eval_steps=30",
        "train.save_steps=30",
    )
    result = TrainerEngine().run_job(config)
    assert result.success
    assert result.summary["eval_rewards/accuracies"] > 0.9
    assert result.summary["eval_rewards/margins"] > 0
    run = RunDirectory(Path(config.run.output_dir))
    assert set(read_json(run.status_file)["preference_metrics"]) == set(PREFERENCE_METRICS)
    events = EventAccumulator(str(run.tensorboard_dir)).Reload()
    tags = set(events.Tags()["scalars"])
    assert {f"train/{name}" for name in PREFERENCE_METRICS} <= tags
    assert {f"eval/{name}" for name in PREFERENCE_METRICS} <= tags


def test_a_pair_whose_chosen_equals_rejected_exits_2_naming_its_line(run_cli, tmp_path):
    pairs = [{"prompt": "Q?", "chosen": "A", "rejected": "B"}, {"prompt": "Q?", "chosen": "A", "rejected": "A"}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(pair) + "\n" for pair in pairs))
    completed = run_cli("objective=dpo", f"data.train={path}", cwd=tmp_path)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 2, output
    assert f"{path}:2 (example 1): 'chosen' equals 'rejected': the pair prefers nothing" in output
    assert "Traceback" not in output


@pytest.mark.long
@pytest.mark.slow
def test_a_beta_sweep_computes_the_reference_log_probs_once(model_cache, tmp_path, pairs_file):
    sweep_dir = tmp_path / "sweep"
    completed = run_sweep(
        sweep_dir,
        model_cache,
        "objective=dpo",
        f"data.train={pairs_file}",
        "train.max_steps=2",
        "objective.beta=0.05,0.1",
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    logs = [(sweep_dir / job / "trainer.log").read_text() for job in ("0", "1")]
    assert "Reference log-probs of the train pairs saved to the cache" in logs[0]
    assert "Reference log-probs of the train pairs read from the cache" in logs[1]
    with (sweep_dir / "summary.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert all(float(row["rewards/accuracies"]) >= 0 for row in rows)


@pytest.mark.long
@pytest.mark.slow
def test_a_resumed_dpo_run_takes_the_steps_of_an_uninterrupted_one(run_cli, model_cache, tmp_path, pairs_file):
    """Killed at a checkpoint and resumed, the run trains the same losses step by step: the
    reference log-probs are read back from the cache, the weights from the checkpoint."""
    arguments = ["objective=dpo", f"data.train={pairs_file}", "train.max_steps=8", "train.save_steps=4", "train.logging_steps=1", "train.per_device_train_batch_size=4"]  # fmt: skip
    whole = tmp_path / "whole"
    completed = run_cli(*arguments, f"hydra.run.dir={whole}", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    interrupted = tmp_path / "interrupted"
    kill_at_checkpoint(model_cache, interrupted, 4, *arguments)
    completed = resume(interrupted)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Reference log-probs of the train pairs read from the cache" in (interrupted / "trainer.log").read_text()
    expected = dict(losses_by_step(whole))
    resumed = dict(losses_by_step(interrupted))
    assert [step for step in resumed if step > 4] == [5, 6, 7, 8]
    assert all(resumed[step] == pytest.approx(expected[step], abs=1e-5) for step in range(5, 9))
