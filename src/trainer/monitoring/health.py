"""Is the run healthy? Throughput, loss trend and the alerts, as plain functions of numbers."""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence

import numpy

from trainer.config.schema import MIN_TREND_POINTS
from trainer.run.status import Alert

# Below this relative change of the loss across the window, the loss counts as stable.
STABLE_TOLERANCE = 0.02
# A parabola fits any 3 points exactly: noise around one shows from 5 points on.
MIN_NOISE_POINTS = 5


class NonFiniteLossError(Exception):
    """The training loss became NaN or infinite: training stops before the optimizer applies it."""

    error_type = "nan_loss"

    def __init__(self, step: int, loss: float) -> None:
        self.alert = Alert(self.error_type, f"the loss of step {step} is {loss}")
        self.step = step
        super().__init__(
            f"Training stopped: {self.alert.message}; nothing of that step was applied. "
            "Lower train.learning_rate, check the data, or use precision=bf16 instead of fp16."
        )


class ThroughputMeter:
    """Real tokens per second and seconds per step over the last `window_steps` steps. Pauses
    (evaluation, checkpointing) are left out by restarting the window after them."""

    def __init__(self, window_steps: int) -> None:
        self.samples: deque[tuple[float, int]] = deque(maxlen=window_steps + 1)

    def record(self, now: float, tokens_seen: int) -> None:
        self.samples.append((now, tokens_seen))

    def restart(self, now: float, tokens_seen: int) -> None:
        self.samples.clear()
        self.record(now, tokens_seen)

    @property
    def full(self) -> bool:
        return len(self.samples) == self.samples.maxlen

    def tokens_per_sec(self) -> float | None:
        if (elapsed := self.elapsed()) is None:
            return None
        return (self.samples[-1][1] - self.samples[0][1]) / elapsed

    def sec_per_step(self) -> float | None:
        if (elapsed := self.elapsed()) is None:
            return None
        return elapsed / (len(self.samples) - 1)

    def elapsed(self) -> float | None:
        if len(self.samples) < 2 or self.samples[-1][0] <= self.samples[0][0]:
            return None
        return self.samples[-1][0] - self.samples[0][0]


def loss_trend(losses: Sequence[float]) -> str | None:
    """improving | rising | stable: the least-squares change of the loss across the window,
    relative to its mean."""
    if len(losses) < MIN_TREND_POINTS or (mean := statistics.fmean(losses)) <= 0:
        return None
    slope, _ = statistics.linear_regression(range(len(losses)), losses)
    change = slope * (len(losses) - 1) / mean
    if change < -STABLE_TOLERANCE:
        return "improving"
    return "rising" if change > STABLE_TOLERANCE else "stable"


def loss_noise(losses: Sequence[float]) -> float | None:
    """The spread of the losses around their trend, relative to their mean: a falling loss is not
    noisy, one that jumps up and down is. The trend is a parabola, since a loss falls fast and
    then levels off: a straight line would call that bend noise."""
    if len(losses) < MIN_NOISE_POINTS or (mean := statistics.fmean(losses)) <= 0:
        return None
    steps = numpy.arange(len(losses))
    residuals = numpy.asarray(losses) - numpy.polyval(numpy.polyfit(steps, losses, deg=2), steps)
    return float(numpy.sqrt(numpy.mean(residuals**2))) / mean


def throughput_drop_alert(current: float, best: float, drop: float) -> Alert | None:
    if best <= 0 or current >= best * (1 - drop):
        return None
    return Alert(
        "throughput_drop",
        f"{current:,.0f} tokens/s is {1 - current / best:.0%} below this run's best of {best:,.0f} tokens/s",
    )


def train_val_gap_alert(train_loss: float, validation_loss: float, gap: float) -> Alert | None:
    if train_loss <= 0 or validation_loss <= train_loss * (1 + gap):
        return None
    return Alert(
        "train_val_gap",
        f"validation loss {validation_loss:.4g} is {validation_loss / train_loss - 1:.0%} above "
        f"the train loss {train_loss:.4g}: the model may be overfitting",
    )


def loss_noise_alert(losses: Sequence[float], limit: float) -> Alert | None:
    if (noise := loss_noise(losses)) is None or noise <= limit:
        return None
    return Alert(
        "loss_noise",
        f"the loss swings {noise:.0%} around its trend over the last {len(losses)} logged steps: "
        "the learning rate may be too high or the batch too small",
    )
