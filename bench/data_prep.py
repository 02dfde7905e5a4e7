"""`python -m bench --data`: trainer's data preparation against a plain `datasets.map` floor.

Both read the same generated JSONL file and tokenize it with the same tokenizer and chat template
in batches, in the same number of processes. The floor renders and tokenizes only (no assistant
mask, no validation, no cache): the least any preparation can do. Trainer's preparation is the
product's own (read, check, profile, render once, mask, tokenize, save to a cache entry). Each is
run in a fresh process, so its peak resident memory is its own.

    PYTHONPATH=src python -m bench --data [--sizes 10000 100000] [--num-proc N]
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.report import Spread, Target, tables_markdown
from bench.workload import SYSTEM_PROMPT, write_chats

# trainer_mixture: the same chats as two sources (each half of the file), mixed 1:1.
CONTENDERS = ("floor", "trainer", "trainer_mixture")
BATCH_SIZE = 256
# Rounds per size, each running both contenders back to back (in alternating order): on a shared
# machine the load drifts, so each round's pair is compared, not the runs of different rounds.
ROUNDS = 3


def run_data_benchmark(sizes: list[int], num_proc: int, workdir: Path) -> dict:
    """Every contender on every size, sizes ascending, in `ROUNDS` rounds; the ratios trainer /
    floor per round and size."""
    results: dict[str, dict[str, list[dict]]] = {str(size): {name: [] for name in CONTENDERS} for size in sizes}
    for size in sizes:
        chats = write_chats(workdir / f"chats-{size}.jsonl", size)
        write_halves(chats)
        for round_ in range(ROUNDS):
            for name in CONTENDERS if round_ % 2 == 0 else reversed(CONTENDERS):
                result = measure(name, chats, num_proc, workdir / f"{name}-{size}-{round_}")
                results[str(size)][name].append(result)
                print(
                    f"{size:7d} chats {name:8} {result['seconds']:6.1f} s  {result['conversations_per_sec']:7,.0f} chats/s  "
                    f"{result['conversations_per_cpu_sec']:7,.0f} chats/CPU-s  {result['tokens_per_sec']:9,.0f} tokens/s  "
                    f"peak RSS {result['peak_rss_mb']:6,.0f} MB (largest worker {result['worker_peak_rss_mb']:,.0f} MB)",
                    flush=True,
                )
    return summarize(results, sizes, num_proc)


def measure(name: str, chats: Path, num_proc: int, workdir: Path) -> dict:
    """One contender in a fresh interpreter; it prints its measurements as JSON on its last line."""
    command = [sys.executable, "-m", "bench.data_prep", name, str(chats), str(num_proc), str(workdir)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def summarize(results: dict[str, dict[str, list[dict]]], sizes: list[int], num_proc: int) -> dict:
    rows = [(f"{name}, {size:,} chats", describe(results[str(size)][name])) for size in sizes for name in CONTENDERS]
    targets = [
        Target(f"{name} / floor {label}, {size:,} chats", Spread.of(ratios(results[str(size)], measure, name)), 1.0)
        for size in sizes
        for name in CONTENDERS[1:]
        for measure, label in (("conversations_per_sec", "chats/s"), ("conversations_per_cpu_sec", "chats per CPU-second"))
    ]  # fmt: skip
    peaks = {size: statistics.median(run["peak_rss_mb"] for run in results[str(size)]["trainer"]) for size in sizes}
    targets.append(Target(f"trainer peak RSS (median), {sizes[-1]:,} / {sizes[0]:,} chats", Spread.of([peaks[sizes[-1]] / peaks[sizes[0]]]), 1.2, at_least=False))  # fmt: skip
    print()
    for target in targets:
        print(target.show())
    header = (
        f"`python -m bench --data`, run on {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores "
        f"(load average {os.getloadavg()[0]:.1f} at the end, the bench's own processes included), "
        f"num_proc={num_proc}; {ROUNDS} rounds per size, each running both contenders back to back in "
        "alternating order; ratios are per round (median, range), rows give median (range). chats per "
        "CPU-second counts the user + system time of the contender and its workers over the same span as "
        "the wall time (not the interpreter's start), which other load on the machine does not change. The chats of "
        "bench/workload.py (a system prompt and 1..10 arithmetic turns), the tiny byte-level BPE tokenizer, ChatML. "
        "floor: `datasets.load_dataset` + batched `map` rendering the template and tokenizing, no mask; trainer: "
        "the product's read, check, render once, mask, tokenize, save to its cache entry; trainer_mixture: the same "
        "chats as two files (the halves), a 1:1 mixture: each source prepared into its own entry, then mixed."
    )
    markdown = header + "\n\n" + tables_markdown(rows, targets)
    return {"sizes": sizes, "num_proc": num_proc, "results": results, "targets": [target.to_dict() for target in targets], "markdown": markdown}  # fmt: skip


def ratios(results: dict[str, list[dict]], measure: str, name: str = "trainer") -> list[float]:
    """`name` / floor for each round."""
    return [ours[measure] / floor[measure] for ours, floor in zip(results[name], results["floor"], strict=True)]


def describe(runs: list[dict]) -> str:
    def spread(measure: str) -> str:
        return Spread.of([run[measure] for run in runs]).show()

    return (
        f"{spread('conversations_per_sec')} chats/s, {spread('conversations_per_cpu_sec')} chats per CPU-second, "
        f"{spread('tokens_per_sec')} tokens/s, peak RSS {spread('peak_rss_mb')} MB "
        f"(largest worker {spread('worker_peak_rss_mb')} MB)"
    )


def run_floor(chats: Path, num_proc: int, workdir: Path) -> tuple[int, int]:
    """The plain recipe: load the JSON with datasets, render the template and tokenize in batches."""
    import pyarrow.compute
    from datasets import load_dataset

    from trainer.modeling.tiny import build_tokenizer

    tokenizer = build_tokenizer(512)

    def render_and_tokenize(batch: dict) -> dict:
        texts = [tokenizer.apply_chat_template(messages, tokenize=False) for messages in batch["messages"]]
        return tokenizer(texts, add_special_tokens=False)

    dataset = load_dataset("json", data_files=str(chats), split="train", cache_dir=str(workdir / "datasets"))
    tokenized = dataset.map(
        render_and_tokenize, batched=True, batch_size=BATCH_SIZE, num_proc=num_proc if num_proc > 1 else None,
        remove_columns=dataset.column_names,
    )  # fmt: skip
    lengths = pyarrow.compute.list_value_length(tokenized.data.table.column("input_ids"))
    return len(tokenized), pyarrow.compute.sum(lengths).as_py()


def run_trainer(chats: Path, num_proc: int, workdir: Path) -> tuple[int, int]:
    """The product's preparation, as a run does it, into a fresh cache directory."""
    from trainer.config.schema import DataConfig, ProfileConfig
    from trainer.data.cache_entry import tokenize_split
    from trainer.data.split import load_record_split
    from trainer.modeling.tiny import build_tokenizer
    from trainer.profiles.plain import PlainProfile

    tokenizer = build_tokenizer(512)
    profile = PlainProfile(ProfileConfig(), seed=0)
    config = DataConfig(train=str(chats), validation_split=0.0, max_length=4096, system_prompt=SYSTEM_PROMPT)
    records = load_record_split(config, profile, seed=0)
    data = tokenize_split(records, profile, SYSTEM_PROMPT, tokenizer, config.max_length, workdir / "cache", num_proc)
    return len(records.train), data.stats["train_tokens"]


