"""Previews (SPEC §8): the model's answers to held-out prompts while it trains, beside the golden
answers. A new backend is one module here, one line in `BACKENDS`, one YAML file in conf/preview/."""

from __future__ import annotations

from collections.abc import Mapping

from transformers import PreTrainedTokenizerBase

from trainer.config.schema import PreviewConfig, TrainerConfig
from trainer.data.split import RecordSplit
from trainer.preview.base import PreviewBackend
from trainer.preview.callback import PreviewCallback
from trainer.preview.local import LocalPreviewBackend
from trainer.preview.none import NoPreviewBackend
from trainer.preview.prompts import select_prompts
from trainer.preview.recording import PreviewLog, PreviewTensorBoardText
from trainer.preview.remote import RemotePreviewBackend, read_token
from trainer.profiles.base import Profile
from trainer.run.layout import RunDirectory


def build_preview_backend(
    config: PreviewConfig, tokenizer: PreTrainedTokenizerBase, profile: Profile, seed: int, token: str | None
) -> PreviewBackend:
    """The backend named by `preview.backend`."""
    if config.backend == "local":
        return LocalPreviewBackend(config, tokenizer, profile.build_logits_processors(tokenizer), seed)
    if config.backend == "remote":
        return RemotePreviewBackend(config, token)
    return NoPreviewBackend()


def build_preview_callback(
    config: TrainerConfig,
    run_dir: RunDirectory,
    profile: Profile,
    records: RecordSplit,
    system_prompt: str,
    tokenizer: PreTrainedTokenizerBase,
    token: str | None = None,
    start_step: int | None = None,
) -> PreviewCallback:
    """Previews of the validation records (the training records when there is no validation
    set), recorded to previews.jsonl and, with monitoring.tensorboard, TensorBoard text."""
    preview = config.preview
    prompts = select_prompts(
        records.validation or records.train, profile, system_prompt, tokenizer, preview.num_prompts, config.seed
    )
    listeners = [PreviewLog(run_dir.previews_file, start_step)]
    if config.monitoring.tensorboard:
        listeners.append(PreviewTensorBoardText(run_dir.preview_tensorboard_dir, start_step))
    backend = build_preview_backend(preview, tokenizer, profile, config.seed, token)
    return PreviewCallback(backend, prompts, preview.every_steps, profile.preview_checks, listeners)


def read_preview_token(config: PreviewConfig, environ: Mapping[str, str]) -> str | None:
    """The remote server's bearer token, when the remote backend names a variable for it."""
    return read_token(config.remote, environ) if config.backend == "remote" else None
