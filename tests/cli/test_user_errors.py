"""Every user mistake the CLI can meet ends with exit status 2 and one actionable line, whether
Hydra, validation, the data reader or the file system finds it; only a crash exits 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trainer.run.outcome import EXIT_CRASHED, EXIT_USER_ERROR


def trainer(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m trainer ARGS`, flags first, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def user_error_output(completed: subprocess.CompletedProcess[str]) -> str:
    output = completed.stdout + completed.stderr
    assert completed.returncode == EXIT_USER_ERROR, output
    assert "Traceback" not in output
    return output


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["train.learnin_rate=1e-3"],
            "Invalid command line: train.learnin_rate is not a setting; did you mean train.learning_rate? "
            "train accepts learning_rate, lr_scheduler_type,",
        ),
        (
            ["train.learning_rate=abc"],
            "Invalid command line: train.learning_rate: Value 'abc' of type 'str' could not be converted to Float",
        ),
        (
            ["profile=nonexistent"],
            "Invalid command line: profile=nonexistent is unknown; choose one of emoji_think, plain, regime3",
        ),
        (
            ["--multirun", "train.max_steps=2,many"],
            "Invalid command line: train.max_steps: Value 'many' of type 'str' could not be converted to Integer",
        ),
        (["train.max_steps='2"], "Invalid command line: LexerNoViableAltException: train.max_steps='2"),
        (["--run", "--multirun"], "Invalid command line: Only one of --run, --multirun"),
    ],
    ids=["misspelt key", "wrong type", "unknown option", "sweep value of the wrong type", "bad quoting", "two modes"],
)
def test_hydra_composition_errors_are_one_line_and_exit_2(args, line, tmp_path):
    completed = trainer(
        *args, f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path
    )
    user_error_output(completed)
    assert completed.stdout == ""
    assert len(completed.stderr.splitlines()) == 1
    assert completed.stderr.startswith(line)
    assert not (tmp_path / "run").exists()


def test_an_interpolation_that_resolves_to_nothing_names_its_key(tmp_path):
    completed = trainer("train.max_steps=${oops}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    output = user_error_output(completed)
    assert "Invalid configuration: train.max_steps: Interpolation key 'oops' not found" in output


def under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "a-file").write_text("")
    return tmp_path / "a-file" / "run"


@pytest.mark.parametrize(
    ("flags", "make_dir"),
    [
        ([], lambda tmp: f"hydra.run.dir={Path('/proc/no-such-dir/run')}"),
        ([], lambda tmp: f"hydra.run.dir={under_a_file(tmp)}"),
        (["--multirun"], lambda tmp: f"hydra.sweep.dir={Path('/proc/no-such-dir/sweep')}"),
    ],
    ids=["under /proc", "parent is a file", "sweep under /proc"],
)
def test_a_run_directory_that_cannot_be_created_is_one_line_and_exit_2(flags, make_dir, tmp_path):
    # max_steps=1: should the directory be created after all, the test fails in seconds.
    completed = trainer(*flags, make_dir(tmp_path), "train.max_steps=1", cwd=tmp_path)
    user_error_output(completed)
    assert completed.stderr.startswith("Cannot create or write ")
    assert len(completed.stderr.splitlines()) == 1


def test_validation_lists_every_new_check_before_anything_loads(run_cli, tmp_path):
    completed = run_cli(
        "train.max_steps=0", "train.learning_rate=nan", "train.weight_decay=inf", "model.path=/models/qwen",
        "train.optim=adamw", "train.lr_scheduler_type=cosin", "model.attn_implementation=flash",
        f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
    )  # fmt: skip
    output = user_error_output(completed)
    assert "Invalid configuration (7 problems):" in output
    for problem in [
        "train.learning_rate must be a finite number (got nan)",
        "train.weight_decay must be a finite number (got inf)",
        "model.attn_implementation=flash is unknown; choose one of eager,",
        "model.path=/models/qwen is set, but model=tiny builds its own tiny model",
        "train.optim=adamw is unknown; choose one of adamw_torch, adamw_torch_fused,",
        "train.lr_scheduler_type=cosin is unknown; choose one of linear, cosine,",
        "train.max_steps must be > 0, or -1 to train for train.num_train_epochs (got 0)",
    ]:
        assert f"  - {problem}" in output
    assert "Loading model" not in output


GOOD = b'{"messages": [{"role": "user", "content": "2+3?"}, {"role": "assistant", "content": "5"}]}'


def test_unreadable_data_lines_are_named_by_file_and_line(run_cli, tmp_path):
    data = tmp_path / "chats.jsonl"
    lines = [GOOD, '{"x": "caf\xe9"}'.encode("latin-1"), b'{"x": "\\ud800"}', b"[" * 100_000 + b"]" * 100_000]
    # A byte order mark before the first line is valid UTF-8, not invalid JSON.
    data.write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n")
    output = user_error_output(run_cli(f"data.train={data}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path))
    assert "Invalid data (3 problems):" in output
    assert f"  - {data}:2 (example 1): not valid UTF-8 (byte 0xe9 at column 11)" in output
    assert f"  - {data}:3 (example 2): a string holds a lone surrogate" in output
    assert f"  - {data}:4 (example 3): nested deeper than 32 levels" in output
    assert f"{data}:1 " not in output


def test_a_crash_exits_1_with_one_line_and_its_traceback_in_trainer_log(tmp_path):
    run_dir = tmp_path / "run"
    crash = (
        "import sys, trainer.recipe\n"
        "def crash(*args, **kwargs):\n"
        "    raise RuntimeError('boom')\n"
        "trainer.recipe.train = crash\n"
        f"sys.argv = ['trainer', 'hydra.run.dir={run_dir}']\n"
        "from trainer.__main__ import main\n"
        "main()\n"
    )
    completed = subprocess.run([sys.executable, "-c", crash], cwd=tmp_path, capture_output=True, text=True)
    output = completed.stdout + completed.stderr
    assert completed.returncode == EXIT_CRASHED, output
    assert "Traceback" not in output
    assert f"The run crashed: RuntimeError: boom (traceback in {run_dir / 'trainer.log'})" in output
    assert "Traceback (most recent call last)" in (run_dir / "trainer.log").read_text()


def test_a_crash_outside_the_run_keeps_its_traceback_in_a_file(tmp_path):
    crash = (
        "import sys, trainer.cli.main\n"
        "def crash(*args, **kwargs):\n"
        "    raise RuntimeError('boom')\n"
        "trainer.cli.main.start_job = crash\n"
        f"sys.argv = ['trainer', 'hydra.run.dir={tmp_path / 'run'}']\n"
        "trainer.cli.main.main()\n"
    )
    completed = subprocess.run([sys.executable, "-c", crash], cwd=tmp_path, capture_output=True, text=True)
    assert completed.returncode == EXIT_CRASHED, completed.stderr
    (line,) = completed.stderr.splitlines()
    assert line.startswith("trainer crashed: RuntimeError: boom (traceback in ")
    saved = Path(line.removeprefix("trainer crashed: RuntimeError: boom (traceback in ").removesuffix(")"))
    assert "Traceback (most recent call last)" in saved.read_text()
    saved.unlink()
