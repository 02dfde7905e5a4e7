"""TensorBoard event files in the run directory: train/loss, learning rate, grad norm, tokens/s,
eval/loss, and the run's resolved config as text. HParams are written at the end (`hparams`)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf
from transformers.integrations import TensorBoardCallback

from trainer.config import TrainerConfig

CONFIG_TEXT_TAG = "config"


class RunTensorBoardCallback(TensorBoardCallback):
    """transformers' TensorBoard callback, pinned to the run's own directory (never ./runs/ or
    a directory taken from the environment), that also records the run's config."""

    def __init__(self, log_dir: Path, config: TrainerConfig) -> None:
        super().__init__()
        self.logging_dir = str(log_dir)
        self.config_text = config_as_markdown(config)

    def on_train_begin(self, args, state, control, **kwargs):
        if self.tb_writer is None and state.is_world_process_zero:
            # A resumed run hides what the killed one logged after its checkpoint: no step twice.
            purge_step = state.global_step + 1 if state.global_step else None
            self.tb_writer = self._SummaryWriter(log_dir=self.logging_dir, purge_step=purge_step)
        super().on_train_begin(args, state, control, **kwargs)
        if self.tb_writer is not None:
            self.tb_writer.add_text(CONFIG_TEXT_TAG, self.config_text)


def config_as_markdown(config: TrainerConfig) -> str:
    """The resolved config as YAML, indented so TensorBoard's markdown shows it as a code block."""
    yaml = OmegaConf.to_yaml(OmegaConf.structured(config))
    return "\n".join(f"    {line}" for line in yaml.splitlines())
