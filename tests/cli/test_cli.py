"""`python -m trainer` as a user runs it: a fast CLI and clear, traceback-free errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer.cli.main import config_dir
from trainer.run.outcome import EXIT_USER_ERROR


@pytest.mark.parametrize("flag", ["--help", "--cfg job"])
def test_help_and_cfg_do_not_import_torch_or_transformers(flag, tmp_path):
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('HEAVY', sorted({'torch', 'transformers'} & set(sys.modules))))\n"
        f"sys.argv = ['trainer', *{flag.split()!r}]\n"
        "from trainer.__main__ import main\n"
        "main()\n"
    )
    completed = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert "HEAVY []" in completed.stdout


def test_help_describes_every_config_group_with_its_options_and_default(compose_dictconfig, tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "trainer", "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    section = completed.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    described = {line.split()[0]: line.split(maxsplit=1)[1] for line in section.splitlines() if line.startswith("  ")}
    conf = Path(config_dir())
    groups = {path.name for path in conf.iterdir() if path.is_dir() and path.name != "hydra"}
    assert set(described) == groups
    defaults = compose_dictconfig(return_hydra_config=True).hydra.runtime.choices
    for group in groups:
        what, _, options = described[group].rpartition(": ")
        assert len(what.split()) >= 4, f"{group}: no description"
        listed = sorted(options.split(", "))
        assert listed == sorted(f"{o.stem}{'*' * (o.stem == defaults[group])}" for o in (conf / group).glob("*.yaml"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is allowed where CUDA exists")
def test_fp16_on_cpu_exits_with_one_clear_line(run_cli, tmp_path):
    completed = run_cli("precision=fp16", cwd=tmp_path)
    assert completed.returncode == EXIT_USER_ERROR
    output = completed.stdout + completed.stderr
    assert "Invalid configuration: precision=fp16 needs a CUDA GPU" in output
    assert "Traceback" not in output


def test_a_missing_data_file_exits_non_zero_and_names_the_key(run_cli, tmp_path):
    completed = run_cli(f"data.train={tmp_path / 'nope.jsonl'}", cwd=tmp_path)
    assert completed.returncode == EXIT_USER_ERROR
    assert f"data.train={tmp_path / 'nope.jsonl'} does not exist" in completed.stdout
    assert "Traceback" not in completed.stdout + completed.stderr


def test_a_misspelt_key_exits_2_and_names_the_key_it_meant(run_cli, tmp_path):
    completed = run_cli("train.learnin_rate=1e-4", cwd=tmp_path)
    assert completed.returncode == EXIT_USER_ERROR
    assert "train.learnin_rate is not a setting; did you mean train.learning_rate?" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["sweep", "resume=nowhere"], "Cannot resume: nowhere is not a sweep directory: it has no multirun.yaml"),
        (["serve", "--model", "nowhere"], "--model nowhere: not a model directory (no config.json in it)"),
    ],
)
def test_sweep_and_serve_are_commands_of_trainer(command, message, monkeypatch, capsys, caplog):
    from trainer.cli.main import main

    monkeypatch.setattr(sys, "argv", ["trainer", *command])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == EXIT_USER_ERROR
    assert message in capsys.readouterr().err + caplog.text
