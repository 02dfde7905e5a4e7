"""`python -m bench --dpo`: trainer's objective=dpo against TRL's DPOTrainer on the same pairs.

The workload's chats become pairs (the last answer chosen, the same answer with its result one
off rejected) and go through trainer's preference pipeline; every contender trains those very
token ids from the same weights, with the same batch of pairs, steps, beta, learning rate and seed,
in fp32 without activation checkpointing (TRL's configs default to bf16 and checkpointing).

- trainer_dpo: the product's run (packed pairs, reference log-probs precomputed and cached).
- trainer_dpo_every_step: objective.precompute_ref=false (a frozen reference forward every step).
- trl_default: TRL's defaults: a reference forward every step, pairs padded.
- trl_precompute: TRL's best here: precompute_ref_log_probs=True (TRL 1.16 has no padding-free
  DPO: `padding_free=True` falls back to padding with a warning).

Real tokens are the non-padding tokens of both sides of each pair; seconds are the Trainer's
`train_runtime` for all. On a shared machine wall seconds follow the other jobs' load, so each run
also reports the CPU seconds of this process over the same loop (`CpuClock`; one torch thread):
tokens per CPU-second compare the work each does, whoever else runs. The one-time reference pass (TRL's in its constructor, trainer's before
its first step, read from the cache after the first run) is outside every timed loop.
"""

from __future__ import annotations

import json
import os
import platform
import random
import re
import tempfile
import time
from dataclasses import asdict, replace
from datetime import date
from functools import partial
from pathlib import Path

import torch
import trl
from datasets import Dataset
from transformers import TrainerCallback

from bench.contenders import Run, load_plain_model, plain_arguments, run_rounds, run_trainer, train_quietly
from bench.limits import matmul_gflops, model_gflops, parameter_count
from bench.report import Spread, Target, per_round_ratios, print_tables, ratio_row, tables_markdown
from bench.workload import Workload, chat, engine_config
from trainer.config.schema import ObjectiveConfig, TrainerConfig
from trainer.data.preference import load_preference_split, tokenize_preference_split
from trainer.data.tokenization import IGNORE_INDEX
from trainer.modeling.loading import load_model_and_tokenizer
from trainer.precision import plan_precision
from trainer.profiles import build_profile
from trainer.run.job_isolation import isolated_job

CONTENDERS = ("trainer_dpo", "trainer_dpo_every_step", "trl_default", "trl_precompute")
BETA = 0.1


class CpuClock(TrainerCallback):
    """The CPU seconds of this process from the start of the training loop to its end."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.seconds = -time.process_time()

    def on_train_end(self, args, state, control, **kwargs):
        self.seconds += time.process_time()


class GivenTokensDPOTrainer(trl.DPOTrainer):
    """TRL's trainer on pairs tokenized already (`trl_rows`): its own tokenization is skipped."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return dataset


def trl_rows(pairs: Dataset) -> Dataset:
    """trainer's pairs as TRL's prompt/chosen/rejected ids: the prompt ends where the answer's
    labels start; the answer ends with its last label (the template's newline after the
    end-of-turn is no label, and no token after the last label changes a log-prob)."""
    rows = {"prompt_ids": [], "chosen_ids": [], "rejected_ids": []}
    for pair in pairs:
        bounds = {}
        for side in ("chosen", "rejected"):
            labelled = [position for position, label in enumerate(pair[f"{side}_labels"]) if label != IGNORE_INDEX]
            bounds[side] = (labelled[0], labelled[-1] + 1)
        prompt = pair["chosen_input_ids"][: bounds["chosen"][0]]
        if prompt != pair["rejected_input_ids"][: bounds["rejected"][0]]:
            raise ValueError("the two sides of a pair have different prompts")
        rows["prompt_ids"].append(prompt)
        for side, (start, end) in bounds.items():
            rows[f"{side}_ids"].append(pair[f"{side}_input_ids"][start:end])
    return Dataset.from_dict(rows)


