"""generate_answer: what a preview may and may not change in the model and the process."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.config.schema import ModelConfig
from trainer.modeling.generation import generate_answer
from trainer.modeling.tiny import tiny_model_dir

PROMPT = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def tiny(model_cache):
    location = tiny_model_dir(ModelConfig(cache_dir=str(model_cache)))
    return AutoModelForCausalLM.from_pretrained(location), AutoTokenizer.from_pretrained(location)


def test_sampling_leaves_the_global_rng_stream_untouched(tiny):
    model, tokenizer = tiny
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    generate_answer(model, tokenizer, PROMPT, max_new_tokens=5, temperature=1.0, seed=7)
    assert torch.equal(torch.rand(4), expected)


def test_the_model_goes_back_to_training_mode(tiny):
    model, tokenizer = tiny
    model.train()
    generation = generate_answer(model, tokenizer, PROMPT, max_new_tokens=5)
    assert model.training
    assert 1 <= generation.tokens_generated <= 5
    assert generation.prompt_tokens == len(tokenizer(PROMPT, add_special_tokens=False)["input_ids"])


def test_sampling_is_reproducible_per_seed(tiny):
    model, tokenizer = tiny
    first, second = (generate_answer(model, tokenizer, PROMPT, 8, temperature=1.5, seed=3) for _ in range(2))
    assert first.text == second.text
