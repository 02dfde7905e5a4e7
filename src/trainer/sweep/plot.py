"""summary.png: the train-loss curves of every job of a sweep on one plot, read back from the
TensorBoard event files (the same numbers TensorBoard shows)."""

from __future__ import annotations

import logging
from pathlib import Path

from trainer.run.layout import RunDirectory
from trainer.sweep.summary import JobRow

LOSS_TAG = "train/loss"


def loss_curve(tensorboard_dir: Path) -> tuple[list[int], list[float]]:
    if not tensorboard_dir.is_dir():  # a job refused before it logged (e.g. its config): no curve
        return [], []
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # Its reader logs each event file it moves to ("Directory watcher advancing ...") at INFO,
    # which would land on the sweep's console.
    logging.getLogger("tensorboard").setLevel(logging.WARNING)

    events = EventAccumulator(str(tensorboard_dir), size_guidance={"scalars": 0})
    events.Reload()
    if LOSS_TAG not in events.Tags().get("scalars", []):
        return [], []
    scalars = events.Scalars(LOSS_TAG)
    return [event.step for event in scalars], [event.value for event in scalars]


def plot_loss_curves(rows: list[JobRow], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(8, 5))
    for row in rows:
        steps, losses = loss_curve(RunDirectory(Path(row.run_dir)).tensorboard_dir)
        if steps:
            label = f"{row.job}{' ★' if row.best else ''}: {row.overrides or 'defaults'}"
            axes.plot(steps, losses, label=label, linewidth=2.5 if row.best else 1.2)
    axes.set(xlabel="step", ylabel="train loss", title="Sweep: train loss per job")
    axes.grid(alpha=0.3)
    if axes.lines:
        axes.legend(fontsize="small")
    staging = target.with_name(f".{target.name}.tmp.png")
    figure.savefig(staging, dpi=100)
    pyplot.close(figure)
    staging.replace(target)
