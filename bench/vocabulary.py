"""`python -m bench --vocab`: the loss at a real vocabulary on the CPU.

The bench's body (hidden 256, 4 layers, tied embeddings) with a 151,936-token vocabulary (Qwen3's)
against the same body at 4,096: the embedding is grown to each size (the tokenizer stays the tiny
one, so the chats and labels are the same token ids; the softmax covers the whole vocabulary all
the same). Three contenders at each size: trainer with the token budget and the chunked loss (its
default), the same with the unchunked loss (`train.loss_chunk_size=null`), and the plain
transformers Trainer with dynamic padding.

Every run is a process of its own (the peak is per process), one after the other in an order that
rotates every round. The peak is the process's resident high-water mark over the training loop
alone: reset (/proc/self/clear_refs) when training begins, after the model and data are loaded, so
it holds the weights, the gradients and optimizer state as they appear, and the step's activations.
A second table times the loss alone (forward and backward of the head and the cross-entropy) at
151,936 for several chunk sizes, the measurement behind `train.loss_chunk_size`'s default.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from bench.contenders import run_plain_transformers, run_trainer
from bench.report import Spread, Target, per_round_ratios, print_tables, tables_markdown
from bench.workload import SHAPE, Workload, engine_config, tokenized_data, write_chats
from trainer.config.schema import ModelConfig, TrainConfig, TrainerConfig
from trainer.data.tokenization import IGNORE_INDEX
from trainer.modeling.chunked_loss import ChunkedLinearCrossEntropy
from trainer.modeling.tiny import tiny_model_dir

VOCABULARIES = (4_096, 151_936)
BUDGET = 4_096
CONTENDERS = ("trainer_chunked", "trainer_unchunked", "plain")
# Bytes per vocabulary row and hidden unit that training keeps: fp32 weight, gradient, two AdamW moments.
STATE_BYTES = 4 * 4
CHUNK_SIZES = (64, 128, 256, 512, 1024)
MIB = 2**20


@dataclass(frozen=True)
class Measured:
    tokens_per_sec: float
    peak_mib: float  # resident high-water mark over the training loop
    start_mib: float  # resident memory when training began


class TrainingPeak(TrainerCallback):
    """The process's resident high-water mark from the start of training to its end."""

    def on_train_begin(self, args, state, control, **kwargs):
        Path("/proc/self/clear_refs").write_text("5")
        self.start = status_mib("VmRSS")

    def on_train_end(self, args, state, control, **kwargs):
        self.peak = status_mib("VmHWM")


def status_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def grown_model(vocabulary: int, workdir: Path) -> Path:
    """The bench's tiny model with its (tied) embedding grown to `vocabulary` rows, saved."""
    target = workdir / f"model-{vocabulary}"
    source = tiny_model_dir(ModelConfig(tiny=SHAPE, cache_dir=str(workdir / "models")))
    model = AutoModelForCausalLM.from_pretrained(source)
    model.resize_token_embeddings(vocabulary, mean_resizing=False)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target


def contender_config(base: TrainerConfig, model_dir: Path, contender: str) -> TrainerConfig:
    model = replace(base.model, name=model_dir.name, source="pretrained", path=str(model_dir))
    if contender == "plain":
        return replace(base, model=model)
    chunk = TrainConfig().loss_chunk_size if contender == "trainer_chunked" else None
    return replace(
        base,
        model=model,
        data=replace(base.data, packing=True, tokens_per_batch=BUDGET),
        train=replace(base.train, loss_chunk_size=chunk),
    )


def measure(config: TrainerConfig, contender: str, results: multiprocessing.Queue) -> None:
    """One run, in a process of its own (spawned)."""
    torch.set_num_threads(1)
    peak = TrainingPeak()
    if contender == "plain":
        run = run_plain_transformers(config, tokenized_data(config), callbacks=[peak])
    else:
        run = run_trainer(config, callbacks=[peak])
    results.put(Measured(run.tokens_per_sec, peak.peak, peak.start))


def measured_in_own_process(config: TrainerConfig, contender: str) -> Measured:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=measure, args=(config, contender, results))
    process.start()
    measured = results.get()
    process.join()
    return measured


def loss_seconds_and_peak(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int | None):
    """Seconds of the loss's forward and backward, and the resident memory it added at its peak."""
    hidden, weight = hidden.detach().requires_grad_(), weight.detach().requires_grad_()
    Path("/proc/self/clear_refs").write_text("5")
    before = status_mib("VmRSS")
    started = time.perf_counter()
    if chunk is None:
        loss = F.cross_entropy(hidden @ weight.T, targets, reduction="sum")
    else:
        loss = ChunkedLinearCrossEntropy.apply(hidden, weight, targets, chunk, True)
    loss.backward()
    seconds = time.perf_counter() - started
    return seconds, status_mib("VmHWM") - before