def write_pairs(path: Path, count: int) -> Path:
    """The workload's chats as pairs: the last answer chosen, its result one off rejected."""
    rng = random.Random(0)
    lines = []
    for _ in range(count):
        messages = chat(rng)["messages"]
        answer = messages[-1]["content"]
        number = re.search(r"-?\d+$", answer)
        rejected = answer[: number.start()] + str(int(number.group()) + 1)
        pair = {
            "prompt": messages[:-1],
            "chosen": [messages[-1]],
            "rejected": [{"role": "assistant", "content": rejected}],
        }
        lines.append(json.dumps(pair) + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def dpo_config(workload: Workload, workdir: Path, model_cache: Path, precompute: bool = True) -> TrainerConfig:
    config = engine_config(workload, workdir, model_cache)
    return replace(
        config,
        data=replace(config.data, train=str(workdir / "pairs.jsonl"), packing=None),
        objective=ObjectiveConfig(name="dpo", beta=BETA, precompute_ref=precompute),
    )


def tokenized_pairs(config: TrainerConfig) -> Dataset:
    """The workload's pairs tokenized exactly as a run of `config` tokenizes them."""
    profile = build_profile(config.profile, config.seed)
    split = load_preference_split(config.data, profile, config.seed)
    _, tokenizer, _ = load_model_and_tokenizer(config.model, plan_precision(config.precision.name).model_dtype)
    system_prompt = profile.render_system_prompt(config.data.system_prompt, date.fromisoformat(config.run.date))
    return tokenize_preference_split(split, profile, system_prompt, tokenizer, config.data.max_length).train


def run_trl_dpo(config: TrainerConfig, rows: Dataset, precompute: bool, clock: CpuClock | None = None) -> Run:
    model, tokenizer = load_plain_model(config)
    with tempfile.TemporaryDirectory() as output_dir, isolated_job():
        arguments = trl.DPOConfig(
            **plain_arguments(config, output_dir),
            beta=BETA,
            precompute_ref_log_probs=precompute,
            max_length=None,
            gradient_checkpointing=False,
            bf16=False,
        )
        trainer = GivenTokensDPOTrainer(
            model=model, args=arguments, train_dataset=rows, processing_class=tokenizer, callbacks=[clock or CpuClock()]
        )
        return train_quietly(trainer)


def run_dpo_benchmark(workload: Workload, rounds: int, workdir: Path) -> dict:
    started = time.perf_counter()
    model_cache = workdir / "models"
    write_pairs(workdir / "pairs.jsonl", workload.chats)
    config = dpo_config(workload, workdir, model_cache)
    rows = trl_rows(tokenized_pairs(config))
    parameters = parameter_count(load_plain_model(config)[0])
    every_step = dpo_config(workload, workdir, model_cache, precompute=False)
    clocks = {name: CpuClock() for name in CONTENDERS}
    contenders = {
        "trainer_dpo": lambda: run_trainer(config, [clocks["trainer_dpo"]]),
        "trainer_dpo_every_step": lambda: run_trainer(every_step, [clocks["trainer_dpo_every_step"]]),
        "trl_default": lambda: run_trl_dpo(config, rows, False, clocks["trl_default"]),
        "trl_precompute": lambda: run_trl_dpo(config, rows, True, clocks["trl_precompute"]),
    }
    cpu_seconds: dict[str, list[float]] = {name: [] for name in CONTENDERS}

    def timed(name: str) -> Run:
        run = contenders[name]()
        cpu_seconds[name].append(clocks[name].seconds)
        return run

    lengths = sorted(len(ids) for ids in rows["prompt_ids"])
    print(f"{len(rows)} pairs, prompts of {lengths[0]}..{lengths[-1]} tokens; batch {workload.batch} pairs, {workload.steps} steps", flush=True)  # fmt: skip
    # One-time costs (imports, kernels for new shapes, the reference cache) fall on no measured run.
    short = replace(workload, steps=3)
    run_trainer(dpo_config(short, workdir, model_cache))
    run_trl_dpo(dpo_config(short, workdir, model_cache), rows, precompute=False)
    runs = run_rounds({name: partial(timed, name) for name in CONTENDERS}, rounds)
    ceiling = max(matmul_gflops(), matmul_gflops())
    cpu = {name: [run.tokens / seconds for run, seconds in zip(runs[name], cpu_seconds[name], strict=True)] for name in CONTENDERS}  # fmt: skip
    return summarize(workload, runs, cpu, parameters, ceiling, time.perf_counter() - started)


def summarize(
    workload: Workload,
    runs: dict[str, list[Run]],
    cpu: dict[str, list[float]],
    parameters: int,
    ceiling: float,
    seconds: float,
) -> dict:
    speeds = {name: [run.tokens_per_sec for run in series] for name, series in runs.items()}
    share = {name: Spread.of([model_gflops(parameters, speed) / ceiling for speed in series]) for name, series in speeds.items()}  # fmt: skip
    targets = [
        Target("7. trainer DPO / TRL DPOTrainer defaults", per_round_ratios(speeds["trainer_dpo"], speeds["trl_default"]), 2.0),
        Target("7. trainer DPO / TRL best (precompute_ref_log_probs)", per_round_ratios(speeds["trainer_dpo"], speeds["trl_precompute"]), 1.3),
    ]  # fmt: skip
    # Both log the same steps (the first, then every logging_steps): the same training, step for step.
    loss_gap = max(
        abs(ours - theirs)
        for mine, trl_run in zip(runs["trainer_dpo"], runs["trl_precompute"], strict=True)
        # trainer also logs the last step where it is no multiple of logging_steps: left out here.
        for ours, theirs in zip(mine.losses, trl_run.losses, strict=False)
    )
    rows = [
        *[(f"{name} real tokens/s", Spread.of(speeds[name]).show()) for name in CONTENDERS],
        *[(f"{name} real tokens per CPU-second", Spread.of(cpu[name]).show()) for name in CONTENDERS],
        *[(f"{name} 6*N*tokens/s / matmul peak", share[name].show(2)) for name in CONTENDERS],
        ratio_row("trainer_dpo / trl_default, per CPU-second", cpu["trainer_dpo"], cpu["trl_default"]),
        ratio_row("trainer_dpo / trl_precompute, per CPU-second", cpu["trainer_dpo"], cpu["trl_precompute"]),
        ratio_row("trainer_dpo_every_step / trl_default", speeds["trainer_dpo_every_step"], speeds["trl_default"]),
        ratio_row("trl_precompute / trl_default", speeds["trl_precompute"], speeds["trl_default"]),
        ("largest logged loss gap, trainer_dpo vs trl_precompute", f"{loss_gap:.1e}"),
        ("fp32 matmul 2048^3", f"{ceiling:.1f} GFLOP/s"),
        ("benchmark wall time", f"{seconds / 60:.1f} min"),
    ]
    header = (
        f"Run on {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch thread(s), load average {os.getloadavg()[0]:.1f} at the end, torch "
        f"{torch.__version__}, TRL {trl.__version__}; tiny qwen3 hidden 256 x 4 layers ({parameters / 1e6:.2f}M "
        f"parameters), {workload.chats} pairs, batch {workload.batch} pairs, {workload.steps} steps, beta {BETA}, "
        f"{len(runs['trainer_dpo'])} rounds."
    )
    print()
    print_tables(rows, targets)
    return {
        "workload": asdict(workload),
        "parameters": parameters,
        "matmul_gflops": ceiling,
        "runs": {name: [asdict(run) for run in series] for name, series in runs.items()},
        "tokens_per_cpu_sec": cpu,
        "targets": [target.to_dict() for target in targets],
        "wall_sec": seconds,
        "markdown": header + "\n\n" + tables_markdown(rows, targets),
    }
