"""One content-addressed cache of tokenized data, shared by runs, resumes and sweep jobs.

Each entry is a directory named by a digest of everything that shapes the tokens (the tokenizer
by its own serialized state, not by where it was loaded from). A writer holds a lock file for its
key while it tokenizes, works in a scratch directory beside the entry and renames it into place
when complete: a concurrent job waits for the lock and then reads the entry; an interrupted writer
leaves only scratch, which is never read and is swept by the next. Each entry lists the size and
checksum of its files, checked before it is read: a damaged entry is removed and made again.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import xxhash
from datasets import Dataset, concatenate_datasets
from transformers import PreTrainedTokenizerBase

from trainer.config.schema import DataConfig
from trainer.errors import UserError
from trainer.run.files import staged_directory, write_json_atomic

log = logging.getLogger(__name__)

STATS_FILE = "stats.json"
CHECKSUMS_FILE = "checksums.json"
SPLITS = ("train", "validation")
SCRATCH_PREFIX = ".work-"
# Part of every key: entries of an older layout (before checksums.json) are never looked up.
ENTRY_FORMAT = 2
# Every entry is hashed on every read: xxh3 (not cryptographic: it guards against damage, not
# forgery) hashes as fast as memory reads, 3-4x sha256 on the entry's hundreds of megabytes.
CHECKSUM = "xxh3_128"


class CacheDirError(UserError):
    """The tokenized-data cache directory cannot be created or written."""

    error_type = "cache_dir_error"


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/trainer/tokenized, or ~/.cache/trainer/tokenized without it."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "trainer" / "tokenized"


def tokenized_cache_dir(config: DataConfig, run_tokenized_dir: Path) -> Path:
    """The shared cache (data.cache_dir, or the default), created and checked to be writable, or
    the run's own directory with data.cache=false."""
    return shared_cache_dir(config) if config.cache else run_tokenized_dir


def shared_cache_dir(config: DataConfig) -> Path:
    """data.cache_dir, or the default, created and checked to be writable."""
    return writable_dir(Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir())