def scan_chunk_sizes(positions: int, rounds: int) -> list[tuple[str, str]]:
    """The loss alone at the large vocabulary: time and added memory per chunk size, unchunked too."""
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(positions, SHAPE.hidden_size, generator=generator)
    weight = torch.randn(VOCABULARIES[-1], SHAPE.hidden_size, generator=generator) * 0.02
    targets = torch.randint(0, VOCABULARIES[-1], (positions,), generator=generator)
    sizes: list[int | None] = [None, *CHUNK_SIZES]
    seconds: dict[int | None, list[float]] = {size: [] for size in sizes}
    memory: dict[int | None, list[float]] = {size: [] for size in sizes}
    loss_seconds_and_peak(hidden, weight, targets, CHUNK_SIZES[0])  # warm-up, not counted
    for round_number in range(rounds):
        for size in sizes[round_number % len(sizes) :] + sizes[: round_number % len(sizes)]:
            took, added = loss_seconds_and_peak(hidden, weight, targets, size)
            seconds[size].append(took)
            memory[size].append(added)
    unchunked = statistics.median(seconds[None])
    return [
        (
            f"loss alone, {positions} positions x {VOCABULARIES[-1]:,}: "
            + ("unchunked" if size is None else f"chunks of {size}"),
            f"{statistics.median(seconds[size]) * 1000:,.0f} ms ({unchunked / statistics.median(seconds[size]):.2f}x "
            f"the unchunked speed), +{statistics.median(memory[size]):,.0f} MiB resident at its peak",
        )
        for size in sizes
    ]


def step_cpu_seconds(base: TrainerConfig, model_dir: Path, rounds: int, batches: int = 3) -> dict[str, list[float]]:
    """CPU seconds of the training step's forward and backward (RunTrainer.compute_loss, then
    backward) on the same token-budget batches, chunked and unchunked alternating in one process:
    the speed comparison that the load of a shared machine disturbs least (whole runs in their own
    processes move with it by 2x and more)."""
    from transformers import TrainingArguments

    from trainer.modeling.loading import load_model_and_tokenizer
    from trainer.training import RunTrainer, batching, token_budget_sampler

    torch.set_num_threads(1)
    configs = {name: contender_config(base, model_dir, name) for name in ("trainer_chunked", "trainer_unchunked")}
    model, tokenizer, _ = load_model_and_tokenizer(configs["trainer_chunked"].model, torch.float32)
    data = tokenized_data(configs["trainer_chunked"])
    features = [{"input_ids": ids, "labels": labels} for ids, labels in zip(data.train["input_ids"], data.train["labels"], strict=True)]  # fmt: skip
    trainers, steps = {}, {}
    for name, config in configs.items():
        sampler = token_budget_sampler(config, data)
        wiring = batching(config, model, tokenizer, sampler)
        arguments = TrainingArguments(output_dir=str(base.run.output_dir), use_cpu=True, report_to="none")
        trainers[name] = RunTrainer(model=model, args=arguments, **wiring)
        steps[name] = [wiring["data_collator"]([features[i] for i in batch]) for batch in list(sampler)[:batches]]
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    for round_number in range(rounds + 1):  # the first round warms up, not counted
        for name in list(configs)[round_number % 2 :] + list(configs)[: round_number % 2]:
            started = time.process_time()
            for batch in steps[name]:
                trainers[name].compute_loss(model, dict(batch)).backward()
                model.zero_grad(set_to_none=True)
            if round_number:
                seconds[name].append(time.process_time() - started)
    return seconds


def labelled_positions_per_batch(config: TrainerConfig) -> int:
    """The mean labelled positions of a token-budget batch of the workload: the loss's rows per step."""
    labels = tokenized_data(config).train["labels"]
    tokens = sum(map(len, labels))
    labelled = sum(sum(label != IGNORE_INDEX for label in example) for example in labels)
    return round(labelled / (tokens / BUDGET))


