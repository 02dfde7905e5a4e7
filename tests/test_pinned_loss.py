"""The maths of a default run is pinned: the 12 losses a short default run logs, against stored
values. A change in the recipe, the data pipeline or a library's numerics fails here, loudly."""

from __future__ import annotations

import pytest

from tests.helpers import FAST_RUN, RUN_DATE, losses_by_step
from trainer.engine import TrainerEngine

# Logged by `python -m trainer` with FAST_RUN and train.logging_steps=1 (tiny qwen3, CPU, fp32), on
# 2026-12-01: the default system prompt says "Today is {date}.", so the run is dated that day.
PINNED_LOSSES = [
    6.095308,
    6.105360,
    5.603504,
    5.251077,
    4.972815,
    4.867937,
    4.711233,
    4.592279,
    4.522611,
    4.431377,
    4.376917,
    4.291962,
]
# Run-to-run on one machine the losses are bit-identical; this leaves room for another CPU's
# summation order, not for a changed recipe (a step of training moves the loss by far more).
TOLERANCE = 1e-4


@pytest.mark.slow
def test_a_short_default_run_logs_the_pinned_losses(make_config, tmp_path):
    config = make_config(*FAST_RUN, "train.logging_steps=1", f"run.date={RUN_DATE}")
    assert TrainerEngine().run_job(config).success
    losses = losses_by_step(tmp_path / "run")
    assert [step for step, _ in losses] == list(range(1, 13))
    assert [loss for _, loss in losses] == pytest.approx(PINNED_LOSSES, rel=TOLERANCE)
