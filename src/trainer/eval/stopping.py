"""Early stopping (train.early_stopping): transformers' own callback, which also remembers the
step it stopped the run at, so the result can say the run stopped early (a success)."""

from __future__ import annotations

import logging

from transformers import EarlyStoppingCallback

from trainer.config.schema import EarlyStoppingConfig

log = logging.getLogger(__name__)


class RunEarlyStopping(EarlyStoppingCallback):
    def __init__(self, config: EarlyStoppingConfig) -> None:
        super().__init__(early_stopping_patience=config.patience, early_stopping_threshold=config.threshold)
        self.metric = config.metric
        self.stopped_at_step: int | None = None

    def on_evaluate(self, args, state, control, metrics, **kwargs):
        super().on_evaluate(args, state, control, metrics, **kwargs)
        if control.should_training_stop and self.stopped_at_step is None and state.global_step < state.max_steps:
            self.stopped_at_step = state.global_step
            log.info(
                "Stopping early at step %d: %s has not improved on its best (%.4g at step %s) for %d evaluations",
                state.global_step,
                self.metric,
                state.best_metric,
                state.best_global_step,
                self.early_stopping_patience_counter,
            )
