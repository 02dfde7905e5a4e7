"""The embedded tiny model: built locally in either family, deterministic, cached by its recipe."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.config.schema import ModelConfig, TinyModelConfig
from trainer.modeling.tiny import build_model, build_tokenizer, tiny_model_dir


def test_building_twice_gives_the_same_tokenizer_and_weights():
    first, second = build_tokenizer(512), build_tokenizer(512)
    assert first.get_vocab() == second.get_vocab()
    config = TinyModelConfig()
    weights = [build_model("qwen3", config, first).state_dict() for _ in range(2)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


def test_building_the_model_leaves_the_global_rng_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    build_model("qwen3", TinyModelConfig(), build_tokenizer(512))
    assert torch.equal(torch.rand(3), expected)


def test_the_cache_is_keyed_by_the_recipe_and_reused(tmp_path):
    config = ModelConfig(cache_dir=str(tmp_path))
    location = tiny_model_dir(config)
    built_at = (location / "model.safetensors").stat().st_mtime_ns
    assert tiny_model_dir(config) == location
    assert (location / "model.safetensors").stat().st_mtime_ns == built_at
    assert tiny_model_dir(replace(config, tiny=replace(config.tiny, num_hidden_layers=3))) != location
    assert tiny_model_dir(replace(config, architecture="llama")) != location


@pytest.mark.parametrize("architecture", ["qwen3", "llama"])
def test_the_cached_model_loads_with_from_pretrained_in_its_family(architecture, model_cache):
    location = tiny_model_dir(ModelConfig(architecture=architecture, cache_dir=str(model_cache)))
    model = AutoModelForCausalLM.from_pretrained(location)
    tokenizer = AutoTokenizer.from_pretrained(location)
    assert model.config.model_type == architecture
    assert tokenizer.convert_tokens_to_ids("<think>") != tokenizer.unk_token_id
    assert tokenizer.eos_token == "<|im_end|>"
