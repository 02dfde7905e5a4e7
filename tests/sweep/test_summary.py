"""The sweep summary: one row per job directory, the best job marked, written atomically."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from trainer.run.files import write_json_atomic, write_text_atomic
from trainer.sweep.metrics import best_index, objective
from trainer.sweep.plot import plot_loss_curves
from trainer.sweep.summary import write_summary


def make_job(sweep_dir: Path, number: int, overrides: list[str], result: dict | None) -> None:
    job_dir = sweep_dir / str(number)
    write_text_atomic(job_dir / ".hydra" / "overrides.yaml", "".join(f"- {item}\n" for item in overrides))
    if result is not None:
        write_json_atomic(job_dir / "result.json", result)


def result(eval_loss: float | None, success: bool = True) -> dict:
    return {
        "success": success,
        "final_loss": None if eval_loss is None else eval_loss - 0.1,
        "eval_loss": eval_loss,
        "runtime_sec": 3.5,
        "summary": {"tokens_per_sec": 1000.0},
        "error_type": None if success else "data_error",
    }


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    make_job(tmp_path, 0, ["train.learning_rate=1e-3", "run.resume=true"], result(1.5))
    make_job(tmp_path, 1, ["train.learning_rate=2e-3"], result(0.9))
    make_job(tmp_path, 2, ["train.learning_rate=-1"], result(None, success=False))
    make_job(tmp_path, 10, ["train.learning_rate=5e-3"], None)
    return tmp_path


def test_rows_follow_job_order_with_status_and_overrides(sweep_dir):
    rows = write_summary(sweep_dir, "eval_loss", "min")
    assert [(row.job, row.status, row.overrides) for row in rows] == [
        ("0", "completed", "train.learning_rate=1e-3"),
        ("1", "completed", "train.learning_rate=2e-3"),
        ("2", "failed (data_error)", "train.learning_rate=-1"),
        ("10", "running", "train.learning_rate=5e-3"),
    ]


def test_exactly_the_best_job_by_the_configured_metric_is_marked(sweep_dir):
    assert [row.best for row in write_summary(sweep_dir, "eval_loss", "min")] == [False, True, False, False]
    assert [row.best for row in write_summary(sweep_dir, "eval_loss", "max")] == [True, False, False, False]


def test_csv_and_markdown_hold_every_row(sweep_dir):
    write_summary(sweep_dir, "eval_loss", "min")
    with (sweep_dir / "summary.csv").open() as file:
        table = list(csv.DictReader(file))
    assert [row["job"] for row in table] == ["0", "1", "2", "10"]
    assert table[1]["best"] == "True" and table[1]["eval_loss"] == "0.9"
    markdown = (sweep_dir / "summary.md").read_text()
    assert "| ★ | 1 | `train.learning_rate=2e-3` | completed | 0.8 | 0.9 | 1,000 | 3.5 |" in markdown
    assert markdown.count("★") == 2  # the legend and the best row


def test_the_plot_is_drawn_when_jobs_logged_no_loss(sweep_dir):
    """Jobs refused or still starting have no TensorBoard directory: no curve, and no error."""
    target = sweep_dir / "summary.png"
    plot_loss_curves(write_summary(sweep_dir, "eval_loss", "min"), target)
    assert target.read_bytes().startswith(b"\x89PNG")


def test_a_failed_job_is_a_nan_objective_for_sweepers():
    assert math.isnan(objective(result(None, success=False), "eval_loss"))
    assert objective(result(0.5), "eval_loss") == 0.5
    assert objective(result(0.5), "tokens_per_sec") == 1000.0


def test_best_index_ignores_jobs_without_the_metric():
    assert best_index([None, 2.0, 1.0, None], "min") == 2
    assert best_index([None, None], "max") is None


def with_exact_match(base: dict, share: float) -> dict:
    return {**base, "summary": {**base["summary"], "eval/exact_match": share}}


def test_a_generation_eval_metric_ranks_jobs_and_is_a_column(tmp_path):
    # The job with the higher eval loss answers right more often: it is the best by exact match.
    make_job(tmp_path, 0, ["train.learning_rate=1e-3"], with_exact_match(result(1.5), 0.75))
    make_job(tmp_path, 1, ["train.learning_rate=2e-3"], with_exact_match(result(0.9), 0.25))
    rows = write_summary(tmp_path, "eval/exact_match", "max")
    assert [row.best for row in rows] == [True, False]
    table = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert [row["eval/exact_match"] for row in table] == ["0.75", "0.25"]
    assert "| eval/exact_match |" in (tmp_path / "summary.md").read_text()
    assert objective(with_exact_match(result(1.5), 0.75), "eval/exact_match") == 0.75
