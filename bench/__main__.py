"""`python -m bench`: trainer against a plain transformers script and TRL, side by side, and the CPU limit.

Every contender trains the same tiny Qwen3 shape (hidden 256, 4 layers) from the same weights on
the same variable-length chats, with the same batch, steps and seed. One round runs each once,
back to back, in an order that rotates every round, so drift of a shared machine hits all alike;
ratios are taken within rounds. Prints medians with (low..high) over rounds, the ratios against
their targets, and writes bench/results/<time>.json and bench/RESULTS.md.

    PYTHONPATH=src python -m bench [--rounds 3] [--steps 30] [--threads 1]
    PYTHONPATH=src python -m bench --dpo         # only the DPO rows: objective=dpo vs TRL's DPOTrainer (bench/dpo.py)
    PYTHONPATH=src python -m bench --gpu         # on a CUDA machine: Qwen3-0.6B shape, bf16, packing
    PYTHONPATH=src python -m bench --monitoring  # what trainer's monitoring costs, on vs off
    PYTHONPATH=src python -m bench --data        # data preparation vs a plain datasets.map floor
    PYTHONPATH=src python -m bench --generation-eval  # batched eval answers vs one at a time
    PYTHONPATH=src python -m bench --vocab       # vocabulary 151,936 vs 4,096: chunked vs unchunked loss
    PYTHONPATH=src python -m bench --data --conversations 10000 100000 1000000  # first and cached runs at scale
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import datasets
import torch
import transformers

from bench.contenders import Run, load_plain_model, run_plain_transformers, run_rounds, run_trainer, run_trl
from bench.limits import cli_seconds, matmul_gflops, model_gflops, parameter_count, seconds_to_first_step
from bench.report import Spread, Target, per_round_ratios, print_tables, results_markdown, section_of, with_section
from bench.step_memory import step_saved_bytes
from bench.workload import Workload, engine_config, tokenized_data, write_chats
from trainer.config.schema import ModelConfig, TrainerConfig
from trainer.data.cache_entry import TokenizedData
from trainer.data.token_budget import TokenBudgetBatchSampler
from trainer.modeling.tiny import tiny_model_dir
from trainer.run.files import write_json_atomic, write_text_atomic

BENCH_DIR = Path(__file__).parent
RESULTS = BENCH_DIR / "RESULTS.md"
DATA_SECTION = "Data preparation"
SCALE_SECTION = "Data at scale: first and cached runs"
GPU_SECTION = "GPU: `python -m bench --gpu`"
GENERATION_EVAL_SECTION = "Generation eval: `python -m bench --generation-eval`"
VOCABULARY_SECTION = "Large vocabulary: `python -m bench --vocab`"
DPO_SECTION = "DPO: `python -m bench --dpo`"
CONTENDERS = (
    "plain",
    "trainer",
    "trainer_packed",
    "trainer_budget",
    "trainer_budget_compile",
    "trl",
    "trl_padding_free",
)
TRAINER_BEST = ("trainer_packed", "trainer_budget", "trainer_budget_compile")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per run")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--chats", type=int, default=384)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads; 1 keeps ratios steady on a shared machine"
    )
    parser.add_argument(
        "--dpo", action="store_true", help="only the DPO rows: trainer vs TRL's DPOTrainer (bench/dpo.py)"
    )
    parser.add_argument("--gpu", action="store_true", help="the CUDA variant (bench/gpu.py) instead")
    parser.add_argument("--gpu-steps", type=int, default=24, help="plain steps of the --gpu epoch")
    parser.add_argument("--monitoring", action="store_true", help="monitoring on vs off (bench/monitoring.py) instead")
    parser.add_argument(
        "--data", action="store_true", help="data preparation vs a datasets.map floor (bench/data_prep.py)"
    )
    parser.add_argument(
        "--vocab",
        action="store_true",
        help="vocabulary 151,936 vs 4,096, chunked vs unchunked loss (bench/vocabulary.py)",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="chats per --data file")
    parser.add_argument(
        "--conversations",
        type=int,
        nargs="+",
        help="with --data: a first and a cached `python -m trainer` run on this many conversations (bench/data_scale.py)",
    )
    parser.add_argument("--num-proc", type=int, default=len(os.sched_getaffinity(0)), help="--data processes")
    parser.add_argument(
        "--generation-eval",
        action="store_true",
        help="batched eval answers vs one at a time (bench/generation_eval.py)",
    )
    options = parser.parse_args()
    quiet_logs()
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    if options.gpu:
        from bench.gpu import run_gpu_benchmark

        report, name = run_gpu_benchmark(options.gpu_steps), f"gpu-{stamp}"
        print("\n" + report["markdown"])
    elif options.generation_eval:
        from bench.generation_eval import run_generation_eval_benchmark

        torch.set_num_threads(options.threads)
        load = os.getloadavg()[0]
        with tempfile.TemporaryDirectory(prefix="bench-eval-") as workdir:
            report, name = run_generation_eval_benchmark(options.rounds, Path(workdir)), f"generation-eval-{stamp}"
        header = (
            f"Run on {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
            f"{torch.get_num_threads()} torch thread(s), load average {load:.1f} when it started, {options.rounds} rounds."
        )
        write_results_section(GENERATION_EVAL_SECTION, header + "\n\n" + report["markdown"])
    elif options.data and options.conversations:
        from bench.data_scale import run_scale_benchmark

        with tempfile.TemporaryDirectory(prefix="bench-scale-") as workdir:
            report = run_scale_benchmark(sorted(options.conversations), Path(workdir))
        name = f"data-scale-{stamp}"
        write_results_section(SCALE_SECTION, report["markdown"])
    elif options.data:
        from bench.data_prep import run_data_benchmark

        with tempfile.TemporaryDirectory(prefix="bench-data-") as workdir:
            report, name = run_data_benchmark(sorted(options.sizes), options.num_proc, Path(workdir)), f"data-{stamp}"
        write_results_section(DATA_SECTION, report["markdown"])
    else:
        torch.set_num_threads(options.threads)
        workload = Workload(chats=options.chats, batch=options.batch, steps=options.steps)
        with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
            if options.vocab:
                from bench.vocabulary import run_vocabulary_benchmark

                report, name = run_vocabulary_benchmark(workload, options.rounds, Path(workdir)), f"vocab-{stamp}"
                write_results_section(VOCABULARY_SECTION, report["markdown"])
            elif options.dpo:
                report, name = run_dpo_rows(workload, options.rounds, Path(workdir)), f"dpo-{stamp}"
            elif options.monitoring:
                from bench.monitoring import run_monitoring_benchmark

                report, name = run_monitoring_benchmark(workload, options.rounds, Path(workdir)), f"monitoring-{stamp}"
            else:
                report, name = run_cpu_benchmark(workload, options.rounds, Path(workdir)), stamp
                write_results(report["markdown"])
                # The DPO rows follow the SFT ones, on a fresh directory (their pairs, their runs).
                with tempfile.TemporaryDirectory(prefix="bench-dpo-") as dpo_workdir:
                    report["dpo"] = run_dpo_rows(workload, options.rounds, Path(dpo_workdir))
    write_json_atomic(BENCH_DIR / "results" / f"{name}.json", report)
    print(f"wrote bench/results/{name}.json")


def write_results(markdown: str) -> None:
    """RESULTS.md anew, keeping the sections of the last `--gpu` and `--data` runs."""
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.is_file() else ""
    for title in (GPU_SECTION, DATA_SECTION, VOCABULARY_SECTION, GENERATION_EVAL_SECTION, SCALE_SECTION, DPO_SECTION):
        if (section := section_of(old, title)) is not None:
            markdown = with_section(markdown, title, section)
    write_text_atomic(RESULTS, markdown)
    print("\nwrote bench/RESULTS.md")


def run_dpo_rows(workload: Workload, rounds: int, workdir: Path) -> dict:
    """The DPO rows (bench/dpo.py), written as their section of RESULTS.md."""
    from bench.dpo import run_dpo_benchmark

    report = run_dpo_benchmark(workload, rounds, workdir)
    write_results_section(DPO_SECTION, report["markdown"])
    return report


def write_results_section(title: str, section: str) -> None:
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.is_file() else "# Benchmark results\n"
    write_text_atomic(RESULTS, with_section(old, title, section))
    print(f"\nwrote the {title!r} section of bench/RESULTS.md")


def quiet_logs() -> None:
    """Warnings only on the console; runs still log everything to their own trainer.log."""
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    logging.basicConfig(level=logging.WARNING, handlers=[console])
    # Loading and saving bars would bury the results (the trainer runs' own training bar stays, on stderr).
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def run_cpu_benchmark(workload: Workload, rounds: int, workdir: Path) -> dict:
    started = time.perf_counter()
    model_cache = workdir / "models"
    write_chats(workdir / "chats.jsonl", workload.chats)
    config = engine_config(workload, workdir, model_cache)
    packed = replace(config, data=replace(config.data, packing=True))
    data = tokenized_data(config)
    budget = token_budget_config(config, data)
    compiled = replace(budget, train=replace(budget.train, torch_compile=True))
    model, tokenizer = load_plain_model(config)
    parameters = parameter_count(model)
    memory = {
        "plain": step_saved_bytes(config, model, tokenizer, data, workload.steps),
        "trainer_budget": step_saved_bytes(budget, model, tokenizer, data, budget.train.max_steps),
    }
    contenders = {
        "plain": lambda: run_plain_transformers(config, data),
        "trainer": lambda: run_trainer(config),
        "trainer_packed": lambda: run_trainer(packed),
        "trainer_budget": lambda: run_trainer(budget),
        "trainer_budget_compile": lambda: run_trainer(compiled),
        "trl": lambda: run_trl(config, data, padding_free=False),
        "trl_padding_free": lambda: run_trl(config, data, padding_free=True),
    }
    describe_workload(workload, data, parameters)
    print(f"token budget {budget.data.tokens_per_batch} tokens x {budget.train.max_steps} steps", flush=True)
    warm_up(contenders, workload, workdir, model_cache)

    runs = run_rounds({name: contenders[name] for name in CONTENDERS}, rounds)
    ceiling = max(matmul_gflops(), matmul_gflops())
    cli = measure_cli(workdir, model_cache)
    return summarize(workload, runs, parameters, ceiling, cli, memory, time.perf_counter() - started)


def token_budget_config(config: TrainerConfig, data: TokenizedData) -> TrainerConfig:
    """Packed token-budget batches about as large as the workload's batches, for as many steps as
    train the same real tokens as `config`'s steps of random batches do on average."""
    lengths = [len(ids) for ids in data.train["input_ids"]]
    mean = sum(lengths) / len(lengths)
    budget = max(config.data.max_length, round(config.train.per_device_train_batch_size * mean / 64) * 64)
    fill = TokenBudgetBatchSampler(lengths, budget, config.seed).fill_ratio
    steps = round(config.train.max_steps * config.train.per_device_train_batch_size * mean / (budget * fill))
    return replace(
        config,
        data=replace(config.data, packing=True, tokens_per_batch=budget),
        train=replace(config.train, max_steps=steps, eval_steps=steps + 1, save_steps=steps + 1),
    )


