"""Trainer callbacks: readable log lines instead of printed dicts, and a quiet progress bar."""

from __future__ import annotations

import logging

from transformers import ProgressCallback, TrainerCallback

log = logging.getLogger("trainer.progress")

# Shown in this order, with these names and formats; anything else the Trainer logs is left out.
SHOWN_METRICS = {
    "loss": ("loss", ".4g"),
    "eval_loss": ("eval_loss", ".4g"),
    "learning_rate": ("lr", ".4g"),
    "grad_norm": ("grad_norm", ".4g"),
    "tokens_per_sec": ("tokens/s", ",.0f"),
    # objective=dpo|simpo: the share of pairs preferred as labelled, and by how much.
    "rewards/accuracies": ("accuracy", ".3g"),
    "rewards/margins": ("margin", ".3g"),
    "eval_rewards/accuracies": ("eval_accuracy", ".3g"),
    "eval_rewards/margins": ("eval_margin", ".3g"),
}


class MetricsLogCallback(TrainerCallback):
    """Log each Trainer log event as one line, so it lands in trainer.log as well as the console."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        shown = [f"{label} {logs[key]:{spec}}" for key, (label, spec) in SHOWN_METRICS.items() if key in (logs or {})]
        if state.is_world_process_zero and shown:
            log.info("step %d/%d  %s", state.global_step, state.max_steps, "  ".join(shown))


class ProgressBarCallback(ProgressCallback):
    """transformers' tqdm bar without its printed log dicts (`MetricsLogCallback` logs them)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        return None


class FinalEvaluationCallback(TrainerCallback):
    """Evaluate on the last step too, so every run ends with an eval loss for its final weights."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps and args.eval_strategy != "no":
            control.should_evaluate = True
        return control
