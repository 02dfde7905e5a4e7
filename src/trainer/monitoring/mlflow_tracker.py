"""MLflow: one MLflow run per run directory, through `MlflowClient` (no process-wide active run, so
the jobs of a sweep in one process never share one). A sweep is an experiment whose parent run
holds its jobs as child runs; a resume continues the run whose id trackers.json keeps."""

from __future__ import annotations

import fcntl
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from mlflow.utils.validation import MAX_PARAMS_TAGS_PER_BATCH

from trainer.config.schema import MlflowLoggerConfig
from trainer.errors import UserError, first_line
from trainer.eval.generation_eval import answers_as_jsonl
from trainer.monitoring.trackers import TrackedRun, Tracker
from trainer.preview.base import PreviewResult
from trainer.preview.recording import describe
from trainer.run.files import read_json, write_json_atomic
from trainer.run.layout import RunDirectory, SweepDirectory
from trainer.run.outcome import INTERRUPTED, TrainingResult

log = logging.getLogger(__name__)

KEY = "logger.mlflow.tracking_uri"
DEFAULT_STORE = "mlflow.db"
DEFAULT_EXPERIMENT = "trainer"
SQLITE = "sqlite:///"
# Seconds to wait for a tracking server's answer before the run is refused.
REACH_TIMEOUT_SEC = 5.0


class MlflowTracker(Tracker):
    name = "MLflow"

    def __init__(self, client: MlflowClient, run_id: str, run_dir: RunDirectory) -> None:
        self.client = client
        self.run_id = run_id
        self.run_dir = run_dir

    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id, metrics=[Metric(tag, float(value), now, step) for tag, value in scalars.items()]
        )

    def log_preview(self, result: PreviewResult) -> None:
        path = f"previews/step_{result.step:06d}_prompt_{result.prompt_index}.md"
        self.client.log_text(self.run_id, describe(result), path)

    def log_eval_answers(self, step: int, rows: list[dict[str, Any]]) -> None:
        """The answers file, under the same path as in the run directory (evals/step-N.jsonl)."""
        path = self.run_dir.eval_answers_file(step).relative_to(self.run_dir.root).as_posix()
        self.client.log_text(self.run_id, answers_as_jsonl(rows), path)

    def finish(self, result: TrainingResult, metrics: dict[str, float]) -> None:
        self.log_scalars(metrics, result.global_step)
        self.client.log_dict(self.run_id, result.to_dict(), "result.json")
        self.client.set_terminated(self.run_id, RunStatus.to_string(run_status(result)))


def run_status(result: TrainingResult) -> int:
    if result.success:
        return RunStatus.FINISHED
    return RunStatus.KILLED if result.error_type == INTERRUPTED else RunStatus.FAILED


def open_mlflow(config: MlflowLoggerConfig, run: TrackedRun) -> MlflowTracker:
    """The run's MLflow run: the one its first start created (trackers.json keeps its id; a new run
    has none) when it is in the same store, else a new one (a child of its sweep's parent run)."""
    uri = config.tracking_uri or default_tracking_uri(run)
    check_reachable(uri)
    client = MlflowClient(tracking_uri=uri)
    try:
        ids = run.read_ids("mlflow")
        if ids.get("tracking_uri") == uri:
            run_id = continue_run(client, ids["run_id"], run.params)
        else:
            run_id = create_run(client, config, run, uri)
            run.keep_ids("mlflow", {"tracking_uri": uri, "run_id": run_id})
    except MlflowException as error:
        raise UserError(f"{KEY}={uri}: MLflow refused the run: {first_line(error)}") from error
    experiment = client.get_experiment(client.get_run(run_id).info.experiment_id).name
    log.info("MLflow: run %s in experiment '%s' at %s (%s)", run_id, experiment, uri, viewer_hint(uri))
    return MlflowTracker(client, run_id, run.run_dir)


def default_tracking_uri(run: TrackedRun) -> str:
    """A SQLite store beside the date directories of the runs: outputs/DATE/TIME -> outputs/,
    multirun/DATE/TIME/N -> multirun/, so one store holds every run of that tree."""
    dated = run.sweep_dir or run.run_dir.root.absolute()
    return f"{SQLITE}{dated.parent.parent / DEFAULT_STORE}"


def viewer_hint(uri: str) -> str:
    if uri.startswith(SQLITE):
        return f"mlflow ui --backend-store-uri {uri}"
    return "its web UI" if uri.startswith(("http://", "https://")) else "the MLflow UI"


