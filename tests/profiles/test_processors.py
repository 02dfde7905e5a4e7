"""emoji_think's logits processors: the think penalty's schedule and the post-stop penalty, on
hand-made scores and inside `model.generate` on the tiny model."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, LogitsProcessorList

from trainer.config.schema import ModelConfig, ProfileConfig
from trainer.modeling.tiny import tiny_model_dir
from trainer.profiles import build_profile
from trainer.profiles.emoji_think import STOP_EMOJIS
from trainer.profiles.processors import PostStopPenaltyProcessor, ThinkPenaltyProcessor

PROMPT_LENGTH = 5
VOCAB = 16


@pytest.fixture(scope="module")
def tiny(model_cache):
    location = tiny_model_dir(ModelConfig(cache_dir=str(model_cache)))
    return AutoModelForCausalLM.from_pretrained(location).eval(), AutoTokenizer.from_pretrained(location)


def emoji_think_processors(tokenizer) -> LogitsProcessorList:
    return build_profile(ProfileConfig(name="emoji_think"), seed=42).build_logits_processors(tokenizer)


def run_steps(processor: LogitsProcessor, steps: int, prompt_length: int = PROMPT_LENGTH) -> list[torch.Tensor]:
    """What `processor` makes of all-zero scores at each of `steps` consecutive generated steps."""
    return [
        processor(torch.zeros(1, prompt_length + step, dtype=torch.long), torch.zeros(1, VOCAB))
        for step in range(steps)
    ]


def test_the_think_penalty_follows_its_step_schedule():
    penalised = run_steps(ThinkPenaltyProcessor([3, 4]), steps=14)
    assert [-scores[0, 3].item() for scores in penalised] == [640.0] * 4 + [160.0] * 4 + [120.0] * 4 + [80.0] * 2
    assert all(torch.equal(scores[0, 3], scores[0, 4]) for scores in penalised)
    assert all(scores[0, :3].abs().sum() == 0 and scores[0, 5:].abs().sum() == 0 for scores in penalised)


def test_reset_and_a_new_generate_call_restart_the_schedule_and_reset_clears_the_stats():
    processor = ThinkPenaltyProcessor([3])
    run_steps(processor, steps=6)
    assert run_steps(processor, steps=1, prompt_length=9)[0][0, 3] == -640.0
    boosted = torch.zeros(1, VOCAB)
    boosted[0, 3] = 1.0
    processor(torch.zeros(1, 10, dtype=torch.long), boosted)
    assert processor.stats.hits == 1
    processor.reset()
    assert processor.stats.hits == 0
    assert run_steps(processor, steps=1, prompt_length=11)[0][0, 3] == -640.0


def test_the_think_penalty_targets_the_tokenizers_think_tags(tiny):
    _, tokenizer = tiny
    processor = ThinkPenaltyProcessor.for_tokenizer(tokenizer)
    assert processor.token_ids.tolist() == tokenizer.convert_tokens_to_ids(["<think>", "</think>"])


def ids_of(tokenizer, text: str) -> torch.LongTensor:
    return torch.tensor([tokenizer.encode(text, add_special_tokens=False)])


@pytest.mark.parametrize("answer", ["4\n🛑🛑🛑", "4 ⛔⛔", "4\n⏹️⏹️⏹️⏹️", "4\n🛡️🛡️\n"])
def test_after_a_stop_run_every_logit_but_eos_is_pushed_down_ever_harder(tiny, answer):
    _, tokenizer = tiny
    processor = PostStopPenaltyProcessor(tokenizer, STOP_EMOJIS)
    input_ids = ids_of(tokenizer, answer)
    scores = torch.zeros(1, len(tokenizer))
    first = processor(input_ids, scores)
    second = processor(torch.cat([input_ids, torch.tensor([[7]])], dim=1), scores)
    eos = tokenizer.eos_token_id
    others = [token for token in range(len(tokenizer)) if token != eos]
    assert (first[0, eos].item(), set(first[0, others].tolist())) == (50.0, {-1000.0})
    assert (second[0, eos].item(), set(second[0, others].tolist())) == (50.0, {-10000.0})
    assert (processor.stats.stop_seen, processor.stats.tokens_after_stop, processor.stats.hits) == (True, 2, 2)


@pytest.mark.parametrize("answer", ["4", "4\n🛑", "4\n🛑🛑 and more", "4\n🤔🤔🤔"])
def test_without_a_stop_run_the_scores_are_untouched(tiny, answer):
    _, tokenizer = tiny
    processor = PostStopPenaltyProcessor(tokenizer, STOP_EMOJIS)
    scores = torch.randn(1, len(tokenizer))
    assert torch.equal(processor(ids_of(tokenizer, answer), scores), scores)
    assert processor.stats == type(processor.stats)()


def generated_ids(tiny, text: str, processors: LogitsProcessorList, max_new_tokens: int = 12) -> list[int]:
    """Greedy continuation of `text`; the tiny model is untrained, so without help it rambles."""
    model, tokenizer = tiny
    input_ids = ids_of(tokenizer, text)
    with torch.no_grad():
        output = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            logits_processor=processors,
            max_new_tokens=max_new_tokens,
            do_sample=False,
        )
    return output[0, input_ids.shape[1] :].tolist()


def chat_prompt(tokenizer, answer_prefix: str) -> str:
    messages = [{"role": "user", "content": "What is 2+2?"}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + answer_prefix


def test_generation_ends_right_after_a_stop_run_in_the_prefix(tiny):
    _, tokenizer = tiny
    prompt = chat_prompt(tokenizer, "💡💡\n4\n🛑🛑🛑")
    assert len(generated_ids(tiny, prompt, LogitsProcessorList())) == 12
    assert generated_ids(tiny, prompt, emoji_think_processors(tokenizer)) == [tokenizer.eos_token_id]


class ForceTokens(LogitsProcessor):
    """Makes the model emit `token_ids` as its first generated tokens, then lets it go."""

    def __init__(self, token_ids: list[int]) -> None:
        self.token_ids = token_ids
        self.prompt_length: int | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.prompt_length = self.prompt_length or input_ids.shape[1]
        step = input_ids.shape[1] - self.prompt_length
        if step >= len(self.token_ids):
            return scores
        forced = torch.full_like(scores, -1e9)
        forced[:, self.token_ids[step]] = 0.0
        return forced


def test_generation_ends_within_one_token_of_a_generated_stop_run(tiny):
    _, tokenizer = tiny
    stop_run = tokenizer.encode("\n🚫🚫", add_special_tokens=False)
    prompt = chat_prompt(tokenizer, "💡💡\n4")
    assert len(generated_ids(tiny, prompt, LogitsProcessorList([ForceTokens(stop_run)]), 20)) == 20
    processors = emoji_think_processors(tokenizer)
    generated = generated_ids(tiny, prompt, LogitsProcessorList([ForceTokens(stop_run), *processors]), 20)
    assert generated == [*stop_run, tokenizer.eos_token_id]
    assert (processors[1].stats.stop_seen, processors[1].stats.tokens_after_stop) == (True, 1)


class MakeLargest(LogitsProcessor):
    """Makes `token_id` the model's top choice by a clear margin at every step."""

    def __init__(self, token_id: int) -> None:
        self.token_id = token_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.clone()
        scores[:, self.token_id] = scores.max(dim=-1).values + 10.0
        return scores


