"""`trainer eval RUN_DIR [--checkpoint N]` (`python -m trainer.eval`): score a finished run's final
model, or one of its checkpoints, with the generation eval, without training; a sweep directory
scores every job and writes eval_summary.csv/md, the best job marked."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from trainer.cli.errors import exit_on_error
from trainer.config.schema import SWEEP_MODES

DEFAULT_METRIC = "eval/exact_match"


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="trainer eval", description=__doc__)
    parser.add_argument("directory", type=Path, help="a run directory (outputs/DATE/TIME) or a sweep's (multirun/...)")
    parser.add_argument("--checkpoint", type=int, help="score checkpoints/checkpoint-N instead of the final model")
    parser.add_argument(
        "--metric", default=DEFAULT_METRIC, help=f"a sweep's best job by this (default {DEFAULT_METRIC})"
    )
    parser.add_argument("--mode", default="max", choices=SWEEP_MODES, help="which end of --metric is best")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with exit_on_error():
        # Imported here: argument mistakes are answered without loading torch.
        from trainer.errors import UserError
        from trainer.eval.standalone import evaluate_run, evaluate_sweep, is_sweep

        if not arguments.directory.is_dir():
            raise UserError(f"{arguments.directory} does not exist or is not a directory")
        if is_sweep(arguments.directory):
            if arguments.checkpoint is not None:
                raise UserError("--checkpoint names one run's checkpoint; give a run directory, not a sweep's")
            evaluate_sweep(arguments.directory, arguments.metric, arguments.mode)
        else:
            evaluate_run(arguments.directory, arguments.checkpoint)
    return 0