def check_reachable(uri: str) -> None:
    """A tracking server answers (any HTTP status) within seconds; a SQLite store's directory can be
    made. MLflow itself would retry a dead server for minutes at the first log call."""
    if uri.startswith(SQLITE):
        store_dir = Path(uri.removeprefix(SQLITE)).parent
        try:
            store_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(f"{KEY}={uri}: cannot create {store_dir}: {error.strerror}") from error
    elif uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=REACH_TIMEOUT_SEC):
                pass
        except urllib.error.HTTPError:
            pass  # it answered: what it thinks of the request shows at the first call
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise UserError(
                f"{KEY}={uri} cannot be reached ({reason}); start the tracking server, or give another URI "
                "(null: a local SQLite store beside the runs)"
            ) from error


def create_run(client: MlflowClient, config: MlflowLoggerConfig, run: TrackedRun, uri: str) -> str:
    tags = dict(run.tags)
    if run.sweep_dir is not None:
        experiment_id, tags[MLFLOW_PARENT_RUN_ID] = sweep_parent_run(client, config, run.sweep_dir, uri)
    else:
        experiment_id = ensure_experiment(client, config.experiment or DEFAULT_EXPERIMENT, uri)
    run_id = client.create_run(experiment_id, run_name=run.name, tags=tags).info.run_id
    log_params(client, run_id, run.params)
    return run_id


def continue_run(client: MlflowClient, run_id: str, params: dict[str, str]) -> str:
    """The run's MLflow run, running again. MLflow never changes a parameter once logged: a value
    the resume changed (train.max_steps, ...) is recorded as a `resumed_with.KEY` tag."""
    client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
    logged = client.get_run(run_id).data.params
    log_params(client, run_id, {key: value for key, value in params.items() if key not in logged})
    changed = [RunTag(f"resumed_with.{key}", value) for key, value in params.items() if logged.get(key, value) != value]
    if changed:
        client.log_batch(run_id, tags=changed)
    return run_id


def log_params(client: MlflowClient, run_id: str, params: dict[str, str]) -> None:
    items = [Param(key, value) for key, value in params.items()]
    for start in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=items[start : start + MAX_PARAMS_TAGS_PER_BATCH])


def sweep_parent_run(client: MlflowClient, config: MlflowLoggerConfig, sweep_dir: Path, uri: str) -> tuple[str, str]:
    """The sweep's experiment and parent run: created by its first job, under a lock in the sweep
    directory so that jobs running side by side make one, and recorded there for the others (and for
    a resumed sweep)."""
    sweep = SweepDirectory(sweep_dir)
    with locked(sweep.root / f".{sweep.mlflow_parent_file.name}.lock"):
        recorded = read_json(sweep.mlflow_parent_file) or {}
        if recorded.get("tracking_uri") == uri:
            return recorded["experiment_id"], recorded["run_id"]
        experiment_id = ensure_experiment(client, config.experiment or str(sweep.root), uri)
        tags = {"sweep_dir": str(sweep.root)}
        parent = client.create_run(experiment_id, run_name=f"sweep {sweep.root.name}", tags=tags).info.run_id
        write_json_atomic(
            sweep.mlflow_parent_file, {"tracking_uri": uri, "experiment_id": experiment_id, "run_id": parent}
        )
        log.info("MLflow: sweep parent run %s created in experiment '%s'", parent, config.experiment or sweep.root)
        return experiment_id, parent


def finish_sweep_parent(sweep_dir: Path, summary_files: list[Path]) -> None:
    """At the end of a sweep: its summary attached to the parent run, which is marked finished."""
    sweep = SweepDirectory(sweep_dir)
    recorded = read_json(sweep.mlflow_parent_file)
    if recorded is None:
        return
    client = MlflowClient(tracking_uri=recorded["tracking_uri"])
    try:
        for path in summary_files:
            if path.is_file():
                client.log_artifact(recorded["run_id"], str(path))
        client.set_terminated(recorded["run_id"])
    except MlflowException as error:
        log.warning("MLflow: the sweep's parent run could not be finished: %s", first_line(error))


def ensure_experiment(client: MlflowClient, name: str, uri: str) -> str:
    """The experiment's id, created when missing (another process may create it at the same time).
    In a local SQLite store its artifacts go beside the store, not into the working directory."""
    if (experiment := client.get_experiment_by_name(name)) is not None:
        return experiment.experiment_id
    location = None
    if uri.startswith(SQLITE):
        slug = re.sub(r"[^\w.-]+", "_", name).strip("_") or "experiment"
        location = (Path(uri.removeprefix(SQLITE)).parent / "mlartifacts" / slug).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        if (experiment := client.get_experiment_by_name(name)) is not None:
            return experiment.experiment_id
        raise


@contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
