"""`RunDirectory`: the one owner of a run's directory layout and of the files written into it."""

from __future__ import annotations

import fcntl
import json
import logging
import re
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.errors import UserError
from trainer.run.files import write_json_atomic
from trainer.run.overrides import MULTIRUN_CONFIG, tensorboard_run_name

log = logging.getLogger(__name__)

# Where a checkpoint is written before it is renamed into checkpoints/: a kill during a save leaves
# only this, never a checkpoint-N that looks complete but is not.
CHECKPOINT_STAGING = ".staging"
CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")
# Written last into a checkpoint: the size of every file in it. A checkpoint without it, or whose
# files no longer have those sizes (a full disk, a truncated copy), is not resumed from.
CHECKPOINT_MANIFEST = "manifest.json"
# What transformers writes into every checkpoint (its step, for a resume).
TRAINER_STATE_NAME = "trainer_state.json"
SAVED_CONFIG = Path(".hydra") / "config.yaml"
# Directories claimed before Hydra started (their lock files open): the job's engine, in this
# process, finds its directory already claimed for it.
CLAIMED_BEFORE_HYDRA: dict[Path, Any] = {}


def checkpoint_step(checkpoint: str | None) -> int | None:
    """The global step a checkpoint directory was saved at."""
    return int(CHECKPOINT_NAME.fullmatch(Path(checkpoint).name).group(1)) if checkpoint else None


