"""`TrainerEngine`: trainer's Python API. Build a `TrainerConfig`, call `run_job`; no Hydra needed.

The harness (`trainer.run.harness`) runs the job around the recipe (`trainer.recipe`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from transformers import TrainerCallback

from trainer.config.schema import TrainerConfig
from trainer.run.harness import run_harnessed
from trainer.run.outcome import TrainingResult


class TrainerEngine:
    def __init__(self, environ: Mapping[str, str] | None = None, callbacks: Sequence[TrainerCallback] = ()) -> None:
        # Secrets (the remote preview's token) come from here, never from the config or os.environ:
        # the entrypoint passes its environment, a Python caller what it chooses.
        self.environ = environ or {}
        # Added after trainer's own callbacks (a Python caller's, a test's), before previews and stop.
        self.callbacks = tuple(callbacks)

    def run_job(self, config: TrainerConfig) -> TrainingResult:
        """Run one training job; every outcome, failures included, is returned and (once the run
        directory is this job's) written to result.json there."""
        return run_harnessed(config, self.environ, self.callbacks)
