"""generate_answers: a batch of left-padded prompts answers exactly as one prompt at a time does."""

from __future__ import annotations

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.config.schema import ModelConfig, ProfileConfig
from trainer.modeling.generation import generate_answer, generate_answers
from trainer.modeling.template_layout import render_conversation
from trainer.modeling.tiny import tiny_model_dir
from trainer.profiles.emoji_think import EmojiThinkProfile

QUESTIONS = ["What is 2+2?", "Tell me about a long road, a cat and the sea at night.", "hi", "(add 2 3)", "Why?"]


@pytest.fixture(scope="module")
def tiny(model_cache):
    location = tiny_model_dir(ModelConfig(cache_dir=str(model_cache)))
    return AutoModelForCausalLM.from_pretrained(location), AutoTokenizer.from_pretrained(location)


def emoji_prompts(tokenizer) -> list[str]:
    """Prompts of different lengths; every other one already ends with a stop signal, so the
    post-stop processor ends that row at once while the others go on (rows finish apart)."""
    profile = EmojiThinkProfile(ProfileConfig(name="emoji_think"), seed=1)
    prompts = []
    for index, question in enumerate(QUESTIONS):
        messages = profile.transform_example({"messages": [{"role": "user", "content": question}]}, index, "sys")
        text = render_conversation(tokenizer, messages["messages"], generation_prompt=True)
        prompts.append(text + ("💡💡\nfour\n🛑🛑🛑" if index % 2 else ""))
    return prompts


def test_batched_greedy_answers_equal_one_at_a_time_answers_with_the_profiles_processors(tiny):
    model, tokenizer = tiny
    prompts = emoji_prompts(tokenizer)
    processors = EmojiThinkProfile(ProfileConfig(name="emoji_think"), seed=1).build_logits_processors(tokenizer)
    one_by_one = [generate_answer(model, tokenizer, prompt, 10, logits_processor=processors) for prompt in prompts]
    # 3 per batch: one full batch and one partial, each mixing lengths and finished rows.
    batched = generate_answers(model, tokenizer, prompts, 10, processors, batch_size=3)
    assert [(answer.text, answer.tokens_generated) for answer in batched] == [
        (answer.text, answer.tokens_generated) for answer in one_by_one
    ]
    assert {answer.tokens_generated for answer in batched} != {10}, "some rows must finish before the others"


def test_batched_answers_leave_the_model_in_training_mode(tiny):
    model, tokenizer = tiny
    model.train()
    generate_answers(model, tokenizer, emoji_prompts(tokenizer)[:2], 3)
    assert model.training