def run_vocabulary_benchmark(workload: Workload, rounds: int, workdir: Path) -> dict:
    started = time.perf_counter()
    load = os.getloadavg()
    write_chats(workdir / "chats.jsonl", workload.chats)
    base = engine_config(workload, workdir, workdir / "models")
    models = {vocabulary: grown_model(vocabulary, workdir) for vocabulary in VOCABULARIES}
    runs: dict[tuple[str, int], list[Measured]] = {(c, v): [] for c in CONTENDERS for v in VOCABULARIES}
    order = list(runs)
    for round_number in range(rounds):
        for contender, vocabulary in order[round_number % len(order) :] + order[: round_number % len(order)]:
            measured = measured_in_own_process(contender_config(base, models[vocabulary], contender), contender)
            runs[contender, vocabulary].append(measured)
            print(f"round {round_number + 1} {contender:17} vocabulary {vocabulary:7,}: {measured.tokens_per_sec:6,.0f} tokens/s, peak {measured.peak_mib:6,.0f} MiB (from {measured.start_mib:,.0f})", flush=True)  # fmt: skip
    positions = labelled_positions_per_batch(contender_config(base, models[VOCABULARIES[0]], "trainer_chunked"))
    scan = scan_chunk_sizes(positions, rounds)
    steps = step_cpu_seconds(base, models[VOCABULARIES[-1]], rounds=max(rounds, 4))
    return summarize(workload, runs, scan, steps, load, os.getloadavg(), time.perf_counter() - started)


def summarize(
    workload: Workload, runs: dict, scan: list, steps: dict, load_start: tuple, load_end: tuple, seconds: float
) -> dict:
    small, large = VOCABULARIES
    extra_state = (large - small) * SHAPE.hidden_size * STATE_BYTES / MIB
    bound = 1.1 * extra_state + 250 * 1e6 / MIB

    def increase(contender: str) -> Spread:
        return Spread.of([b.peak_mib - a.peak_mib for a, b in zip(runs[contender, small], runs[contender, large], strict=True)])  # fmt: skip

    def speeds(contender: str, vocabulary: int) -> list[float]:
        return [run.tokens_per_sec for run in runs[contender, vocabulary]]

    rows = []
    for contender in CONTENDERS:
        for vocabulary in VOCABULARIES:
            series = runs[contender, vocabulary]
            rows.append((f"{contender}, vocabulary {vocabulary:,}: peak MiB over the training loop", Spread.of([run.peak_mib for run in series]).show()))  # fmt: skip
            rows.append((f"{contender}, vocabulary {vocabulary:,}: real tokens/s", Spread.of(speeds(contender, vocabulary)).show()))  # fmt: skip
        rows.append((f"{contender}: peak increase {small:,} -> {large:,} (MiB)", increase(contender).show()))
    rows += [
        (f"extra weight, gradient and AdamW state of the {large:,} vocabulary", f"{extra_state:,.0f} MiB"),
        *scan,
        *[
            (
                f"{name}, vocabulary {large:,}: CPU seconds of 3 token-budget steps' forward and backward",
                Spread.of(steps[name]).show(2),
            )
            for name in steps
        ],
        ("load average (1, 5, 15 min) at start", ", ".join(f"{value:.1f}" for value in load_start)),
        ("load average (1, 5, 15 min) at end", ", ".join(f"{value:.1f}" for value in load_end)),
        ("benchmark wall time", f"{seconds / 60:.1f} min"),
    ]
    chunked_vs_unchunked = per_round_ratios(speeds("trainer_chunked", large), speeds("trainer_unchunked", large))
    # Speed is the inverse of the step's CPU seconds: unchunked / chunked seconds, round by round.
    step_speed = per_round_ratios(steps["trainer_unchunked"], steps["trainer_chunked"])
    targets = [
        Target(
            f"chunked: peak increase {small:,} -> {large:,} vs 1.1 x extra state + 250 MB",
            increase("trainer_chunked"),
            bound,
            at_least=False,
            unit=" MiB",
        ),
        Target(f"chunked / unchunked tokens/s at {large:,}, whole runs", chunked_vs_unchunked, 0.97),
        Target(f"chunked / unchunked step speed at {large:,}, CPU time in one process", step_speed, 0.97),
    ]
    header = (
        f"`python -m bench --vocab`, run on {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, 1 torch thread; "
        f"tiny qwen3 hidden 256 x 4 layers, tied embeddings grown to {small:,} and {large:,} rows; {workload.chats} chats; "
        f"trainer: token budget {BUDGET:,} tokens (packed); plain transformers: batch {workload.batch}, dynamic padding; "
        f"{workload.steps} steps per run, {len(runs[CONTENDERS[0], small])} rounds, every run its own process. Peak: "
        "resident high-water mark from the start of the training loop to its end (weights, gradients, AdamW state "
        "and the step's activations; the data and the Python heap as loaded before it)."
    )
    print_tables(rows, targets)
    return {
        "workload": asdict(workload),
        "runs": {f"{c}@{v}": [asdict(run) for run in series] for (c, v), series in runs.items()},
        "extra_state_mib": extra_state,
        "step_cpu_seconds": steps,
        "targets": [target.to_dict() for target in targets],
        "markdown": header + "\n\n" + tables_markdown(rows, targets),
    }
