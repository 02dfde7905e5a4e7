"""The shared tokenized cache through the CLI: a sweep tokenizes once, --cfg shows the knobs."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_sweep
from trainer.data.record_cache import DIGESTS_DIR, RECORDS_DIR

pytestmark = pytest.mark.slow

# Checked records and data digests, kept beside the tokenized entries.
KEPT_BESIDE = (RECORDS_DIR, DIGESTS_DIR)


@pytest.mark.long
def test_a_three_job_sweep_tokenizes_once_and_the_other_jobs_read_the_cache(model_cache, tmp_path):
    sweep_dir, cache_dir = tmp_path / "sweep", tmp_path / "cache"
    completed = run_sweep(
        sweep_dir, model_cache, "train.max_steps=2", f"data.cache_dir={cache_dir}", "train.learning_rate=1e-3,2e-3,3e-3"
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    logs = [(sweep_dir / str(job) / "trainer.log").read_text() for job in range(3)]
    assert [log.count("Tokenized data saved to the cache") for log in logs] == [1, 0, 0]
    assert [log.count("Tokenized data read from the cache") for log in logs] == [0, 1, 1]
    records = [json.loads((sweep_dir / str(job) / "tokenized.json").read_text()) for job in range(3)]
    assert [record["read_from_cache"] for record in records] == [False, True, True]
    assert len({record["cache_key"] for record in records}) == 1
    assert records[0]["stats"]["train_examples"] > 0 and records[1]["stats"] == records[0]["stats"]
    tokenized = [entry.name for entry in cache_dir.iterdir() if entry.is_dir() and entry.name not in KEPT_BESIDE]
    assert tokenized == [records[0]["cache_key"]]
    # The records are read and checked once too: the other jobs reuse them.
    assert ["its checked records are reused" in log for log in logs] == [False, True, True]


def test_with_the_cache_off_a_run_keeps_its_tokenized_data_to_itself(run_cli, tmp_path):
    shown = run_cli("data.cache=false", "--cfg", "job", cwd=tmp_path)
    assert shown.returncode == 0 and "cache: false" in shown.stdout and "num_proc: null" in shown.stdout
    run_dir, cache_dir = tmp_path / "run", tmp_path / "cache"
    overrides = ["train.max_steps=2", f"run.output_dir={run_dir}", f"data.cache_dir={cache_dir}", "data.cache=false"]
    completed = run_cli(*overrides, cwd=tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    record = json.loads((run_dir / "tokenized.json").read_text())
    assert record["cache_entry"] == str(run_dir / "tokenized" / record["cache_key"]) and not cache_dir.exists()
