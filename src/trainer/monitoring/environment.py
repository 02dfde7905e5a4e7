"""env.json: what a run ran on, so results can be reproduced and compared."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

PACKAGES = (
    "trainer",
    "torch",
    "transformers",
    "hydra-core",
    "omegaconf",
    "datasets",
    "peft",
    "accelerate",
    "tokenizers",
)


def describe_environment() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: package_version(name) for name in PACKAGES},
        "git_commit": source_git_commit(),
        "device": describe_device(),
        "cpu_count": os.cpu_count(),
    }


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def source_git_commit() -> str | None:
    """The commit of trainer's own source when it runs from a git checkout (with '+dirty' for
    uncommitted changes), else None."""
    source = Path(__file__).parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(source), *args], capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None


def describe_device() -> dict[str, Any]:
    if torch.cuda.is_available():
        return {"type": "cuda", "name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count()}
    return {"type": "cpu", "name": platform.processor() or platform.machine(), "count": 1}
