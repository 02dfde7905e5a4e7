"""One content-addressed cache of tokenized data, shared by runs, resumes and sweep jobs.

Each entry is a directory named by a digest of everything that shapes the tokens. A writer holds
a lock file for its key while it tokenizes, works in a scratch directory beside the entry and
renames it into place when complete: a concurrent job waits for the lock and then reads the
entry; an interrupted writer leaves only scratch, which is never read and is swept by the next.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from datasets import Dataset, concatenate_datasets

from trainer.config.schema import DataConfig
from trainer.run.files import staged_directory, write_json_atomic

log = logging.getLogger(__name__)

STATS_FILE = "stats.json"
SPLITS = ("train", "validation")
SCRATCH_PREFIX = ".work-"


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/trainer/tokenized, or ~/.cache/trainer/tokenized without it."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "trainer" / "tokenized"


def tokenized_cache_dir(config: DataConfig, run_tokenized_dir: Path) -> Path:
    """The shared cache (data.cache_dir, or the default), or the run's own directory with
    data.cache=false."""
    if not config.cache:
        return run_tokenized_dir
    return Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir()


def cache_key(**inputs: Any) -> str:
    """A digest of `inputs` (records, prompt, template, tokenizer, limits), JSON-encoded; a list
    or iterator is hashed item by item, so the records are never encoded as one string."""
    digest = hashlib.sha256()
    for name in sorted(inputs):
        value = inputs[name]
        items: Iterable[Any] = value if isinstance(value, list | Iterator) else [value]
        digest.update(json.dumps(name).encode())
        for item in items:
            encoded = json.dumps(item, sort_keys=True, ensure_ascii=False, default=str)
            # surrogatepass: a lone surrogate in some input must change the key, never crash it.
            digest.update(encoded.encode("utf-8", "surrogatepass") + b"\n")
    return digest.hexdigest()[:16]


@contextmanager
def exclusive(entry: Path) -> Iterator[None]:
    """Hold `entry`'s lock file: one process prepares an entry, the others wait and read it. The
    lock dies with its process, so an interrupted writer never blocks the next one."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    with open(entry.with_name(f"{entry.name}.lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("Waiting for another process that is tokenizing the same data into %s", entry)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def scratch_dir(entry: Path) -> Iterator[Path]:
    """A fresh directory beside `entry` for the writer holding its lock; what interrupted writers
    left there before is removed first."""
    for leftover in entry.parent.glob(f"{SCRATCH_PREFIX}{entry.name}-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f"{SCRATCH_PREFIX}{entry.name}-"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def load_cached(entry: Path, in_memory: bool = False) -> tuple[dict[str, Dataset], dict[str, int]] | None:
    """The datasets (memory-mapped unless `in_memory`) and stats saved in `entry`, or None when
    nothing complete is there. A set written by several processes is in several files."""
    if not (entry / STATS_FILE).is_file():
        return None
    datasets = {}
    for name in SPLITS:
        if files := sorted(entry.glob(f"{name}*.arrow")):
            parts = [Dataset.from_file(str(file), in_memory=in_memory) for file in files]
            datasets[name] = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    return datasets, json.loads((entry / STATS_FILE).read_text())


def complete_dir(scratch: Path) -> Path:
    """Where a writer puts the files of the entry it is making."""
    return scratch / "complete"


def publish(entry: Path, scratch: Path, stats: dict[str, int]) -> None:
    """Write the stats last and rename the complete files to `entry`: an entry that exists is
    always complete."""
    with staged_directory(entry, scratch=complete_dir(scratch)) as complete:
        write_json_atomic(complete / STATS_FILE, stats)
