"""`python -m bench --monitoring`: what monitoring costs, trainer's run with its monitoring on and off.

On and off alternate on the workload's tokenized data, so drift of the machine hits both alike;
each pair gives one on/off ratio. Two rates per run: tokens per wall-clock second, and tokens per
CPU second of this process, which other jobs on a shared machine disturb far less (monitoring's
cost is CPU work in this process). The "on" runs also time the monitoring callbacks themselves:
the share of the run spent inside them is the direct cost, free of run-to-run noise.

"On" is the run as the engine builds it: status.json (default throttle), the monitor callback
(tokens/s, ETA, trend, alerts), TensorBoard with tokens/s, and the NaN check of every step.
"Off" drops all of those; the log line and progress bar stay in both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from transformers import Trainer, TrainerCallback, set_seed

from bench.report import Spread, per_round_ratios
from bench.workload import Workload, engine_config, tokenized_data, write_chats
from trainer.config.schema import RunConfig, TrainerConfig
from trainer.data.cache_entry import TokenizedData
from trainer.monitoring.monitor import TrainingMonitorCallback
from trainer.monitoring.tensorboard import RunTensorBoardCallback
from trainer.recipe import build_trainer, setup_model, training_callbacks
from trainer.run.layout import RunDirectory
from trainer.run.status import StatusWriter


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
    run_dir = RunDirectory(Path(config.run.output_dir))
    status = StatusWriter(run_dir.status_file, config.monitoring.status_interval_sec)
    trainer = build_trainer(config, run_dir, setup_model(config), data, training_callbacks(config, run_dir, status))
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


def run_monitoring_benchmark(workload: Workload, pairs: int, workdir: Path) -> dict:
    write_chats(workdir / "chats.jsonl", workload.chats)
    base = engine_config(workload, workdir, workdir / "models")
    data = tokenized_data(base)
    # One run first, not counted: one-time costs (imports, allocator warm-up) hit neither side.
    measure(replace(base, run=RunConfig(output_dir=str(workdir / "warmup"))), data, monitoring=True)
    speeds: dict[bool, list[Speed]] = {True: [], False: []}
    for pair in range(pairs):
        for monitoring in (True, False):
            run_dir = workdir / f"run-{pair}-{'on' if monitoring else 'off'}"
            speeds[monitoring].append(measure(replace(base, run=RunConfig(output_dir=str(run_dir))), data, monitoring))
        on, off = speeds[True][-1], speeds[False][-1]
        print(
            f"pair {pair + 1}: wall on {on.wall:,.0f} off {off.wall:,.0f} tokens/s  "
            f"cpu on {on.cpu:,.0f} off {off.cpu:,.0f} tokens/cpu-s  in monitoring callbacks {on.hooks:.3%}",
            flush=True,
        )
    wall = per_round_ratios([s.wall for s in speeds[True]], [s.wall for s in speeds[False]])
    cpu = per_round_ratios([s.cpu for s in speeds[True]], [s.cpu for s in speeds[False]])
    hooks = Spread.of([s.hooks for s in speeds[True]])
    print(f"on/off wall {wall.show(4)}, on/off cpu {cpu.show(4)}, share in monitoring callbacks {hooks.show(4)}")
    return {"on_off_wall": wall.median, "on_off_cpu": cpu.median, "hooks_share": hooks.median}