def describe_workload(workload: Workload, data, parameters: int) -> None:
    lengths = sorted(map(len, data.train["input_ids"]))
    print(
        f"{len(lengths)} chats of {lengths[0]}..{lengths[-1]} tokens (median {lengths[len(lengths) // 2]}); "
        f"tiny qwen3 hidden 256 x 4 layers, {parameters / 1e6:.2f}M parameters; batch {workload.batch}, "
        f"{workload.steps} steps, seed {workload.seed}; {torch.get_num_threads()} torch threads",
        flush=True,
    )


def warm_up(contenders: dict, workload: Workload, workdir: Path, model_cache: Path) -> None:
    """Three steps of each contender, not counted: one-time costs (imports, kernel set-up for new
    shapes) fall on none of the measured runs."""
    short = replace(workload, steps=3)
    config = engine_config(short, workdir, model_cache)
    data = tokenized_data(config)
    run_plain_transformers(config, data)
    run_trainer(config)
    run_trainer(replace(config, data=replace(config.data, packing=True)))
    budget = token_budget_config(config, data)
    run_trainer(budget)
    run_trainer(replace(budget, train=replace(budget.train, torch_compile=True)))
    run_trl(config, data, padding_free=False)
    run_trl(config, data, padding_free=True)


def measure_cli(workdir: Path, model_cache: Path) -> dict[str, float]:
    tiny_model_dir(ModelConfig(cache_dir=str(model_cache)))  # built once, as after a user's first run
    cache = f"model.cache_dir={model_cache}"
    return {
        "help_sec": cli_seconds(["--help"], workdir),
        "cfg_job_sec": cli_seconds([cache, "--cfg", "job"], workdir),
        "first_step_sec": seconds_to_first_step([cache, f"hydra.run.dir={workdir / 'default-run'}"], workdir),
    }


