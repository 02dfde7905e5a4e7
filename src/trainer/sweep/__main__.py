"""`python -m trainer.sweep resume=multirun/DATE/TIME [OVERRIDE ...]`: run the jobs of a sweep
that have no successful result.json, each in its own directory, and refresh the summary.

The sweep is launched again with its original overrides (from multirun.yaml) into the same
directory, its jobs in resume mode: those that already succeeded return their stored result, the
others continue from their newest checkpoint (or start again).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from trainer.result import EXIT_USER_ERROR

USAGE = "usage: python -m trainer.sweep resume=multirun/DATE/TIME [OVERRIDE ...]"
# Overrides the resume sets itself, so the originals must not compete with them.
RESUME_OWNED = ("hydra.sweep.dir=", "run.resume=")


def resume_command(sweep_dir: Path, extra: list[str]) -> list[str]:
    multirun_config = sweep_dir / "multirun.yaml"
    if not multirun_config.is_file():
        raise FileNotFoundError(f"{sweep_dir} is not a sweep directory: it has no multirun.yaml")
    original = OmegaConf.load(multirun_config).hydra.overrides.task
    kept = [item for item in original if not item.startswith(RESUME_OWNED)]
    return [
        sys.executable, "-m", "trainer", "--multirun", *kept, *extra,
        f"hydra.sweep.dir={sweep_dir}", "run.resume=true",
    ]  # fmt: skip


def main(argv: list[str]) -> int:
    if not argv or not argv[0].startswith("resume="):
        print(USAGE, file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        command = resume_command(Path(argv[0].removeprefix("resume=")), argv[1:])
    except FileNotFoundError as error:
        print(f"Cannot resume: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
