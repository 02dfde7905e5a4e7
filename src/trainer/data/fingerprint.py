"""The fingerprint of a run's data (path, size, mtime and a content hash of each file), recorded
in the run directory so a resume never silently continues on other data."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainer.config.schema import DataConfig
from trainer.config.sources import DataSource, data_sources, is_mixture
from trainer.data.cache import CacheDirError, shared_cache_dir
from trainer.data.loading import resolve_data_path
from trainer.data.record_cache import remembered_sha256
from trainer.errors import UserError
from trainer.run.files import write_json_atomic

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# From this size on, hashing takes long enough for the user to wonder what the run is doing.
ANNOUNCED_SIZE = 16 << 20
# The entry of data.json for the sources as configured (Hub ids, revisions, weights).
MIXTURE_ENTRY = "data.train and data.validation as configured (Hub ids, revisions, weights)"


def data_files(config: DataConfig) -> list[Path]:
    """The files (or saved-dataset directories) a run reads its records from."""
    sources = data_sources(config.train, "data.train")
    if config.validation:
        sources += data_sources(config.validation, "data.validation")
    return [resolve_data_path(source.path) for source in sources]


def sources_entry(config: DataConfig) -> dict[str, Any] | None:
    """What the config says of sources whose content no file here shows: a Hub id's revision, a
    mixture's weights. None for local sources without weights (their files say it all)."""
    sources = data_sources(config.train, "data.train")
    if config.validation:
        sources += data_sources(config.validation, "data.validation")
    if not is_mixture(config.train) and all(reads_local_path(source) for source in sources):
        return None
    described = json.dumps([asdict(source) for source in sources], sort_keys=True).encode()
    return {"path": MIXTURE_ENTRY, "size": 0, "mtime": 0.0, "sha256": hashlib.sha256(described).hexdigest()}


def reads_local_path(source: DataSource) -> bool:
    return source.path is None or Path(source.path).expanduser().exists()


def fingerprint(path: Path, digests: Path | None = None) -> dict[str, Any] | None:
    """Path, size, mtime and sha256 of a file, or of every file of a directory in name order;
    None for a path that does not exist. With `digests` (a cache directory), the sha256 of a file
    whose quick fingerprint is unchanged is the one remembered there: a rerun on a file of
    gigabytes reads 64 blocks of it, not all of it."""
    if not path.exists():
        return None
    files = sorted(item for item in path.rglob("*") if item.is_file()) if path.is_dir() else [path]
    return {
        "path": str(path.resolve()),
        "size": sum(item.stat().st_size for item in files),
        "mtime": max((item.stat().st_mtime for item in files), default=0.0),
        "sha256": remembered_sha256(digests, path, lambda: content_sha256(path, files))
        if digests
        else content_sha256(path, files),
    }


def content_sha256(path: Path, files: list[Path]) -> str:
    size = sum(item.stat().st_size for item in files)
    if size >= ANNOUNCED_SIZE:
        log.info("Fingerprinting the data: hashing %s (%.0f MB)", path, size / 1e6)
    digest = hashlib.sha256()
    for item in files:
        digest.update(str(item.relative_to(path) if path.is_dir() else "").encode())
        with item.open("rb") as file:
            while chunk := file.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def remembered_digests_dir(config: DataConfig) -> Path | None:
    """The shared cache, where the data's digests are remembered; None with the cache off, or one
    that cannot be written: the digests are then computed, and the run names the cache's keys
    once its directory is made (data.cache_dir, data.cache=false)."""
    if not config.cache:
        return None
    try:
        return shared_cache_dir(config)
    except CacheDirError:
        return None


@dataclass(frozen=True)
class DataChanges:
    """The data's fingerprints by path, the run's record of them (None in a new run) and the paths
    whose content changed since."""

    current: dict[str, dict[str, Any]]
    previous: dict[str, Any] | None
    changed: list[str]


def data_changes(config: DataConfig, record: Path | None) -> DataChanges:
    """The data's fingerprints against the run's `record` of them (None: a new run, nothing to
    compare); a change `data.allow_changed` does not allow is refused (UserError). Reads only: a
    continued run is refused before anything is written into it."""
    # A missing file is left to the data loader, which names it.
    digests = remembered_digests_dir(config)
    current = {item["path"]: item for path in data_files(config) if (item := fingerprint(path, digests)) is not None}
    if (configured := sources_entry(config)) is not None:
        current[configured["path"]] = configured
    previous = json.loads(record.read_text(encoding="utf-8")) if record is not None and record.is_file() else None
    if previous is None:
        return DataChanges(current, None, [])
    before = {item["path"]: item for item in previous["files"]}
    changed = sorted(
        path for path in before.keys() | current.keys() if content(before.get(path)) != content(current.get(path))
    )
    if changed and not config.allow_changed:
        raise UserError(
            f"Cannot resume: the data changed since the run started ({', '.join(changed)}); "
            "resume with data.allow_changed=true to continue on the new data"
        )
    return DataChanges(current, previous, changed)


def record_data_fingerprint(record: Path, changes: DataChanges) -> None:
    """Record the data's fingerprint in a new run; a change `data.allow_changed` let a continued run
    through is logged and kept in `allowed_changes`."""
    if changes.previous is None:
        write_json_atomic(record, {"files": list(changes.current.values()), "allowed_changes": []})
        return
    if not changes.changed:
        return
    log.warning("Resuming on changed data (data.allow_changed=true): %s", ", ".join(changes.changed))
    allowed = [*changes.previous["allowed_changes"], changes.previous["files"]]
    write_json_atomic(record, {"files": list(changes.current.values()), "allowed_changes": allowed})


def content(item: dict[str, Any] | None) -> tuple | None:
    """What decides that data changed: its size and hash (a file only touched has not)."""
    return None if item is None else (item["size"], item["sha256"])