def summarize(
    workload: Workload,
    runs: dict[str, list[Run]],
    parameters: int,
    ceiling: float,
    cli: dict,
    memory: dict[str, list[int]],
    seconds: float,
) -> dict:
    speeds = {name: [run.tokens_per_sec for run in series] for name, series in runs.items()}
    best_trl = max(("trl", "trl_padding_free"), key=lambda name: Spread.of(speeds[name]).median)
    best = max(TRAINER_BEST, key=lambda name: Spread.of(speeds[name]).median)
    flatness = {name: max(steps) / min(steps) for name, steps in memory.items()}
    steady = {name: [run.steady_tokens_per_sec for run in runs[name]] for name in TRAINER_BEST}
    share = {name: Spread.of([model_gflops(parameters, speed) / ceiling for speed in series]) for name, series in speeds.items()}  # fmt: skip
    targets = [
        Target("1. trainer / plain transformers (overhead)", per_round_ratios(speeds["trainer"], speeds["plain"]), 0.97),
        Target("2. trainer packed / plain transformers", per_round_ratios(speeds["trainer_packed"], speeds["plain"]), 1.3),
        Target(f"3. trainer packed / TRL ({best_trl})", per_round_ratios(speeds["trainer_packed"], speeds[best_trl]), 1.3),
        Target("4. python -m trainer --help", Spread.of([cli["help_sec"]]), 1.0, at_least=False, unit=" s"),
        Target("4. python -m trainer --cfg job", Spread.of([cli["cfg_job_sec"]]), 1.0, at_least=False, unit=" s"),
        Target("5. trainer packed: 6*N*tokens/s / matmul peak", share["trainer_packed"], 0.45, unit=""),
        Target(f"6. trainer best ({best}) / plain transformers", per_round_ratios(speeds[best], speeds["plain"]), 2.2),
        Target(f"6. trainer best ({best}): 6*N*tokens/s / matmul peak", share[best], 0.75, unit=""),
        Target("6. token budget: per-step activation bytes max/min", Spread.of([flatness["trainer_budget"]]), 1.1, at_least=False, unit=""),
    ]  # fmt: skip
    losses_gap = max(
        abs(a - b) for trainer, plain in zip(runs["trainer"], runs["plain"], strict=True)
        for a, b in zip(trainer.losses, plain.losses, strict=True)
    )  # fmt: skip
    rows = [
        *[(f"{name} real tokens/s", Spread.of(speeds[name]).show()) for name in CONTENDERS],
        *[(f"{name} 6*N*tokens/s / matmul peak", share[name].show(2)) for name in CONTENDERS],
        *[
            (f"{name} real tokens trained", Spread.of([run.tokens for run in runs[name]]).show())
            for name in ("plain", "trainer_budget")
        ],
        ("plain: per-step activation bytes max/min", f"{flatness['plain']:.2f}"),
        (
            "trainer_budget / trainer_packed",
            per_round_ratios(speeds["trainer_budget"], speeds["trainer_packed"]).show(2) + "x",
        ),
        (
            "trainer_budget_compile / trainer_budget, last 20 steps (compilation left out)",
            per_round_ratios(steady["trainer_budget_compile"], steady["trainer_budget"]).show(2) + "x",
        ),
        (
            "trainer_budget_compile / trainer_budget",
            per_round_ratios(speeds["trainer_budget_compile"], speeds["trainer_budget"]).show(2) + "x",
        ),
        ("TRL (best) / plain transformers", per_round_ratios(speeds[best_trl], speeds["plain"]).show(2) + "x"),
        ("fp32 matmul 2048^3", f"{ceiling:.1f} GFLOP/s"),
        ("start to first optimizer step, default run", f"{cli['first_step_sec']:.2f} s"),
        ("largest per-step loss gap, trainer vs plain", f"{losses_gap:.1e}"),
        ("benchmark wall time", f"{seconds / 60:.1f} min"),
    ]
    header = (
        f"Run on {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__}; tiny qwen3 hidden 256 x 4 layers "
        f"({parameters / 1e6:.2f}M parameters), {workload.chats} chats, batch {workload.batch}, {workload.steps} steps, "
        f"{len(runs['plain'])} rounds."
    )
    print()
    print_tables(rows, targets)
    return {
        "workload": asdict(workload),
        "threads": torch.get_num_threads(),
        "parameters": parameters,
        "matmul_gflops": ceiling,
        "cli": cli,
        "runs": {name: [asdict(run) for run in series] for name, series in runs.items()},
        "targets": [target.to_dict() for target in targets],
        "loss_gap_trainer_vs_plain": losses_gap,
        "step_saved_bytes": memory,
        "wall_sec": seconds,
        "markdown": results_markdown(header, rows, targets),
    }


if __name__ == "__main__":
    main()
