"""Experiment trackers beside TensorBoard (the `logger` group), read back with their own clients:
MLflow through `MlflowClient`, W&B from its offline files; and the model card of final_model/."""

from __future__ import annotations

import logging
import shutil
import struct
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from wandb.proto import wandb_internal_pb2

from tests.helpers import free_port, problems_of, read_json, run_sweep
from trainer.config.schema import LoggerConfig, MlflowLoggerConfig, TrainerConfig
from trainer.engine import TrainerEngine
from trainer.errors import UserError
from trainer.monitoring.mlflow_tracker import MlflowTracker
from trainer.monitoring.model_card import card_metadata
from trainer.monitoring.trackers import flat_params, open_trackers
from trainer.run.layout import RunDirectory, SweepDirectory
from trainer.run.outcome import EXIT_USER_ERROR

TINY_RUN = ["train.max_steps=2", "train.logging_steps=1", "train.eval_steps=2", "train.save_steps=2"]


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store, its tables made once (MLflow's migrations take seconds)."""
    store = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{store}").search_experiments()
    return store


@pytest.fixture
def tracking_uri(migrated_store: Path, tmp_path: Path) -> str:
    store = tmp_path / "store" / "mlflow.db"
    store.parent.mkdir()
    shutil.copy(migrated_store, store)
    return f"sqlite:///{store}"


def tensorboard_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of a run's TensorBoard event files: tag -> (step, value) in step order."""
    events = EventAccumulator(str(RunDirectory(run_dir).tensorboard_dir))
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def mlflow_scalars(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    metrics = client.get_run(run_id).data.metrics
    return {
        key: sorted((metric.step, metric.value) for metric in client.get_metric_history(run_id, key)) for key in metrics
    }


def assert_same_scalars(mlflow: dict, tensorboard: dict) -> None:
    assert set(mlflow) == set(tensorboard)
    for tag, points in tensorboard.items():
        assert [step for step, _ in mlflow[tag]] == [step for step, _ in points], tag
        assert [value for _, value in mlflow[tag]] == pytest.approx([value for _, value in points], rel=1e-6), tag


def test_logger_group_adds_trackers_and_tensorboard_stays_on(make_config):
    default = make_config()
    assert (default.logger.mlflow, default.logger.wandb, default.monitoring.tensorboard) == (None, None, True)
    alone = make_config("logger=mlflow", "logger.mlflow.experiment=mine")
    assert (alone.logger.mlflow.experiment, alone.logger.wandb, alone.monitoring.tensorboard) == ("mine", None, True)
    both = make_config("logger=[tensorboard,mlflow,wandb]")
    assert both.logger.mlflow is not None and both.logger.wandb is not None and both.monitoring.tensorboard


def test_a_tracker_whose_package_is_missing_is_refused_before_anything_runs(make_config, monkeypatch):
    monkeypatch.setattr("trainer.config.validate.importlib.util.find_spec", lambda name: None)
    problems = problems_of(make_config("logger=[mlflow,wandb]", "logger.wandb.mode=sometimes"))
    assert "logger=mlflow needs the mlflow package: pip install 'trainer[mlflow]'" in problems
    assert "logger=wandb needs the wandb package: pip install 'trainer[wandb]'" in problems
    assert any(problem.startswith("logger.wandb.mode=sometimes is unknown") for problem in problems)


def test_wandb_online_without_an_api_key_is_refused_before_any_tracker_opens_a_run(make_config, tmp_path):
    store = tmp_path / "store" / "mlflow.db"
    config = make_config(
        "logger=[mlflow,wandb]", f"logger.mlflow.tracking_uri=sqlite:///{store}", "logger.wandb.mode=online"
    )
    with pytest.raises(UserError, match="WANDB_API_KEY"):
        open_trackers(config, RunDirectory(tmp_path / "run"), environ={})
    assert not (tmp_path / "run").exists() and not store.parent.exists()


@pytest.mark.slow
def test_an_unreachable_tracking_server_stops_the_run_before_training(run_cli, tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    run_dir = tmp_path / "run"
    completed = run_cli("logger=mlflow", f"logger.mlflow.tracking_uri={uri}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    output = completed.stdout + completed.stderr
    assert completed.returncode == EXIT_USER_ERROR, output
    refusals = [line for line in output.splitlines() if "cannot be reached" in line]
    assert len(refusals) == 1 and f"logger.mlflow.tracking_uri={uri}" in refusals[0], output
    assert "Traceback" not in output
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "final_model").exists()


@pytest.mark.long
@pytest.mark.slow
def test_a_sweep_is_one_experiment_whose_parent_run_holds_every_job_with_all_its_scalars(
    tmp_path, model_cache, tracking_uri
):
    sweep_dir = tmp_path / "sweep"
    completed = run_sweep(
        sweep_dir, model_cache, *TINY_RUN, "train.learning_rate=1e-3,3e-3", "logger=mlflow",
        f"logger.mlflow.tracking_uri={tracking_uri}",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(str(sweep_dir))
    runs = client.search_runs([experiment.experiment_id])
    parents = [run for run in runs if MLFLOW_PARENT_RUN_ID not in run.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent_artifacts = {item.path for item in client.list_artifacts(parents[0].info.run_id)}
    assert "summary.md" in parent_artifacts
    children = {run.data.tags["run_dir"]: run for run in runs if run not in parents}
    jobs = SweepDirectory(sweep_dir).job_dirs()
    assert sorted(children) == sorted(str(job) for job in jobs)
    # The resolved config's every key, the MLflow section included.
    schema_keys = set(flat_params(asdict(TrainerConfig(logger=LoggerConfig(mlflow=MlflowLoggerConfig())))))
    for job in jobs:
        child = children[str(job)]
        assert child.data.tags[MLFLOW_PARENT_RUN_ID] == parents[0].info.run_id
        assert child.info.status == "FINISHED"
        assert set(child.data.params) == schema_keys
        saved = read_json(job / "result.json")
        assert child.data.tags["profile"] == "plain" and child.data.tags["model"] == "tiny"
        assert float(child.data.params["train.learning_rate"]) in (1e-3, 3e-3)
        assert child.info.run_name.startswith(f"{job.name} train.learning_rate=")
        assert_same_scalars(mlflow_scalars(client, child.info.run_id), tensorboard_scalars(job))
        downloaded = client.download_artifacts(child.info.run_id, "result.json", str(tmp_path / f"result-{job.name}"))
        assert read_json(Path(downloaded)) == saved
    assert len({run.data.params["train.learning_rate"] for run in children.values()}) == 2


@pytest.mark.slow
def test_a_resumed_run_continues_its_mlflow_run(make_config, tmp_path, tracking_uri):
    tracked = ["logger=mlflow", f"logger.mlflow.tracking_uri={tracking_uri}", *TINY_RUN]
    first = TrainerEngine().run_job(make_config(*tracked))
    assert first.success
    run_id = read_json(tmp_path / "run" / "trackers.json")["mlflow"]["run_id"]
    resumed = TrainerEngine().run_job(make_config(*tracked, "train.max_steps=4", "run.resume=true"))
    assert resumed.success and resumed.global_step == 4
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("trainer")
    assert [run.info.run_id for run in client.search_runs([experiment.experiment_id])] == [run_id]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert [metric.step for metric in client.get_metric_history(run_id, "train/loss")] == [1, 2, 3, 4]
    assert (run.data.params["train.max_steps"], run.data.tags["resumed_with.train.max_steps"]) == ("2", "4")
    assert_same_scalars(mlflow_scalars(client, run_id), tensorboard_scalars(tmp_path / "run"))


@pytest.mark.slow
def test_a_tracker_failing_mid_run_is_a_warning_and_tensorboard_keeps_everything(
    make_config, tmp_path, tracking_uri, monkeypatch, caplog
):
    calls = []
    log_scalars = MlflowTracker.log_scalars

    def fail_from_the_second_step(self, scalars, step):
        calls.append(step)
        if step >= 2:
            raise ConnectionError("tracking server went away")
        log_scalars(self, scalars, step)

    monkeypatch.setattr(MlflowTracker, "log_scalars", fail_from_the_second_step)
    config = make_config("logger=mlflow", f"logger.mlflow.tracking_uri={tracking_uri}", *TINY_RUN, "train.max_steps=4")
    with caplog.at_level(logging.WARNING):
        result = TrainerEngine().run_job(config)
    assert result.success and result.global_step == 4
    warnings = [record.getMessage() for record in caplog.records if "MLflow failed" in record.getMessage()]
    assert len(warnings) == 1 and "tracking server went away" in warnings[0]
    assert calls == [1, 2]
    losses = tensorboard_scalars(tmp_path / "run")["train/loss"]
    assert [step for step, _ in losses] == [1, 2, 3, 4]


def wandb_records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    """The records of a W&B offline run file: a LevelDB-style log of 32 KiB blocks, each record
    split into chunks with a 7-byte header (crc, length, type: 1 full, 2 first, 3 middle, 4 last)."""
    data, block = path.read_bytes(), 32768
    assert data.startswith(b":W&B")
    position, pending = 7, b""
    while position + 7 <= len(data):
        if block - position % block < 7:
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def wandb_history_steps(run_dir: Path) -> dict[str, list[int]]:
    """Each key of a run's W&B offline history (a table's as `name/_type`, ...): the steps it was logged at."""
    (wandb_file,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    history: dict[str, list[int]] = {}
    for record in wandb_records(wandb_file):
        if record.WhichOneof("record_type") == "history":
            items = {item.key or "/".join(item.nested_key): item.value_json for item in record.history.item}
            for key in items:
                history.setdefault(key, []).append(int(items["_step"]))
    return history


@pytest.mark.slow
def test_wandb_offline_files_hold_every_scalar_and_the_final_model_has_a_loadable_card(make_config, tmp_path):
    config = make_config(
        "logger=wandb", "logger.wandb.project=tests", *TINY_RUN, "preview=local", "preview.every_steps=2",
        "preview.num_prompts=1", "preview.max_new_tokens=4",
    )  # fmt: skip
    result = TrainerEngine(environ={}).run_job(config)
    assert result.success
    run_dir = tmp_path / "run"
    history = wandb_history_steps(run_dir)
    for tag, points in tensorboard_scalars(run_dir).items():
        if not tag.startswith("hparams/"):  # the final metrics go to the run's summary
            assert history[tag] == [step for step, _ in points], tag
    assert history["previews/_type"] == [2]

    card = ModelCard.load(run_dir / "final_model" / "README.md")
    assert (card.data.library_name, card.data.pipeline_tag) == ("transformers", "text-generation")
    assert "profile-plain" in card.data.tags and card.data.datasets
    assert f"| train loss | {result.final_loss:.4f} |" in card.text
    assert "trainer 0.1.0" in card.text and "## Full configuration" in card.text


@pytest.mark.slow
def test_every_tracker_gets_the_generation_eval_metrics_at_each_evaluation_and_its_answers(
    make_config, tmp_path, tracking_uri
):
    config = make_config(
        "logger=[mlflow,wandb]", f"logger.mlflow.tracking_uri={tracking_uri}", "logger.wandb.project=tests",
        *TINY_RUN, "train.max_steps=4", "eval.enabled=true", "eval.max_samples=2", "eval.max_new_tokens=4",
    )  # fmt: skip
    result = TrainerEngine(environ={}).run_job(config)
    assert result.success
    run_dir = RunDirectory(tmp_path / "run")
    tensorboard = tensorboard_scalars(run_dir.root)
    eval_steps = [step for step, _ in tensorboard["eval/exact_match"]]
    # MLflow: TensorBoard's every scalar, eval/<metric> at each evaluation, and each evaluation's answers file.
    client = MlflowClient(tracking_uri=tracking_uri)
    run_id = read_json(run_dir.trackers_file)["mlflow"]["run_id"]
    assert_same_scalars(mlflow_scalars(client, run_id), tensorboard)
    for step in eval_steps:
        answers = run_dir.eval_answers_file(step)
        artifact = answers.relative_to(run_dir.root).as_posix()
        downloaded = Path(client.download_artifacts(run_id, artifact, str(tmp_path / f"artifacts-{step}")))
        assert downloaded.read_text() == answers.read_text()
    # W&B: the same eval/<metric> steps, and an answers table logged at each evaluation.
    history = wandb_history_steps(run_dir.root)
    for tag, points in tensorboard.items():
        if not tag.startswith("hparams/"):
            assert history[tag] == [step for step, _ in points], tag
    assert history["eval_answers/_type"] == eval_steps


def test_the_card_names_a_hub_base_model_but_not_a_local_directory(make_config, tmp_path):
    hub = card_metadata(make_config("model=qwen3-0.6b", "model.path=Qwen/Qwen3-0.6B", "peft=lora"))
    assert (hub.base_model, hub.library_name) == ("Qwen/Qwen3-0.6B", "peft")
    local = card_metadata(make_config("model=qwen3-0.6b", f"model.path={tmp_path}"))
    assert (local.base_model, local.library_name) == (None, "transformers")
