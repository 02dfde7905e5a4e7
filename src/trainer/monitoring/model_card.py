"""final_model/README.md: a Hugging Face model card, so a trained model that leaves the project says
what it is: YAML metadata the Hub reads, then the profile, the data, the hyper-parameters, the final
and best metrics, the trainer version and the command that trains it again."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from huggingface_hub import ModelCard, ModelCardData
from omegaconf import OmegaConf

from trainer.config.schema import TrainerConfig
from trainer.config.sources import data_sources, source_name
from trainer.config.validate import looks_like_local_path
from trainer.monitoring.environment import package_version, source_git_commit
from trainer.monitoring.hparams import reported_hparams
from trainer.run.layout import RunDirectory
from trainer.run.outcome import TrainingResult
from trainer.run.overrides import job_overrides


def write_model_card(
    run_dir: RunDirectory,
    config: TrainerConfig,
    result: TrainingResult,
    data_stats: dict[str, int],
    history: Sequence[dict[str, Any]],
) -> None:
    """The card of a completed run; `history` is the Trainer's log history (its best losses)."""
    body = card_body(run_dir, config, data_stats, results=metric_rows(result, history))
    ModelCard(f"---\n{card_metadata(config).to_yaml()}\n---\n\n{body}").save(run_dir.model_card)


def card_metadata(config: TrainerConfig) -> ModelCardData:
    """The Hub's metadata: a base model only where it is a Hub id (a local directory means nothing
    there), the data as given, PEFT as the library of an adapter."""
    model = config.model
    base_model = model.path if model.source == "pretrained" and not looks_like_local_path(model.path) else None
    return ModelCardData(
        base_model=base_model,
        datasets=[
            source.path or "trainer sample data (arithmetic chats)"
            for source in data_sources(config.data.train, "data.train")
        ],
        library_name="transformers" if config.peft.method == "none" else "peft",
        pipeline_tag="text-generation",
        tags=["trainer", "sft", f"profile-{config.profile.name}", config.precision.name],
    )


def card_body(
    run_dir: RunDirectory, config: TrainerConfig, data_stats: dict[str, int], results: list[list[str]]
) -> str:
    model = config.model
    origin = model.path if model.source == "pretrained" else f"a tiny {model.architecture} built from scratch"
    adapter = "" if config.peft.method == "none" else f", as a {config.peft.method} adapter (r={config.peft.r})"
    sections = [
        f"# {model.name} fine-tuned with trainer ({config.profile.name})",
        f"Supervised fine-tuning of {origin}{adapter}, with the `{config.profile.name}` data profile, "
        f"in {config.precision.name}. Run directory: `{run_dir.root.absolute()}`.",
        "## Data\n\n"
        + table(
            ["", "value"],
            [["training data", source_name(config.data.train, "data.train")]]
            # A mixture's per-source counts (a list) are in result.json.
            + [[name.replace("_", " "), f"{value:,}"] for name, value in data_stats.items() if isinstance(value, int)],
        ),
        "## Hyper-parameters\n\n"
        + table(["", "value"], [[item.name, str(item.value)] for item in reported_hparams(config)]),
        "## Results\n\n" + table(["metric", "final", "best (step)"], results),
        "## Reproduce\n\n" + reproduce_section(run_dir),
        "## Full configuration\n\n```yaml\n" + OmegaConf.to_yaml(OmegaConf.structured(config)) + "```",
    ]
    return "\n\n".join(sections) + "\n"


def metric_rows(result: TrainingResult, history: Sequence[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for label, key, final in (("train loss", "loss", result.final_loss), ("eval loss", "eval_loss", result.eval_loss)):
        logged = [(entry[key], entry["step"]) for entry in history if key in entry and "step" in entry]
        best = f"{min(logged)[0]:.4f} ({min(logged)[1]})" if logged else "n/a"
        rows.append([label, "n/a" if final is None else f"{final:.4f}", best])
    tokens_per_sec = result.summary.get("tokens_per_sec")
    rows.append(["steps", str(result.global_step), ""])
    rows.append(["tokens/s", "n/a" if tokens_per_sec is None else f"{tokens_per_sec:,.0f}", ""])
    return rows


def reproduce_section(run_dir: RunDirectory) -> str:
    commit = source_git_commit()
    version = f"trainer {package_version('trainer')}" + (f" (git commit {commit})" if commit else "")
    if not (run_dir.root / ".hydra").is_dir():
        return f"Trained with {version}, started from Python (`TrainerEngine.run_job`) with the configuration below."
    command = shlex.join(["python", "-m", "trainer", *job_overrides(run_dir.root)])
    return f"Trained with {version}. The same run, on the same data:\n\n```bash\n{command}\n```"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines)