def writable_dir(directory: Path) -> Path:
    """`directory`, created if needed, once a file could be made in it: a read-only file system,
    a file where a directory is expected or missing permissions end in one line naming the keys
    that choose another place (trying beats inspecting: root ignores permission bits, not EROFS)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory, prefix=".probe-"):
            pass
    except OSError as error:
        raise CacheDirError(
            f"The tokenized-data cache directory {directory} cannot be written ({error.strerror or error}): "
            "set data.cache_dir to a writable directory, or data.cache=false to keep the tokenized data "
            "in the run directory"
        ) from error
    return directory


def tokenizer_digest(tokenizer: PreTrainedTokenizerBase) -> str:
    """A digest of what decides the ids `tokenizer` gives, never of where it was loaded from: its
    own serialized state (vocabulary, merges, normalizer, pre-tokenizer, added tokens and their
    ids), its special tokens and their ids, padding and truncation sides and its chat template."""
    digest = hashlib.sha256(serialized_tokenizer(tokenizer))
    settings = {
        "class": type(tokenizer).__name__,
        "special_tokens": tokenizer.special_tokens_map,
        "special_ids": dict(zip(tokenizer.all_special_tokens, tokenizer.all_special_ids, strict=True)),
        "added_tokens": {index: repr(token) for index, token in tokenizer.added_tokens_decoder.items()},
        "padding_side": tokenizer.padding_side,
        "truncation_side": tokenizer.truncation_side,
        "split_special_tokens": getattr(tokenizer, "split_special_tokens", None),
        "chat_template": tokenizer.chat_template,
    }
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


def serialized_tokenizer(tokenizer: PreTrainedTokenizerBase) -> bytes:
    """A fast tokenizer's backend as its tokenizer.json; any other tokenizer's files as
    `save_pretrained` writes them (they name no path), in name order."""
    if backend := getattr(tokenizer, "backend_tokenizer", None):
        return backend.to_str().encode("utf-8", "surrogatepass")
    with tempfile.TemporaryDirectory(prefix="trainer-tokenizer-") as directory:
        tokenizer.save_pretrained(directory)
        files = sorted(path for path in Path(directory).rglob("*") if path.is_file())
        return b"".join(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes() for path in files)


def cache_key(**inputs: Any) -> str:
    """A digest of `inputs` (records, prompt, tokenizer, limits) and of `ENTRY_FORMAT`, JSON-encoded;
    a list or iterator is hashed item by item, so the records are never encoded as one string."""
    digest = hashlib.sha256(f"entry format {ENTRY_FORMAT}\n".encode())
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


def load_cached(
    entry: Path, in_memory: bool = False, verify: bool = True
) -> tuple[dict[str, Dataset], dict[str, int]] | None:
    """The datasets (memory-mapped unless `in_memory`) and stats saved in `entry`, or None when
    nothing is there. A set written by several processes is in several files. With `verify`, an
    entry whose files differ from those it was written with is logged and removed (None)."""
    if not entry.is_dir():
        return None
    if verify and not intact_or_removed(entry, "tokenizing again"):
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
    """Write the stats and the checksums of every file, and rename the complete files to `entry`:
    an entry that exists is always complete."""
    with staged_directory(entry, scratch=complete_dir(scratch)) as complete:
        write_json_atomic(complete / STATS_FILE, stats)
        write_checksums(complete)


def write_checksums(entry: Path) -> None:
    """The size and checksum of every file of the entry being made, checked before it is read."""
    write_json_atomic(entry / CHECKSUMS_FILE, {file.name: file_summary(file) for file in entry_files(entry)})


def intact_or_removed(entry: Path, then: str) -> bool:
    """Whether `entry`'s files are those it was written with; a damaged entry is logged and
    removed, and what is done instead (`then`) said, so that nothing is read from it."""
    if (damage := entry_damage(entry)) is None:
        return True
    log.warning("The cache entry %s is damaged (%s): removing it and %s", entry, damage, then)
    shutil.rmtree(entry, ignore_errors=True)
    return False


def entry_files(entry: Path) -> list[Path]:
    """The files of an entry that its checksums cover (all but the checksums themselves)."""
    return sorted(file for file in entry.iterdir() if file.name != CHECKSUMS_FILE)


def file_summary(file: Path) -> dict[str, Any]:
    return {"size": file.stat().st_size, CHECKSUM: file_checksum(file)}


def file_checksum(file: Path) -> str:
    """The file's xxh3-128, hashed straight from its memory map (no copy)."""
    with file.open("rb") as opened:
        if not os.fstat(opened.fileno()).st_size:
            return xxhash.xxh3_128().hexdigest()
        with mmap.mmap(opened.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return xxhash.xxh3_128(mapped).hexdigest()


def entry_damage(entry: Path) -> str | None:
    """What differs in `entry` from the files it was written with (one missing, added, of another
    size or content), or None when it is intact. Sizes are compared first: they cost no reading."""
    try:
        written = {
            name: (item["size"], item[CHECKSUM])
            for name, item in json.loads((entry / CHECKSUMS_FILE).read_text(encoding="utf-8")).items()
        }
    except FileNotFoundError:
        return f"no {CHECKSUMS_FILE}"
    except (OSError, ValueError, LookupError, TypeError, AttributeError) as error:
        return f"{CHECKSUMS_FILE} is unreadable: {type(error).__name__}: {error}"
    present = {file.name: file for file in entry_files(entry)}
    if problem := next((f"{name} is missing" for name in written if name not in present), None):
        return problem
    if problem := next((f"{name} was not written with it" for name in present if name not in written), None):
        return problem
    for name, (size, _) in written.items():
        if (actual := present[name].stat().st_size) != size:
            return f"{name} has {actual} bytes, {size} when written"
    for name, (_, checksum) in written.items():
        if file_checksum(present[name]) != checksum:
            return f"{name} differs from its checksum"
    return None
