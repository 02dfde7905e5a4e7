"""`python -m bench --data --conversations N`: a real `python -m trainer` run on N generated
multi-turn conversations, twice: the first run reads, checks and tokenizes them into a fresh cache,
the second finds everything in the cache. Each row gives the wall time, the time from the start of
the process to the tokenized data (read or written) and to the first optimizer step, and the peak
anonymous memory of the run's process tree (its workers included), sampled from /proc: memory-mapped
Arrow files are page cache, which the kernel reclaims, so they are left out.

    PYTHONPATH=src python -m bench --data --conversations 10000 100000
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.report import Spread, Target, tables_markdown

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "this",
    "are",
    "or",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "they",
    "you",
    "were",
    "there",
    "been",
    "one",
    "all",
    "we",
    "their",
    "has",
    "would",
    "when",
    "if",
    "so",
    "no",
    "what",
    "up",
    "out",
    "who",
    "them",
    "some",
    "could",
    "more",
    "into",
    "time",
    "only",
    "two",
    "may",
    "then",
    "do",
    "first",
    "any",
    "my",
    "now",
    "like",
    "other",
    "over",
    "also",
    "back",
    "after",
    "use",
    "our",
    "how",
    "work",
    "well",
    "way",
    "even",
    "new",
]
# The run as a new user would start it on a large file: no validation split, two steps. One
# conversation per batch: a step's activations, a fixed cost, would otherwise hide what the data
# costs, and on a shared machine its time would swamp the start-up this measures.
RUN_OVERRIDES = (
    "data.max_length=4096",
    "data.validation_split=0",
    "train.max_steps=2",
    "train.per_device_train_batch_size=1",
)
SAMPLE_EVERY = 0.1
DATA_READY = ("Tokenized data read from the cache", "Tokenized data saved to the cache")
FIRST_STEP = "step 1/"
# The recipe's first line, once the interpreter, its imports and the config are done: on a loaded
# machine the imports alone take tens of seconds, which says nothing about the data.
RECIPE_STARTED = "[trainer.recipe][INFO] Run:"


def conversation(rng: random.Random) -> dict:
    """A system prompt and 1..8 turns of 10..40 words asked, 20..60 answered (about 1.7 KB of JSON)."""
    messages = [{"role": "system", "content": "You are a helpful assistant."}]
    for _ in range(rng.randint(1, 8)):
        messages.append({"role": "user", "content": sentence(rng, rng.randint(10, 40))})
        messages.append({"role": "assistant", "content": sentence(rng, rng.randint(20, 60))})
    return {"messages": messages}


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def write_conversations(path: Path, count: int) -> Path:
    """`count` seeded conversations as JSON Lines, written a line at a time."""
    rng = random.Random(0)
    with path.open("w", encoding="utf-8") as file:
        for _ in range(count):
            file.write(json.dumps(conversation(rng)) + "\n")
    return path


@dataclass(frozen=True)
class RunMeasure:
    wall_s: float
    recipe_started_s: float
    data_ready_s: float
    first_step_s: float
    peak_anon_mib: float


def measure_run(chats: Path, workdir: Path, run_name: str) -> RunMeasure:
    """One `python -m trainer` run on `chats` with its cache in `workdir`, watched from outside."""
    command = [
        sys.executable, "-m", "trainer", f"data.train={chats}", *RUN_OVERRIDES,
        f"data.cache_dir={workdir / 'cache'}", f"run.output_dir={workdir / run_name}",
    ]  # fmt: skip
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=workdir)
    peak = PeakAnonymousMemory(process.pid)
    peak.start()
    seen: dict[str, float] = {}
    tail: list[str] = []
    for line in process.stdout:
        tail = [*tail[-40:], line]
        for mark in (RECIPE_STARTED, *DATA_READY, FIRST_STEP):
            if mark in line:
                seen.setdefault(mark, time.monotonic() - started)
    process.wait()
    wall = time.monotonic() - started
    peak.stop()
    if process.returncode != 0:
        raise RuntimeError(f"{run_name} failed ({process.returncode}):\n{''.join(tail)}")
    ready = next(seen[mark] for mark in DATA_READY if mark in seen)
    return RunMeasure(wall, seen[RECIPE_STARTED], ready, seen[FIRST_STEP], peak.mib)


class PeakAnonymousMemory(threading.Thread):
    """The largest sum of RssAnon over a process and its descendants, sampled every `SAMPLE_EVERY` s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.mib, self.done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.mib = max(self.mib, sum(map(anonymous_kib, process_tree(self.pid))) / 1024)
            self.done.wait(SAMPLE_EVERY)

    def stop(self) -> None:
        self.done.set()
        self.join()


