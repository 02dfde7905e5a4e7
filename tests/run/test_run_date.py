"""A run's date (run.date, what "{date}" in the system prompt says) is decided once, at its first
start, recorded in its composed config and kept by its resume: the same run tokenizes the same on
any day."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import pytest
from omegaconf import OmegaConf

from tests.helpers import patched_trainer, read_json
from trainer.cli.argv import pin_run_date
from trainer.config import load

# The process's calendar moved to another day, its clock left alone.
ANOTHER_DAY = "2031-03-04"
ON_ANOTHER_DAY = f"import trainer.config.load as load; load.today = lambda: {ANOTHER_DAY!r}"


def test_a_command_line_is_dated_today_unless_it_gives_a_date_or_resumes(monkeypatch):
    monkeypatch.setattr(load, "today", lambda: ANOTHER_DAY)
    assert pin_run_date(["train.max_steps=3"]) == [f"run.date={ANOTHER_DAY}", "train.max_steps=3"]
    assert pin_run_date(["--multirun", "seed=1,2"]) == ["--multirun", f"run.date={ANOTHER_DAY}", "seed=1,2"]
    assert pin_run_date(["--cfg", "job"]) == ["--cfg", "job", f"run.date={ANOTHER_DAY}"]
    assert pin_run_date(["run.date=2026-12-01"]) == ["run.date=2026-12-01"]
    assert pin_run_date(["hydra.run.dir=x", "run.resume=true"]) == ["hydra.run.dir=x", "run.resume=true"]


@pytest.mark.parametrize("arguments", [["seed=1", "--cfg", "job"], ["--cfg", "job", "seed=1"], ["--cfg", "job"]])
def test_the_date_joins_the_overrides_wherever_hydras_flags_stand(arguments):
    """Hydra's parser takes the overrides as one run of words: a date after a trailing flag would
    be refused as an unrecognized argument."""
    shown = subprocess.run(
        [sys.executable, "-m", "trainer", *arguments], capture_output=True, text=True, timeout=120, check=False
    )
    assert shown.returncode == 0, shown.stderr
    assert "date: '" in shown.stdout


def test_the_calendar_reaches_a_run_only_through_run_date(make_config, monkeypatch):
    monkeypatch.setattr(load, "today", lambda: ANOTHER_DAY)
    assert load.dated(make_config("run.date=null")).run.date == ANOTHER_DAY
    assert load.dated(make_config("run.date=2026-12-01")).run.date == "2026-12-01"


@pytest.mark.slow
def test_a_run_is_dated_at_its_first_start_and_its_resume_on_another_day_keeps_that_date(run_cli, tmp_path):
    run_dir = tmp_path / "run"
    run = ["train.max_steps=2", "train.save_steps=2", "train.eval_steps=2", f"hydra.run.dir={run_dir}"]
    before = date.today().isoformat()
    first = run_cli(*run, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    first_date = OmegaConf.load(run_dir / ".hydra" / "config.yaml").run.date
    assert first_date in {before, date.today().isoformat()}
    first_key = read_json(run_dir / "tokenized.json")["cache_key"]

    # The patch works: a command line started on that day is dated that day.
    shown = patched_trainer(ON_ANOTHER_DAY, "--cfg", "job", cwd=tmp_path)
    assert OmegaConf.create(shown.stdout).run.date == ANOTHER_DAY

    resumed = patched_trainer(ON_ANOTHER_DAY, f"resume={run_dir}", "train.max_steps=3", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert read_json(run_dir / "result.json")["global_step"] == 3
    # Same system prompt, so the same tokens: the resume read the first start's tokenized entry.
    assert read_json(run_dir / "tokenized.json")["cache_key"] == first_key
    log = (run_dir / "trainer.log").read_text()
    assert log.count(f"date={first_date} ->") == 2 and ANOTHER_DAY not in log
