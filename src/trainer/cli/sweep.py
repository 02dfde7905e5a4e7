"""`python -m trainer.sweep resume=multirun/DATE/TIME [SAFE OVERRIDE ...]`: run the jobs of a sweep
that have no successful result.json, each in its own directory, and refresh the summary.

The sweep is launched again with its original overrides (from multirun.yaml) into the same
directory, its jobs in resume mode: those that already succeeded return their stored result, the
others continue from their newest checkpoint with their saved config (or start). Only the
overrides a run resume accepts are accepted; each job's `.hydra/` and the sweep's multirun.yaml
stay as they were, the resume's own record goes beside them (`.hydra/resume/`,
`multirun.resume.yaml`).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from trainer.errors import UserError
from trainer.run.interruption import STOP_SIGNALS
from trainer.run.layout import SweepDirectory
from trainer.run.outcome import EXIT_USER_ERROR
from trainer.run.resume import refuse_unsafe_overrides, resume_overrides

USAGE = "usage: python -m trainer.sweep resume=multirun/DATE/TIME [OVERRIDE ...]"
# Overrides the resume sets itself, so the originals must not compete with them.
RESUME_OWNED = ("hydra.sweep.dir=", "run.resume=", "hydra.output_subdir=")


def resume_command(sweep_dir: Path, extra: list[str]) -> list[str]:
    multirun_config = SweepDirectory(sweep_dir).multirun_config
    if not multirun_config.is_file():
        raise UserError(f"Cannot resume: {sweep_dir} is not a sweep directory: it has no {multirun_config.name}")
    refuse_unsafe_overrides(extra)
    original = OmegaConf.load(multirun_config).hydra.overrides.task
    kept = [item for item in original if not item.startswith(RESUME_OWNED)]
    return [
        sys.executable, "-m", "trainer", "--multirun", *kept, *extra, *resume_overrides("hydra.sweep.dir", sweep_dir)
    ]  # fmt: skip


def run_keeping_multirun_config(command: list[str], sweep_dir: Path) -> int:
    """Run the resumed sweep; Hydra rewrites multirun.yaml, so the original is put back and the
    resume's kept beside it. A signal to this process is passed on to the sweep, which stops."""
    multirun_config = SweepDirectory(sweep_dir).multirun_config
    original = multirun_config.read_bytes()
    # Its own session: Ctrl-C reaches it once, through this process, not twice (a second stops at once).
    sweep = subprocess.Popen(command, start_new_session=True)
    previous = {
        signum: signal.signal(signum, lambda signum, frame: sweep.send_signal(signum)) for signum in STOP_SIGNALS
    }
    try:
        return sweep.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if multirun_config.read_bytes() != original:
            multirun_config.replace(SweepDirectory(sweep_dir).resume_record)
            multirun_config.write_bytes(original)


def main(argv: list[str]) -> int:
    if not argv or not argv[0].startswith("resume="):
        print(USAGE, file=sys.stderr)
        return EXIT_USER_ERROR
    sweep_dir = Path(argv[0].removeprefix("resume="))
    try:
        command = resume_command(sweep_dir, argv[1:])
    except UserError as error:
        print(error, file=sys.stderr)
        return EXIT_USER_ERROR
    return run_keeping_multirun_config(command, sweep_dir)