@pytest.mark.parametrize("tag", ["<think>", "</think>"])
def test_the_think_penalty_keeps_think_tags_out_even_when_they_are_the_top_choice(tiny, tag):
    _, tokenizer = tiny
    tag_id = tokenizer.convert_tokens_to_ids(tag)
    prompt = chat_prompt(tokenizer, "")
    assert set(generated_ids(tiny, prompt, LogitsProcessorList([MakeLargest(tag_id)]), 16)) == {tag_id}
    processors = emoji_think_processors(tokenizer)
    generated = generated_ids(tiny, prompt, LogitsProcessorList([MakeLargest(tag_id), *processors]), 16)
    assert len(generated) == 16
    assert not set(generated) & set(tokenizer.convert_tokens_to_ids(["<think>", "</think>"]))
    assert processors[0].stats.hits == 16


def test_in_a_batch_only_the_sequence_with_a_stop_run_is_ended(tiny):
    model, tokenizer = tiny
    tokenizer = AutoTokenizer.from_pretrained(tokenizer.name_or_path, padding_side="left")
    prompts = [chat_prompt(tokenizer, "💡💡\n4\n🛑🛑"), chat_prompt(tokenizer, "💡💡\n4")]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    processors = emoji_think_processors(tokenizer)
    with torch.no_grad():
        output = model.generate(**batch, logits_processor=processors, max_new_tokens=8, do_sample=False)
    ended, running = output[:, batch["input_ids"].shape[1] :].tolist()
    assert ended == [tokenizer.eos_token_id] + [tokenizer.pad_token_id] * 7
    assert tokenizer.eos_token_id not in running
    assert processors[1].stats.tokens_after_stop == 1


def test_a_long_run_after_the_stop_signal_keeps_finite_logits(tiny):
    _, tokenizer = tiny
    processor = PostStopPenaltyProcessor(tokenizer, STOP_EMOJIS)
    input_ids = ids_of(tokenizer, "4\n🛑🛑")
    for _ in range(400):
        scores = processor(input_ids, torch.zeros(1, len(tokenizer)))
        input_ids = torch.cat([input_ids, torch.tensor([[7]])], dim=1)
    assert torch.isfinite(scores).all()
    assert scores.argmax().item() == tokenizer.eos_token_id
