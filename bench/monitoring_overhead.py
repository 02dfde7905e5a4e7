"""What monitoring costs: tokens/s of the tiny model with monitoring on and off.

Runs alternate on, off, on, off, ... in one process on the same tokenized data, so drift of the
machine (other jobs, thermal) hits both sides alike; each pair gives one on/off ratio. Two rates
per run: tokens per wall-clock second, and tokens per CPU second of this process, which other
jobs on a shared machine disturb far less (monitoring's cost is CPU work in this process). The
"on" runs also time the monitoring callbacks themselves: the share of the run spent inside them
is the direct cost, free of the noise that run-to-run ratios carry.

    python bench/monitoring_overhead.py --pairs 4 --steps 40 --threads 1

"On" is the run as the engine builds it: status.json (default throttle), the monitor callback
(tokens/s, ETA, trend, alerts), TensorBoard with tokens/s, and the NaN check of every step.
"Off" drops all of those; the log line and progress bar stay in both.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, set_seed

from trainer.config import RunConfig, TrainConfig, TrainerConfig
from trainer.data.preparation import TokenizedData, load_record_split, tokenize_split
from trainer.modeling.loading import load_model_and_tokenizer
from trainer.monitoring.monitor import TrainingMonitorCallback
from trainer.monitoring.run_log import route_transformers_logs
from trainer.monitoring.status import StatusWriter
from trainer.monitoring.tensorboard import RunTensorBoardCallback
from trainer.precision import plan_precision
from trainer.profiles import build_profile
from trainer.run_dir import RunDirectory
from trainer.training import build_hf_trainer


def bench_config(output_dir: Path, steps: int, logging_steps: int) -> TrainerConfig:
    # Evaluation and checkpoints only at the end, the same for both sides.
    train = replace(TrainConfig(), max_steps=steps, logging_steps=logging_steps, eval_steps=steps, save_steps=steps)
    return TrainerConfig(train=train, run=RunConfig(output_dir=str(output_dir)))


def tokenized_data(config: TrainerConfig) -> TokenizedData:
    profile = build_profile(config.profile, config.seed)
    records = load_record_split(config.data, profile, config.seed)
    _, tokenizer, _ = load_model_and_tokenizer(config.model, plan_precision(config.precision.name).model_dtype)
    return tokenize_split(records, profile, profile.render_system_prompt(None), tokenizer, config.data.max_length)


@dataclass(frozen=True)
class Speed:
    wall: float  # tokens per second
    cpu: float  # tokens per CPU second of this process
    hooks: float = 0.0  # share of the wall time spent inside the monitoring callbacks


class HookTimer:
    """Adds up the time spent in the `on_*` events of the callbacks it wraps."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, callback: TrainerCallback) -> None:
        for name in dir(TrainerCallback):
            if name.startswith("on_"):
                setattr(callback, name, self.timed(getattr(callback, name)))

    def timed(self, event: Callable) -> Callable:
        def run(*args, **kwargs):
            started = time.perf_counter()
            try:
                return event(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return run


def measure(config: TrainerConfig, data: TokenizedData, monitoring: bool) -> Speed:
    set_seed(config.seed)
    plan = plan_precision(config.precision.name)
    model, tokenizer, _ = load_model_and_tokenizer(config.model, plan.model_dtype)
    run_dir = RunDirectory(Path(config.run.output_dir))
    status = StatusWriter(run_dir.status_file, config.monitoring.status_interval_sec)
    trainer = build_hf_trainer(config, run_dir, model, tokenizer, data, plan, status)
    hooks = HookTimer()
    watchers = (TrainingMonitorCallback, RunTensorBoardCallback)
    for callback in [c for c in trainer.callback_handler.callbacks if isinstance(c, watchers)]:
        if monitoring:
            hooks.wrap(callback)
        else:
            trainer.remove_callback(callback)
    if not monitoring:
        # The plain Trainer's step, without the NaN check.
        trainer.training_step = Trainer.training_step.__get__(trainer)
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.train()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    tokens = trainer.state.num_input_tokens_seen
    return Speed(wall=tokens / wall, cpu=tokens / cpu, hooks=hooks.seconds / wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="on/off pairs to run")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per run")
    parser.add_argument("--logging-steps", type=int, default=10, help="log (and TensorBoard) every N steps")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    route_transformers_logs("warning")
    if args.threads:
        torch.set_num_threads(args.threads)

    ratios: list[Speed] = []
    with tempfile.TemporaryDirectory() as workdir:
        base = bench_config(Path(workdir) / "run", args.steps, args.logging_steps)
        data = tokenized_data(base)
        # One run first, not counted: one-time costs (imports, allocator warm-up) hit neither side.
        measure(replace(base, run=RunConfig(output_dir=f"{workdir}/warmup")), data, monitoring=True)
        for pair in range(args.pairs):
            speeds = {}
            for monitoring in (True, False):
                config = replace(
                    base, run=RunConfig(output_dir=f"{workdir}/run-{pair}-{'on' if monitoring else 'off'}")
                )
                speeds[monitoring] = measure(config, data, monitoring)
            on, off = speeds[True], speeds[False]
            ratios.append(Speed(wall=on.wall / off.wall, cpu=on.cpu / off.cpu, hooks=on.hooks))
            print(
                f"pair {pair}: wall on {on.wall:,.0f} off {off.wall:,.0f} tokens/s (on/off {ratios[-1].wall:.4f})"
                f"  cpu on {on.cpu:,.0f} off {off.cpu:,.0f} tokens/cpu-s (on/off {ratios[-1].cpu:.4f})"
                f"  in monitoring callbacks {on.hooks:.3%}",
                flush=True,
            )
    wall = statistics.median(ratio.wall for ratio in ratios)
    cpu = statistics.median(ratio.cpu for ratio in ratios)
    hooks = statistics.median(ratio.hooks for ratio in ratios)
    print(
        f"median over {len(ratios)} pairs: on/off wall {wall:.4f}, on/off cpu {cpu:.4f}, "
        f"time in monitoring callbacks {hooks:.3%}"
    )


if __name__ == "__main__":
    main()
