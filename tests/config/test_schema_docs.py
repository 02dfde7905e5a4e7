"""Every knob is documented once, in the schema, with the defaults that differ from Hugging Face's."""

from __future__ import annotations

import inspect
from dataclasses import MISSING, fields, is_dataclass

import pytest
from transformers import TrainingArguments

from trainer.config import schema
from trainer.config.schema import TinyModelConfig, TrainConfig

SECTIONS = [item for item in vars(schema).values() if is_dataclass(item) and item.__module__ == schema.__name__]
# train.* knobs handed to TrainingArguments under another name.
TRAINING_ARGUMENT_NAMES = {"warmup_ratio": "warmup_steps", "gradient_checkpointing": "activation_checkpointing"}
# train.* knobs of trainer's own, with no TrainingArguments counterpart.
TRAINER_OWN = {"loss_chunk_size", "fused_loss", "keep_best", "final_model"}


def field_comments(section: type) -> dict[str, str]:
    """The comment lines just above each field of `section`, joined."""
    comments, pending = {}, []
    for line in inspect.getsource(section).splitlines():
        text = line.strip()
        if text.startswith("#"):
            pending.append(text.lstrip("# "))
        elif ":" in text and text.split(":")[0].isidentifier():
            comments[text.split(":")[0]] = " ".join(pending)
            pending = []
        else:
            pending = []
    return comments


@pytest.mark.parametrize("section", SECTIONS, ids=lambda section: section.__name__)
def test_every_knob_has_a_comment_in_the_schema(section):
    """Sections are documented on their own class; the tiny model's shape keeps transformers' names."""
    comments = field_comments(section)
    knobs = [item.name for item in fields(section) if not is_dataclass(item.default_factory)]
    shape = {
        "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
        "max_position_embeddings",
    }  # fmt: skip
    undocumented = [
        name for name in knobs if not comments.get(name) and not (section is TinyModelConfig and name in shape)
    ]
    assert undocumented == []


def test_train_defaults_that_differ_from_training_arguments_say_so():
    hf = TrainingArguments(output_dir="unused")
    comments = field_comments(TrainConfig)
    differing = [
        item.name
        for item in fields(TrainConfig)
        if item.default is not MISSING
        and item.name not in TRAINER_OWN
        and item.default != getattr(hf, TRAINING_ARGUMENT_NAMES.get(item.name, item.name))
    ]
    assert "learning_rate" in differing
    assert [name for name in differing if "HF default" not in comments[name]] == []
    assert [name for name in comments if "HF default" in comments[name] and name not in differing] == []
