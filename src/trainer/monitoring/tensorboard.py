"""TensorBoard event files in the run directory: what a user compares between runs (train and
eval loss, tokens/s, learning rate, grad norm), a Custom Scalars layout that overlays them, and the
run's resolved config as text. HParams are written at the end (`hparams`)."""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import OmegaConf
from transformers.integrations import TensorBoardCallback
from transformers.integrations.integration_utils import rewrite_logs

from trainer.config.schema import PREFERENCE_METRICS, TrainerConfig

CONFIG_TEXT_TAG = "config"
LOSS_TAG = "train/loss"
EVAL_LOSS_TAG = "eval/loss"
TOKENS_PER_SEC_TAG = "train/tokens_per_sec"
LEARNING_RATE_TAG = "train/learning_rate"
GRAD_NORM_TAG = "train/grad_norm"
# The Custom Scalars dashboard: chart title -> the tags drawn on it, one line per run and tag.
COMPARE_CHARTS = {
    "loss: train vs eval": [LOSS_TAG, EVAL_LOSS_TAG],
    "tokens/s": [TOKENS_PER_SEC_TAG],
    "learning rate": [LEARNING_RATE_TAG],
    "grad norm": [GRAD_NORM_TAG],
}
LAYOUT_CATEGORY = "Compare runs"
# The generation eval's metrics (eval.enabled), one line each: the share of answers that pass.
EVAL_CHART = "generation eval: share of answers"
# Only these scalars are written. transformers' bookkeeping (runtime, samples_per_second,
# steps_per_second, total_flos, epoch ...) is not: TensorBoard's first screen opens the first two
# tag groups, and an `hf/` group would sort before `train/` and push the loss out of sight.
WRITTEN_SCALARS = {tag for tags in COMPARE_CHARTS.values() for tag in tags}
# objective=dpo|simpo: TRL's preference metrics, of training and of evaluation.
WRITTEN_SCALARS |= {f"{split}/{name}" for split in ("train", "eval") for name in PREFERENCE_METRICS}


class RunTensorBoardCallback(TensorBoardCallback):
    """transformers' TensorBoard callback, pinned to the run's own directory (never ./runs/ or
    a directory taken from the environment), that writes the scalars a user compares, the
    Custom Scalars layout and the run's config."""

    def __init__(self, log_dir: Path, config: TrainerConfig, eval_metrics: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.logging_dir = str(log_dir)
        self.config_text = config_as_markdown(config)
        # The generation eval's tags (eval/<metric>), charted together in the layout.
        self.eval_metrics = eval_metrics

    def on_train_begin(self, args, state, control, **kwargs):
        if self.tb_writer is None and state.is_world_process_zero:
            # A resumed run hides what the killed one logged after its checkpoint: no step twice.
            purge_step = state.global_step + 1 if state.global_step else None
            self.tb_writer = self._SummaryWriter(log_dir=self.logging_dir, purge_step=purge_step)
        super().on_train_begin(args, state, control, **kwargs)
        if self.tb_writer is not None:
            self.tb_writer.add_text(CONFIG_TEXT_TAG, self.config_text)
            self.tb_writer.add_custom_scalars(compare_layout(self.eval_metrics))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.tb_writer is None or not state.is_world_process_zero:
            return
        for tag, value in written_scalars(logs, self.eval_metrics).items():
            self.tb_writer.add_scalar(tag, value, state.global_step)
        self.tb_writer.flush()


def written_scalars(logs: dict[str, float] | None, eval_metrics: tuple[str, ...] = ()) -> dict[str, float]:
    """The scalars of one Trainer log event that TensorBoard writes, under its tags (`eval_metrics`:
    the generation eval's eval/<metric>). Every tracker (monitoring.trackers) takes exactly these."""
    return {
        tag: value for tag, value in rewrite_logs(logs or {}).items() if tag in WRITTEN_SCALARS or tag in eval_metrics
    }


def compare_layout(eval_metrics: tuple[str, ...] = ()) -> dict[str, dict[str, list]]:
    """The Custom Scalars layout (torch's form): each chart's tags as exact-match patterns."""
    chosen = {**COMPARE_CHARTS, **({EVAL_CHART: list(eval_metrics)} if eval_metrics else {})}
    charts = {title: ["Multiline", [f"^{re.escape(tag)}$" for tag in tags]] for title, tags in chosen.items()}
    return {LAYOUT_CATEGORY: charts}


def config_as_markdown(config: TrainerConfig) -> str:
    """The resolved config as YAML, indented so TensorBoard's markdown shows it as a code block."""
    yaml = OmegaConf.to_yaml(OmegaConf.structured(config))
    return "\n".join(f"    {line}" for line in yaml.splitlines())
