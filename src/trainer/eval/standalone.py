"""Scoring a run that is not training: its final model or one of its checkpoints answers the
held-out prompts as the generation eval during training would, into the same files
(evals/step-N.jsonl; a final model's metrics also into result.json). A sweep: every job's final
model, then eval_summary.csv/md at its root, one row per job, the best marked."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from omegaconf import OmegaConf

from trainer.config.load import dated, load_saved_config, to_trainer_config
from trainer.config.schema import EVAL_METRIC_PREFIX, TrainerConfig
from trainer.data.split import record_split
from trainer.errors import UserError
from trainer.eval.generation_eval import GenerationEval, held_out_prompts
from trainer.modeling.loading import load_model_and_tokenizer
from trainer.precision import plan_precision
from trainer.profiles import build_profile
from trainer.run.files import write_json_atomic
from trainer.run.layout import SAVED_CONFIG, RunDirectory, SweepDirectory
from trainer.sweep.summary import JobRow, write_summary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluatedWeights:
    """Which weights of a run are scored, and at which step they were trained."""

    path: Path
    step: int
    final: bool


def is_sweep(directory: Path) -> bool:
    """A sweep's directory holds numbered job directories and no run config of its own."""
    return not (directory / SAVED_CONFIG).is_file() and bool(SweepDirectory(directory).job_dirs())


def saved_run_config(run_dir: RunDirectory) -> TrainerConfig:
    """The config the run trained with (its .hydra/config.yaml), pointed at its directory."""
    path = run_dir.root / SAVED_CONFIG
    if not path.is_file():
        raise UserError(f"{run_dir.root} is not a run directory: it has no {SAVED_CONFIG}")
    saved = load_saved_config(path)
    # Saved as Hydra's ${hydra:runtime.output_dir}, which resolves only under Hydra.
    OmegaConf.update(saved, "run.output_dir", str(run_dir.root), force_add=True)
    return to_trainer_config(saved)


def weights_to_evaluate(run_dir: RunDirectory, checkpoint: int | None) -> EvaluatedWeights:
    if checkpoint is not None:
        path = run_dir.checkpoints_dir / f"checkpoint-{checkpoint}"
        if not path.is_dir():
            kept = sorted(item.name for item in run_dir.checkpoints_dir.glob("checkpoint-*"))
            raise UserError(
                f"--checkpoint {checkpoint}: {path} does not exist; {run_dir.root} keeps {', '.join(kept) or 'none'}"
            )
        return EvaluatedWeights(path, checkpoint, final=False)
    result = run_dir.read_result()
    if not result or not result.get("success") or not run_dir.final_model_dir.is_dir():
        raise UserError(
            f"{run_dir.root} has no final model (the run has not completed); "
            "score one of its checkpoints with --checkpoint N"
        )
    return EvaluatedWeights(run_dir.final_model_dir, result["global_step"], final=True)


def evaluate_run(root: Path, checkpoint: int | None = None) -> dict[str, float]:
    """Score one run's final model (or checkpoint-N) on its held-out prompts; the metrics."""
    run_dir = RunDirectory(root)
    # The run's own date ({date} in its system prompt), or today's for a run saved before runs recorded it.
    config = dated(saved_run_config(run_dir))
    weights = weights_to_evaluate(run_dir, checkpoint)
    with run_dir.claim_to_add():
        profile = build_profile(config.profile, config.seed)
        records = record_split(config.data, profile, config.seed)
        model_config = replace(config.model, name=weights.path.name, source="pretrained", path=str(weights.path))
        model, tokenizer, _ = load_model_and_tokenizer(model_config, plan_precision(config.precision.name).model_dtype)
        system_prompt = profile.render_system_prompt(config.data.system_prompt, date.fromisoformat(config.run.date))
        prompts = held_out_prompts(records, profile, system_prompt, tokenizer, config.eval)
        if not prompts:
            raise UserError(f"{root} has no held-out conversation with an assistant turn to score")
        evaluation = GenerationEval(prompts, profile, tokenizer, config.eval, run_dir)
        metrics = evaluation.evaluate(model, weights.step)
        if weights.final:
            record_in_result(run_dir, evaluation)
    log.info("%s (step %d): %s", weights.path, weights.step, describe(metrics))
    return metrics


def record_in_result(run_dir: RunDirectory, evaluation: GenerationEval) -> None:
    """The final model's metrics go into result.json, where sweeps rank jobs by them; earlier
    evaluations of the run stay listed, this one replacing any of the same step."""
    result = run_dir.read_result()
    assert result is not None, "checked: the run completed"
    summary = evaluation.summary()
    earlier = result["summary"].get("generation_eval", {}).get("evaluations", [])
    steps = {entry["step"] for entry in summary["generation_eval"]["evaluations"]}
    summary["generation_eval"]["evaluations"] = sorted(
        [entry for entry in earlier if entry["step"] not in steps] + summary["generation_eval"]["evaluations"],
        key=lambda entry: entry["step"],
    )
    result["summary"] |= summary
    write_json_atomic(run_dir.result_file, result)


def evaluate_sweep(root: Path, metric: str, mode: str) -> list[JobRow]:
    """Score every completed job of a sweep; eval_summary.csv/md, one row per job, best marked."""
    if not metric.startswith(EVAL_METRIC_PREFIX):
        raise UserError(f"--metric {metric}: choose a generation eval metric, eval/<name> (e.g. eval/exact_match)")
    sweep = SweepDirectory(root)
    for job_dir in sweep.job_dirs():
        if (RunDirectory(job_dir).read_result() or {}).get("success"):
            evaluate_run(job_dir)
        else:
            log.warning("%s: not scored, the job has not completed", job_dir)
    rows = write_summary(root, metric, mode, targets=(sweep.eval_summary_csv, sweep.eval_summary_md))
    if not any(name == metric for row in rows for name in row.eval_metrics):
        raise UserError(f"--metric {metric}: no job of {root} has it; they log {describe_names(rows)}")
    log.info("Eval summary: %s", sweep.eval_summary_md)
    return rows


def describe(metrics: dict[str, float]) -> str:
    return "  ".join(f"{name} {value:.3f}" for name, value in metrics.items())


def describe_names(rows: list[JobRow]) -> str:
    return ", ".join(sorted({name for row in rows for name in row.eval_metrics})) or "none"