def process_tree(root: int) -> list[int]:
    """`root` and every process descended from it, from the parent ids in /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending += parents.get(pid, [])
    return tree


def anonymous_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("RssAnon:")), 0)


def run_scale_benchmark(sizes: list[int], workdir: Path) -> dict:
    """For each size: the first run into a fresh cache, then the cached run."""
    results: dict[str, dict[str, dict]] = {}
    for size in sizes:
        chats = write_conversations(workdir / f"conversations-{size}.jsonl", size)
        size_dir = workdir / str(size)
        size_dir.mkdir()
        results[str(size)] = {}
        for run in ("first", "cached"):
            measured = measure_run(chats, size_dir, run)
            results[str(size)][run] = asdict(measured)
            print(
                f"{size:9,d} conversations, {run:6} run: {measured.wall_s:6.1f} s, recipe started at "
                f"{measured.recipe_started_s:6.1f} s, data ready at "
                f"{measured.data_ready_s:6.1f} s, first step at {measured.first_step_s:6.1f} s, "
                f"peak anonymous memory {measured.peak_anon_mib:7,.0f} MiB",
                flush=True,
            )
        # A million conversations leave gigabytes of cache behind: gone before the next size.
        shutil.rmtree(size_dir)
        chats.unlink()
    return summarize(results, sizes)


def summarize(results: dict[str, dict[str, dict]], sizes: list[int]) -> dict:
    rows = [
        (
            f"{size:,} conversations, {run} run",
            f"{result['wall_s']:.1f} s, recipe started at {result['recipe_started_s']:.1f} s, data ready at "
            f"{result['data_ready_s']:.1f} s, first optimizer step at {result['first_step_s']:.1f} s "
            f"({result['first_step_s'] - result['recipe_started_s']:.1f} s after the recipe started), "
            f"peak anonymous memory {result['peak_anon_mib']:,.0f} MiB",
        )
        for size in sizes
        for run, result in results[str(size)].items()
    ]
    smallest, largest = results[str(sizes[0])], results[str(sizes[-1])]
    targets = [
        Target(
            f"peak anonymous memory, {run} run, {sizes[-1]:,} / {sizes[0]:,} conversations",
            Spread.of([largest[run]["peak_anon_mib"] / smallest[run]["peak_anon_mib"]]),
            1.2,
            at_least=False,
        )
        for run in ("first", "cached")
    ]
    targets.append(
        Target(
            f"cached run, start to first optimizer step, {sizes[-1]:,} conversations",
            Spread.of([largest["cached"]["first_step_s"]]),
            15,
            at_least=False,
            unit=" s",
        )
    )
    print()
    for target in targets:
        print(target.show())
    load = Path("/proc/loadavg").read_text().split()[:3]
    header = (
        f"`python -m bench --data --conversations {' '.join(map(str, sizes))}`, run on {time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} cores (load average {', '.join(load)} at the end, the bench's own processes included). "
        f"`python -m trainer data.train=<file> {' '.join(RUN_OVERRIDES)}` on seeded conversations of 1..8 turns "
        "(about 1.7 KB of JSON and 1,200 tokens of the tiny tokenizer each), run twice: the first run into a fresh "
        "cache, then the cached run. Times are from the start of the process; the recipe starts with its first log line "
        "(the interpreter, imports and config done); data ready is the log line of the "
        "tokenized data saved to or read from the cache; the first optimizer step is its log line. Peak anonymous "
        "memory is the largest sum of RssAnon over the run's process tree, sampled every 0.1 s."
    )
    markdown = header + "\n\n" + tables_markdown(rows, targets)
    return {"sizes": sizes, "results": results, "targets": [target.to_dict() for target in targets], "markdown": markdown}  # fmt: skip
