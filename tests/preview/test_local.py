"""preview=local: real tiny runs; previews are recorded and leave training exactly as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import PREVIEW_RUN, read_previews
from trainer.data.loading import SAMPLE_DATA
from trainer.engine import TrainerEngine
from trainer.run.layout import RunDirectory

pytestmark = pytest.mark.slow


def test_local_previews_are_written_to_previews_jsonl_and_tensorboard(make_config):
    config = make_config("preview=local", "profile=regime3", *PREVIEW_RUN)
    result = TrainerEngine().run_job(config)
    run_dir = Path(config.run.output_dir)

    assert result.success, result.error_message
    previews = read_previews(run_dir)
    assert [(preview["step"], preview["success"]) for preview in previews] == [(2, True)] * 2 + [(4, True)] * 2
    assert {preview["backend_type"] for preview in previews} == {"local"}
    assert all(preview["prompt"].endswith("<|im_start|>assistant\n") for preview in previews)
    assert all("<<ANS_START>>" in preview["golden_answer"] for preview in previews)
    assert all(set(preview["checks"]) == {"well_formed_answer"} for preview in previews)
    events = EventAccumulator(str(RunDirectory(run_dir).preview_tensorboard_dir))
    events.Reload()
    texts = {tag: [event.step for event in events.Tensors(tag)] for tag in events.Tags()["tensors"]}
    assert len(texts) == 2 and all(steps == [2, 4] for steps in texts.values())
    assert result.summary["previews"]["recorded"] == 4


def test_local_previews_report_the_profile_processor_stats(make_config):
    config = make_config("preview=local", "profile=emoji_think", *PREVIEW_RUN, "train.max_steps=2")
    assert TrainerEngine().run_job(config).success
    stats = read_previews(Path(config.run.output_dir))[0]["processor_stats"]
    assert set(stats) == {"ThinkPenaltyProcessor", "PostStopPenaltyProcessor"}
    assert set(stats["PostStopPenaltyProcessor"]) == {"hits", "stop_seen", "tokens_after_stop"}


def test_previews_leave_training_loss_and_weights_unchanged(make_config, tmp_path):
    """Sampled previews (temperature > 0) draw random numbers, and the second epoch's shuffle
    draws from the global RNG after them: only a forked RNG keeps both runs identical."""
    records = SAMPLE_DATA.read_text().splitlines()[:12]
    (data := tmp_path / "small.jsonl").write_text("\n".join(records) + "\n")
    runs = {}
    for backend in ("none", "local"):
        config = make_config(
            f"preview={backend}", "preview.temperature=0.9", *PREVIEW_RUN, f"data.train={data}", "train.max_steps=6"
        )
        config.run.output_dir = str(tmp_path / backend)
        result = TrainerEngine().run_job(config)
        assert result.success, result.error_message
        weights = load_file(str(tmp_path / backend / "final_model" / "model.safetensors"))
        runs[backend] = (result.final_loss, result.eval_loss, weights)

    assert (tmp_path / "local" / "previews.jsonl").is_file()
    assert not (tmp_path / "none" / "previews.jsonl").exists()
    (loss_off, eval_off, weights_off), (loss_on, eval_on, weights_on) = runs["none"], runs["local"]
    assert (loss_on, eval_on) == (loss_off, eval_off)
    assert weights_on.keys() == weights_off.keys()
    assert all(torch.equal(weights_on[name], weights_off[name]) for name in weights_off)
