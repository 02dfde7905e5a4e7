"""`PreviewCallback`: when previews run during training, and where their results go.

A preview is due every `preview.every_steps` steps and at the end. It runs just after the step's
log/eval/save (at the next step's start, or at the end of training): the weights are those of
the finished step and, for the remote backend, that step's checkpoint exists when one was saved.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from transformers import TrainerCallback

from trainer.preview.base import PreviewBackend, PreviewPrompt, PreviewRequest, PreviewResult
from trainer.run.layout import newest_checkpoint

log = logging.getLogger(__name__)

PreviewListener = Callable[[PreviewResult], None]


class PreviewCallback(TrainerCallback):
    def __init__(
        self,
        backend: PreviewBackend,
        prompts: list[PreviewPrompt],
        every_steps: int,
        checks: Callable[[str], dict[str, bool]],
        listeners: list[PreviewListener],
    ) -> None:
        self.backend = backend
        self.prompts = prompts
        self.every_steps = every_steps
        self.checks = checks
        # Called with every finished preview; the engine may add its own (status.json's last preview).
        # A listener with a close() method is closed at the end of training.
        self.listeners = listeners
        self.due_step: int | None = None
        self.last_submitted_step: int | None = None
        self.recorded = self.failed = 0
        # Seconds the training loop spent in previews: during the steps, and at the end.
        self.wait_during_training_sec = 0.0
        self.wait_at_end_sec = 0.0

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero and state.global_step % self.every_steps == 0:
            self.due_step = state.global_step

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero:
            return
        with self.timed("wait_during_training_sec"):
            if self.due_step is not None:
                self.submit(self.due_step, model, args.output_dir)
            self.record(self.backend.collect())

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero:
            return
        with self.timed("wait_at_end_sec"):
            # The round still running first, so the final round is never skipped as busy.
            self.record(self.backend.wait())
            if self.last_submitted_step != state.global_step:
                self.submit(state.global_step, model, args.output_dir)
            self.record(self.backend.wait())
        for listener in self.listeners:
            if close := getattr(listener, "close", None):
                close()
        if not self.recorded:
            return
        log.info(
            "Previews: %d recorded (%d failed); training waited %.3fs on them during the steps and %.3fs at the end",
            self.recorded,
            self.failed,
            self.wait_during_training_sec,
            self.wait_at_end_sec,
        )

    def submit(self, step: int, model, output_dir: str) -> None:
        self.due_step = None
        self.last_submitted_step = step
        if self.prompts:
            self.backend.submit(PreviewRequest(step, self.prompts, model, newest_checkpoint(Path(output_dir))))

    def record(self, results: list[PreviewResult]) -> None:
        for result in results:
            if result.success:
                result.checks = self.checks(result.text)
            self.recorded += 1
            self.failed += not result.success
            if not result.success:
                log.warning("Preview of step %d failed: %s", result.step, result.error_message)
            for listener in self.listeners:
                listener(result)

    def summary(self) -> dict[str, float | int]:
        return {
            "backend": self.backend.backend_type,
            "recorded": self.recorded,
            "failed": self.failed,
            "wait_during_training_sec": round(self.wait_during_training_sec, 4),
            "wait_at_end_sec": round(self.wait_at_end_sec, 4),
        }

    @contextmanager
    def timed(self, counter: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            setattr(self, counter, getattr(self, counter) + time.perf_counter() - started)
