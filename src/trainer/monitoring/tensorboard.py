"""TensorBoard event files in the run directory: train/loss, learning rate, grad norm, eval/loss."""

from __future__ import annotations

from pathlib import Path

from transformers.integrations import TensorBoardCallback


class RunTensorBoardCallback(TensorBoardCallback):
    """transformers' TensorBoard callback, pinned to the run's own directory (never ./runs/ or
    a directory taken from the environment)."""

    def __init__(self, log_dir: Path) -> None:
        super().__init__()
        self.logging_dir = str(log_dir)
