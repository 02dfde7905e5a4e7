"""Each popular family's own chat template trains end to end, with model.chat_template=tokenizer
and with auto; a template that refuses is one line and exit status 2, found before the model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

import trainer.modeling.loading
from tests.template_families import FAMILIES, pretrained_dir
from trainer.config.schema import ModelConfig
from trainer.engine import TrainerEngine
from trainer.modeling.chat_template import CHATML_TEMPLATE
from trainer.modeling.template_layout import TemplateError
from trainer.run.outcome import EXIT_USER_ERROR

FEW_STEPS = [
    "train.max_steps=2", "train.per_device_train_batch_size=4", "train.logging_steps=1",
    "train.eval_steps=2", "train.save_steps=2", "monitoring.tensorboard=false", "data.max_length=256",
]  # fmt: skip
THINKING = ("qwen3", "deepseek-r1")
RAISING = "{{ raise_exception('This template only renders tool calls') }}"


def multi_turn_records(count: int) -> list[dict]:
    """Multi-turn chats, every other one with its own system prompt (profiles replace it)."""
    records = []
    for index in range(count):
        messages = [{"role": "system", "content": "Answer briefly."}] if index % 2 else []
        for turn in range(1 + index % 3):
            messages += [
                {"role": "user", "content": f"What is {index} plus {turn}?"},
                {"role": "assistant", "content": f"{index} + {turn} = {index + turn} ✓"},
            ]
        records.append({"messages": messages})
    return records


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def chats(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("chats") / "chats.jsonl", multi_turn_records(24))


@pytest.mark.parametrize("mode", ["tokenizer", "auto"])
@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_trains_with_its_template(make_config, tmp_path, chats, family, mode):
    model_dir = pretrained_dir(tmp_path / "model", family)
    own = AutoTokenizer.from_pretrained(model_dir).chat_template
    config = make_config(
        "model.source=pretrained", "model.architecture=llama", f"model.path={model_dir}",
        f"model.chat_template={mode}", f"data.train={chats}", *FEW_STEPS,
    )  # fmt: skip
    result = TrainerEngine().run_job(config)
    assert result.success, result.error_message
    assert result.global_step == 2
    assert result.summary["train_examples"] > 0
    expected = CHATML_TEMPLATE if mode == "auto" and family in THINKING else own
    assert AutoTokenizer.from_pretrained(result.final_model_path).chat_template == expected


def test_a_refusing_template_is_one_line_and_exit_2_before_the_model_loads(run_cli, tmp_path, chats):
    model_dir = pretrained_dir(tmp_path / "model", "phi-3.5", template=RAISING)
    completed = run_cli(
        "model.source=pretrained", "model.architecture=llama", f"model.path={model_dir}",
        "model.chat_template=tokenizer", f"data.train={chats}", f"run.output_dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )  # fmt: skip
    output = completed.stdout + completed.stderr
    assert completed.returncode == EXIT_USER_ERROR, output
    assert "Traceback" not in output
    assert "Parameters:" not in output  # logged once the model has loaded
    refusal = [line for line in output.splitlines() if "refuses" in line]
    assert len(refusal) == 1
    assert refusal[0].endswith(
        'the chat template "{{ raise_exception(\'This template only renders tool calls..." refuses a plain '
        "conversation (This template only renders tool calls); change model.chat_template (auto|chatml|tokenizer)"
    )


def test_a_conversation_the_template_refuses_names_its_record(make_config, tmp_path):
    model_dir = pretrained_dir(tmp_path / "model", "gemma-2")
    records = multi_turn_records(12)
    records[5]["messages"].insert(-1, {"role": "user", "content": "Two user turns in a row"})
    data = write_jsonl(tmp_path / "chats.jsonl", records)
    config = make_config(
        "model.source=pretrained", "model.architecture=llama", f"model.path={model_dir}",
        f"data.train={data}", "data.validation_split=0.2", *FEW_STEPS,
    )  # fmt: skip
    result = TrainerEngine().run_job(config)
    assert not result.success and result.user_error
    assert result.error_message == (
        f"{data}:6 (example 5): the Gemma chat template refuses this conversation (Conversation roles must "
        "alternate user/assistant/user/assistant/...); change model.chat_template (auto|chatml|tokenizer)"
    )


def test_a_refusing_template_stops_loading_before_the_weights_are_read(tmp_path, monkeypatch):
    model_dir = pretrained_dir(tmp_path / "model", "phi-3.5", template=RAISING)

    def weights_read(*args, **kwargs):
        raise AssertionError("the model's weights were read before its template was checked")

    monkeypatch.setattr(trainer.modeling.loading.AutoModelForCausalLM, "from_pretrained", weights_read)
    config = ModelConfig(source="pretrained", architecture="llama", path=str(model_dir), chat_template="tokenizer")
    with pytest.raises(TemplateError, match="refuses a plain conversation"):
        trainer.modeling.loading.load_model_and_tokenizer(config, torch.float32)
