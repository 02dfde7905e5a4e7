"""`launcher=joblib` through the CLI: a sweep's jobs run in worker processes of their own, at once,
and share the tokenized-data cache."""

from __future__ import annotations

import csv

import pytest

from tests.helpers import read_json, run_sweep

pytestmark = pytest.mark.slow


def test_a_joblib_sweep_runs_each_job_in_its_own_process_and_tokenizes_once(model_cache, tmp_path):
    sweep_dir, cache_dir = tmp_path / "sweep", tmp_path / "cache"
    completed = run_sweep(
        sweep_dir, model_cache, "launcher=joblib", "train.max_steps=2", f"data.cache_dir={cache_dir}",
        "train.learning_rate=1e-3,2e-3",
    )  # fmt: skip

    assert completed.returncode == 0, completed.stdout + completed.stderr
    jobs = [sweep_dir / str(number) for number in range(2)]
    results = [read_json(job / "result.json") for job in jobs]
    assert [(result["success"], result["global_step"]) for result in results] == [(True, 2), (True, 2)]
    # The default launcher runs every job in the sweep's own process; joblib's workers are two.
    assert len({read_json(job / "status.json")["pid"] for job in jobs}) == 2
    with (sweep_dir / "summary.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [(row["overrides"], row["status"]) for row in rows] == [
        ("train.learning_rate=0.001", "completed"),
        ("train.learning_rate=0.002", "completed"),
    ]
    # Whichever job came second (waiting on the entry's lock if both came at once) read the first one's entry.
    records = [read_json(job / "tokenized.json") for job in jobs]
    assert sorted(record["read_from_cache"] for record in records) == [False, True]
    assert len({record["cache_key"] for record in records}) == 1
    assert [entry.name for entry in cache_dir.iterdir() if entry.is_dir()] == [records[0]["cache_key"]]
