"""The profiles inside a run: what the model trains on, and `python -m trainer profile=...`."""

from __future__ import annotations

import json
from datetime import date

import pytest
from transformers import AutoTokenizer

from trainer.config.schema import ModelConfig
from trainer.data.cache_entry import tokenize_split
from trainer.data.split import load_record_split
from trainer.data.tokenization import IGNORE_INDEX
from trainer.modeling.tiny import tiny_model_dir
from trainer.profiles import build_profile
from trainer.profiles.emoji_think import choose_emojis

RECORDS = [
    {"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "The answer is 4."}]},
    {"messages": [{"role": "user", "content": "(add 2 3)?"}, {"role": "assistant", "content": "(add 2 3) = 5"}]},
]


def tokenized_train_set(make_config, model_cache, tmp_path, profile_name: str):
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in RECORDS))
    config = make_config(f"profile={profile_name}", f"data.train={data}", f"data.validation={data}")
    profile = build_profile(config.profile, config.seed)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir(ModelConfig(cache_dir=str(model_cache))))
    records = load_record_split(config.data, profile, config.seed)
    system_prompt = profile.render_system_prompt(config.data.system_prompt, date.fromisoformat(config.run.date))
    return tokenize_split(records, profile, system_prompt, tokenizer, config.data.max_length).train, tokenizer


def learned_and_full_text(dataset, tokenizer, row: int) -> tuple[str, str]:
    labels = [label for label in dataset[row]["labels"] if label != IGNORE_INDEX]
    return tokenizer.decode(labels), tokenizer.decode(dataset[row]["input_ids"])


def test_emoji_think_trains_on_the_emoji_runs_around_each_answer(make_config, model_cache, tmp_path):
    dataset, tokenizer = tokenized_train_set(make_config, model_cache, tmp_path, "emoji_think")
    choice = choose_emojis(42, 0, 1.0)
    learned, full = learned_and_full_text(dataset, tokenizer, row=0)
    assert learned == f"{choice.emoji * choice.count}\nThe answer is 4.\n{choice.stop * choice.stop_count}<|im_end|>"
    assert choice.think_instruction + choice.stop_instruction + "<|im_end|>" in full


def test_regime3_trains_on_answers_between_markers(make_config, model_cache, tmp_path):
    dataset, tokenizer = tokenized_train_set(make_config, model_cache, tmp_path, "regime3")
    learned, full = learned_and_full_text(dataset, tokenizer, row=1)
    assert learned == "<<ANS_START>> (add 2 3) = 5 <<ANS_END>><|im_end|>"
    assert "canonical form: (op arg1 arg2)" in full


@pytest.mark.long
@pytest.mark.slow
def test_a_sweep_over_both_profiles_completes_and_records_each(run_cli, tmp_path):
    """One process for both runs, as `--multirun profile=emoji_think,regime3` (hydra.mode=MULTIRUN), to pay start-up once."""
    sweep_dir = tmp_path / "sweep"
    completed = run_cli(
        "hydra.mode=MULTIRUN",
        "profile=emoji_think,regime3",
        "train.max_steps=2",
        "train.per_device_train_batch_size=4",
        "train.logging_steps=1",
        "train.save_steps=100",
        "data.validation_max_samples=4",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    for job, name in enumerate(["emoji_think", "regime3"]):
        result = json.loads((sweep_dir / str(job) / "result.json").read_text())
        assert (result["success"], result["global_step"]) == (True, 2), result
        assert result["summary"]["profile"] == {"name": name, "version": "1"}
