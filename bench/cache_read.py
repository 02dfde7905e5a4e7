"""`python -m bench.cache_read`: what a run pays to read a tokenized-cache entry that exists (records
read and checked for the key, the entry verified against its checksums and opened), each in a
fresh process after one that made the entry. The chats and preparation are `--data`'s.

    PYTHONPATH=src python -m bench.cache_read [--size 100000] [--rounds 3]

Run it again with another checkout's src first on PYTHONPATH to compare two versions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.workload import SYSTEM_PROMPT, write_chats


def prepare(chats: Path, cache_dir: Path) -> dict:
    """One preparation of `chats` into `cache_dir`, timed in its two parts."""
    from trainer.config.schema import DataConfig, ProfileConfig
    from trainer.data.cache_entry import tokenize_split
    from trainer.data.split import load_record_split
    from trainer.modeling.tiny import build_tokenizer
    from trainer.profiles.plain import PlainProfile

    tokenizer, profile = build_tokenizer(512), PlainProfile(ProfileConfig(), seed=0)
    config = DataConfig(train=str(chats), validation_split=0.0, max_length=4096, system_prompt=SYSTEM_PROMPT)
    started = time.perf_counter()
    records = load_record_split(config, profile, seed=0)
    read = time.perf_counter()
    data = tokenize_split(records, profile, SYSTEM_PROMPT, tokenizer, config.max_length, cache_dir)
    done = time.perf_counter()
    return {
        "from_cache": data.from_cache,
        "records_sec": read - started,
        "entry_sec": done - read,
        "entry_mb": sum(file.stat().st_size for file in data.cache_entry.iterdir()) / 1e6,
    }


def in_fresh_process(chats: Path, cache_dir: Path) -> dict:
    command = [sys.executable, "-m", "bench.cache_read", "--prepare", str(chats), str(cache_dir)]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prepare", nargs=2, metavar=("CHATS", "CACHE_DIR"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.prepare:
        print(json.dumps(prepare(Path(options.prepare[0]), Path(options.prepare[1]))))
        return
    with tempfile.TemporaryDirectory(prefix="bench-cache-read-") as workdir:
        chats = write_chats(Path(workdir) / "chats.jsonl", options.size)
        made = in_fresh_process(chats, Path(workdir) / "cache")
        reads = [in_fresh_process(chats, Path(workdir) / "cache") for _ in range(options.rounds)]
    assert not made["from_cache"] and all(read["from_cache"] for read in reads)

    def median(key: str) -> float:
        return statistics.median(read[key] for read in reads)

    print(
        f"cached read of {options.size:,} chats ({made['entry_mb']:.0f} MB entry), median of {options.rounds}: "
        f"records {median('records_sec'):.2f} s, entry {median('entry_sec'):.2f} s "
        f"(range {min(read['entry_sec'] for read in reads):.2f}..{max(read['entry_sec'] for read in reads):.2f}); "
        f"load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
