"""Tokenized data kept in the run directory, keyed by everything that shapes it, so a resumed run
reads it back instead of tokenizing again; a changed input gets a new key, never stale data."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from datasets import Dataset, load_from_disk
from datasets import utils as datasets_progress

from trainer.run_dir import write_json_atomic

log = logging.getLogger(__name__)

STATS_FILE = "stats.json"


def cache_key(**inputs: Any) -> str:
    """A digest of `inputs` (records, prompt, template, tokenizer, limits), JSON-encoded."""
    encoded = json.dumps(inputs, sort_keys=True, ensure_ascii=False, default=str)
    # surrogatepass: a lone surrogate in some input must change the key, never crash it.
    return hashlib.sha256(encoded.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def load_cached(directory: Path) -> tuple[dict[str, Dataset], dict[str, int]] | None:
    """The datasets and stats saved in `directory`, or None when nothing complete is there."""
    if not (directory / STATS_FILE).is_file():
        return None
    datasets = {split.name: load_from_disk(str(split)) for split in sorted(directory.iterdir()) if split.is_dir()}
    log.info("Tokenized data read back from %s", directory)
    return datasets, json.loads((directory / STATS_FILE).read_text())


@contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Saving takes milliseconds; its bars would only bury the training progress bar."""
    was_enabled = not datasets_progress.are_progress_bars_disabled()
    datasets_progress.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets_progress.enable_progress_bars()


def save_cached(directory: Path, datasets: dict[str, Dataset], stats: dict[str, int]) -> None:
    """Save aside and rename: an interrupted save never leaves a cache that looks complete."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=".saving-"))
    try:
        with quiet_progress_bars():
            for name, dataset in datasets.items():
                dataset.save_to_disk(str(staging / name))
        write_json_atomic(staging / STATS_FILE, stats)
        shutil.rmtree(directory, ignore_errors=True)
        staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