def write_checkpoint_manifest(checkpoint: Path) -> None:
    """Record the size of every file of a saved checkpoint; written last, it marks it complete."""
    sizes = {
        str(path.relative_to(checkpoint)): path.stat().st_size
        for path in sorted(checkpoint.rglob("*"))
        if path.is_file() and path.name != CHECKPOINT_MANIFEST
    }
    write_json_atomic(checkpoint / CHECKPOINT_MANIFEST, sizes)


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why a checkpoint cannot be resumed from, or None when every file its manifest lists is whole."""
    manifest = checkpoint / CHECKPOINT_MANIFEST
    if not manifest.exists():
        # Saved before checkpoints had manifests; the staged rename made those whole or absent.
        if not (checkpoint / TRAINER_STATE_NAME).is_file():
            return f"it has neither {CHECKPOINT_MANIFEST} nor {TRAINER_STATE_NAME}"
        empty = sorted(path.name for path in checkpoint.iterdir() if path.is_file() and path.stat().st_size == 0)
        return f"{empty[0]} is empty" if empty else None
    try:
        sizes = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"its {CHECKPOINT_MANIFEST} is unreadable"
    for name, size in sizes.items():
        path = checkpoint / name
        actual = path.stat().st_size if path.is_file() else None
        if actual != size:
            return f"{name} is {'missing' if actual is None else f'{actual} bytes, not {size}'}"
    return None


def newest_checkpoint(checkpoints_dir: Path) -> str | None:
    """The newest complete checkpoint in `checkpoints_dir`; a warning names each newer one that is not."""
    steps = {
        int(match.group(1)): path
        for path in (checkpoints_dir.iterdir() if checkpoints_dir.is_dir() else ())
        if (match := CHECKPOINT_NAME.fullmatch(path.name)) and path.is_dir()
    }
    for step in sorted(steps, reverse=True):
        if problem := checkpoint_problem(steps[step]):
            log.warning("Skipping %s: %s", steps[step], problem)
            continue
        return str(steps[step])
    return None


@dataclass(frozen=True)
class RunDirectory:
    root: Path

    @property
    def log_file(self) -> Path:
        return self.root / "trainer.log"

    def log_file_of(self, rank: int) -> Path:
        """trainer.log for rank 0 (the only one of a single process); trainer.rankN.log for the others."""
        return self.log_file if rank == 0 else self.root / f"trainer.rank{rank}.log"

    @property
    def tensorboard_dir(self) -> Path:
        """The run's event files, in a directory named after the overrides that set the run apart:
        TensorBoard names a run by its directory, so `tensorboard --logdir multirun/DATE/TIME`
        shows `0/tensorboard/profile=plain,train.learning_rate=0.001`, not `0/tensorboard`."""
        return self.root / "tensorboard" / tensorboard_run_name(self.root)

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def final_model_dir(self) -> Path:
        return self.root / "final_model"

    @property
    def tokenized_dir(self) -> Path:
        """The run's own tokenized data, with data.cache=false."""
        return self.root / "tokenized"

    @property
    def tokenized_file(self) -> Path:
        """Which cache entry the run's tokenized data came from, and its stats."""
        return self.root / "tokenized.json"

    @property
    def merged_model_dir(self) -> Path:
        """Base + adapter as one full model, written when `peft.merge_on_save` is on."""
        return self.final_model_dir / "merged"

    @property
    def previews_file(self) -> Path:
        return self.root / "previews.jsonl"

    @property
    def preview_tensorboard_dir(self) -> Path:
        return self.tensorboard_dir / "previews"

    @property
    def result_file(self) -> Path:
        return self.root / "result.json"

    @property
    def evals_dir(self) -> Path:
        """The generation eval's scored answers, one JSON Lines file per evaluated step."""
        return self.root / "evals"

    def eval_answers_file(self, step: int) -> Path:
        return self.evals_dir / f"step-{step}.jsonl"

    @property
    def data_file(self) -> Path:
        """The fingerprint of the run's data, checked by a resume."""
        return self.root / "data.json"

    @property
    def env_file(self) -> Path:
        return self.root / "env.json"

    @property
    def trackers_file(self) -> Path:
        """The run's ids in the experiment trackers (MLflow, W&B): a resume continues those runs."""
        return self.root / "trackers.json"

    @property
    def model_card(self) -> Path:
        return self.final_model_dir / "README.md"

    @property
    def status_file(self) -> Path:
        return self.root / "status.json"

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def claim(self, resume: bool, before_hydra: bool = False) -> Iterator[None]:
        """Hold the directory for one job: never shared by two live runs, and never a second run
        over a finished or started one unless it resumes it. Claimed `before_hydra`, a directory
        whose .hydra/ holds another run's config counts as a run too."""
        key = self.root.resolve()
        if key in CLAIMED_BEFORE_HYDRA and not before_hydra:
            yield
            return
        created = not self.root.exists()
        try:
            self.create()
            lock = (self.root / ".lock").open("a")
        except OSError as error:
            raise UserError(f"Cannot create or write the run directory {self.root}: {error.strerror}") from error
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as error:
                raise UserError(f"{self.root} is in use by another run") from error
            if not resume and (self.holds_run() or (before_hydra and (self.root / SAVED_CONFIG).exists())):
                raise UserError(
                    f"{self.root} already holds a run; continue it with `python -m trainer resume={self.root}` "
                    "or start a new run in another directory"
                )
            if before_hydra:
                CLAIMED_BEFORE_HYDRA[key] = lock
            try:
                yield
            except BaseException:
                # A command line Hydra refuses leaves no empty directory behind.
                if created:
                    self.remove_if_untouched()
                raise
            finally:
                CLAIMED_BEFORE_HYDRA.pop(key, None)

    def claim_to_add(self) -> AbstractContextManager[None]:
        """Hold the directory of a run (finished, or stopped) while adding to it, an evaluation:
        no run trains in it meanwhile, and none starts."""
        return self.claim(resume=True)

    def remove_if_untouched(self) -> None:
        """Remove the directory when it holds nothing but the claim's lock file."""
        if {path.name for path in self.root.iterdir()} <= {".lock"}:
            shutil.rmtree(self.root, ignore_errors=True)

    def hand_over_claim(self) -> None:
        """Release a claim made before Hydra, for a process this one starts to make its own (the
        rank 0 of the job's own torchrun)."""
        if lock := CLAIMED_BEFORE_HYDRA.pop(self.root.resolve(), None):
            lock.close()

    def holds_run(self) -> bool:
        return self.result_file.exists() or self.status_file.exists() or self.checkpoints_dir.exists()

    def newest_checkpoint(self) -> str | None:
        return newest_checkpoint(self.checkpoints_dir)

    def checkpoint_to_resume(self, max_steps: int) -> str | None:
        """The checkpoint a resume to `max_steps` continues from; one past it cannot be trained back."""
        checkpoint = self.newest_checkpoint()
        step = checkpoint_step(checkpoint)
        if step is not None and 0 < max_steps < step:
            raise UserError(
                f"Cannot resume with train.max_steps={max_steps}: {self.root} has trained {step} steps "
                f"({checkpoint}); give train.max_steps={step} or more"
            )
        return checkpoint

    def remove_unfinished_save(self) -> None:
        """What a kill during a save left behind; only the directory's owner may remove it."""
        shutil.rmtree(self.checkpoints_dir / CHECKPOINT_STAGING, ignore_errors=True)

    def read_result(self) -> dict[str, Any] | None:
        """result.json, or None where the run has not finished (or never started)."""
        try:
            return json.loads(self.result_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None


@dataclass(frozen=True)
class SweepDirectory:
    """A sweep's directory (multirun/DATE/TIME): Hydra's record of it, a numbered directory per
    job (a `RunDirectory` each), and the summary across them."""

    root: Path

    @property
    def multirun_config(self) -> Path:
        return self.root / MULTIRUN_CONFIG

    @property
    def resume_record(self) -> Path:
        """The command line of `trainer sweep resume=`, kept beside the original's."""
        return self.root / "multirun.resume.yaml"

    @property
    def summary_csv(self) -> Path:
        return self.root / "summary.csv"

    @property
    def summary_md(self) -> Path:
        return self.root / "summary.md"

    @property
    def summary_png(self) -> Path:
        return self.root / "summary.png"

    @property
    def eval_summary_csv(self) -> Path:
        """The summary `python -m trainer.eval` writes for a sweep: every job's final model scored."""
        return self.root / "eval_summary.csv"

    @property
    def eval_summary_md(self) -> Path:
        return self.root / "eval_summary.md"

    @property
    def mlflow_parent_file(self) -> Path:
        """The sweep's MLflow experiment and parent run, written by its first job, read by the others."""
        return self.root / "mlflow_parent_run.json"

    def job_dir(self, number: int) -> Path:
        return self.root / str(number)

    def job_dirs(self) -> list[Path]:
        """The numbered job directories that exist, in job order."""
        return sorted(
            (path for path in self.root.iterdir() if path.is_dir() and path.name.isdigit()), key=lambda p: int(p.name)
        )