def run_trainer_mixture(chats: Path, num_proc: int, workdir: Path) -> tuple[int, int]:
    """The product's preparation of a 1:1 mixture of the two halves of `chats` (split off before the clock)."""
    from trainer.config.schema import DataConfig, ProfileConfig
    from trainer.data.mixture import tokenize_data_split
    from trainer.data.split import load_data_split
    from trainer.modeling.tiny import build_tokenizer
    from trainer.profiles.plain import PlainProfile

    tokenizer = build_tokenizer(512)
    profile = PlainProfile(ProfileConfig(), seed=0)
    halves = [{"path": str(half), "weight": 1} for half in chats.parent.glob(f"{chats.stem}-half-*.jsonl")]
    config = DataConfig(
        train=sorted(halves, key=str), validation_split=0.0, max_length=4096, system_prompt=SYSTEM_PROMPT
    )
    records = load_data_split(config, profile, seed=0)
    data = tokenize_data_split(
        records, profile, SYSTEM_PROMPT, tokenizer, config.max_length, workdir / "cache", num_proc
    )
    return data.stats["train_examples"], data.stats["train_tokens"]


def write_halves(chats: Path) -> None:
    """The two sources of the mixture contender: the first and the second half of `chats`' lines."""
    lines = chats.read_bytes().splitlines(keepends=True)
    for number, half in enumerate((lines[: len(lines) // 2], lines[len(lines) // 2 :])):
        (chats.parent / f"{chats.stem}-half-{number}.jsonl").write_bytes(b"".join(half))


def contender_main() -> None:
    name, chats, num_proc, workdir = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    workdir.mkdir(parents=True, exist_ok=True)
    started, cpu_started = time.perf_counter(), time.process_time()
    contenders = {"floor": run_floor, "trainer": run_trainer, "trainer_mixture": run_trainer_mixture}
    conversations, tokens = contenders[name](chats, num_proc, workdir)
    seconds = time.perf_counter() - started
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so it would report the benchmark's own peak.
    peak_kb = int(
        next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM")).split()[1]
    )
    # From `started`, as the wall time: the interpreter's start is left out.
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = time.process_time() - cpu_started + workers.ru_utime + workers.ru_stime
    workers_kb = workers.ru_maxrss
    print(json.dumps({
        "conversations": conversations, "tokens": tokens, "seconds": seconds,
        "conversations_per_sec": conversations / seconds, "cpu_seconds": cpu_seconds,
        "conversations_per_cpu_sec": conversations / cpu_seconds, "tokens_per_sec": tokens / seconds,
        "peak_rss_mb": peak_kb / 1024, "worker_peak_rss_mb": workers_kb / 1024,
    }))  # fmt: skip


if __name__ == "__main__":
    contender_main()
