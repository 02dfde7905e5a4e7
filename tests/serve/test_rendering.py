"""The server prompts a model with the tokens training put before its answers: the same template,
system prompts folded where the template has no place for them, the same generation prompt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import torch

from tests.serve.running import RunningServer, serving
from tests.template_families import CONVERSATION, FAMILIES, NO_SYSTEM, UNICODE, pretrained_dir
from trainer.config.schema import ModelConfig
from trainer.data.tokenization import IGNORE_INDEX, tokenize_with_assistant_mask
from trainer.modeling.loading import load_model_and_tokenizer

CONVERSATIONS = {"with a system prompt": CONVERSATION, "without one": NO_SYSTEM, "in unicode": UNICODE}


@pytest.fixture(scope="module")
def family_models(tmp_path_factory) -> Path:
    """A tiny model per family, each saved with the family's own template."""
    root = tmp_path_factory.mktemp("families")
    for family in FAMILIES:
        pretrained_dir(root / family, family)
    return root


@pytest.fixture(scope="module")
def family_server(tiny_model: Path, family_models: Path) -> Iterator[RunningServer]:
    with serving(tiny_model, allow_dirs=(family_models,)) as running:
        yield running


def served_prompt_tokens(server: RunningServer, model_dir: Path, messages: list[dict], monkeypatch) -> list[int]:
    """The token ids the served model is given for a chat request of `messages`."""
    model, _ = server.scheduler.models.get(str(model_dir))
    given = []

    def recording_generate(**inputs):
        given.append(inputs["input_ids"][0].tolist())
        return generate(**inputs)

    generate = model.generate
    with monkeypatch.context() as patch:
        patch.setattr(model, "generate", recording_generate)
        server.client().chat.completions.create(model=str(model_dir), messages=messages, max_tokens=1)
    return given[0]


def trained_prompt_tokens(model_dir: Path, messages: list[dict]) -> list[int]:
    """The tokens a run training on `messages` (loading the model as a run does) puts before its
    last answer's learned tokens."""
    _, tokenizer, _ = load_model_and_tokenizer(
        ModelConfig(name=model_dir.name, source="pretrained", path=str(model_dir)), torch.float32
    )
    example = tokenize_with_assistant_mask(tokenizer, messages, max_length=4096)
    learned = [label != IGNORE_INDEX for label in example.labels]
    start = len(learned) - 1 - learned[::-1].index(True)
    while start > 0 and learned[start - 1]:
        start -= 1
    return example.input_ids[:start]


@pytest.mark.parametrize("family", FAMILIES)
def test_the_server_prompts_with_the_tokens_training_puts_before_an_answer(
    family_server, family_models, family, monkeypatch
):
    for case, conversation in CONVERSATIONS.items():
        last_answer = max(position for position, message in enumerate(conversation) if message["role"] == "assistant")

        served = served_prompt_tokens(family_server, family_models / family, conversation[:last_answer], monkeypatch)

        assert served == trained_prompt_tokens(family_models / family, conversation), case


def test_a_conversation_the_template_refuses_is_a_400_with_the_templates_reason(family_server, family_models):
    user_after_user = [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Hello?"}]

    with pytest.raises(openai.BadRequestError) as refused:
        family_server.client().chat.completions.create(
            model=str(family_models / "gemma-2"), messages=user_after_user, max_tokens=1
        )

    assert refused.value.body["param"] == "messages"
    assert (
        "the Gemma chat template refuses this conversation (Conversation roles must alternate"
        in (refused.value.body["message"])
    )
    assert "model.chat_template" not in refused.value.body["message"]


@pytest.mark.parametrize("family", [name for name, family in FAMILIES.items() if family.system_into])
def test_a_system_prompt_without_a_user_turn_to_fold_it_into_is_refused(family_server, family_models, family):
    with pytest.raises(openai.BadRequestError) as refused:
        family_server.client().chat.completions.create(
            model=str(family_models / family), messages=[{"role": "system", "content": "Be brief."}], max_tokens=1
        )

    assert refused.value.body["param"] == "messages"
    assert "no place for a system prompt" in refused.value.body["message"]
