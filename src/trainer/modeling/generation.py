"""One answer from a model in this process: used by the local preview backend and by
`trainer.serve`, so both generate the same way."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from transformers import (
    BatchEncoding,
    GenerationConfig,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteriaList,
)


@dataclass(frozen=True)
class Generation:
    text: str
    tokens_generated: int
    seconds: float
    prompt_tokens: int
    # The generated token ids (special tokens included), which `text` decodes.
    token_ids: tuple[int, ...] = ()
    # With `keep_logits`: the model's raw logits (before any logits processor, temperature or
    # top_p) for each generated token, one row per token.
    logits: torch.Tensor | None = None


def generate_answer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_text: str,
    max_new_tokens: int,
    temperature: float = 0.0,
    logits_processor: LogitsProcessorList | None = None,
    seed: int = 0,
    top_p: float | None = None,
    stopping_criteria: StoppingCriteriaList | None = None,
    keep_logits: bool = False,
) -> Generation:
    """Continue the rendered `prompt_text`: greedy, or sampled when `temperature` > 0 (seeded).

    The model generates in eval mode without gradients and goes back to the mode it was in; the
    global torch RNG streams are forked, so a training run draws the same numbers with or without
    previews. `top_p` applies to sampling only; `stopping_criteria` may end generation early.
    `keep_logits` keeps one vocabulary-sized row per generated token: memory bounded by
    `max_new_tokens`."""
    inputs = encode_prompt(tokenizer, prompt_text).to(model.device)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=temperature > 0,
        temperature=temperature if temperature > 0 else None,
        top_p=top_p if temperature > 0 else None,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        return_dict_in_generate=keep_logits,
        output_logits=keep_logits,
    )
    was_training = model.training
    model.eval()
    started = time.perf_counter()
    try:
        with torch.random.fork_rng(devices=accelerator_devices(model)), torch.no_grad():
            torch.manual_seed(seed)
            output = model.generate(
                **inputs,
                generation_config=config,
                logits_processor=logits_processor,
                stopping_criteria=stopping_criteria,
            )
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - started
    prompt_tokens = inputs["input_ids"].shape[1]
    sequences = output.sequences if keep_logits else output
    new_tokens = sequences[0, prompt_tokens:]
    return Generation(
        tokenizer.decode(new_tokens, skip_special_tokens=True),
        len(new_tokens),
        seconds,
        prompt_tokens,
        tuple(new_tokens.tolist()),
        torch.cat(output.logits).float() if keep_logits else None,
    )


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt_text: str) -> BatchEncoding:
    """The token ids of a rendered prompt: its special tokens are already in the text."""
    return tokenizer(prompt_text, return_tensors="pt", add_special_tokens=False)


def accelerator_devices(model: PreTrainedModel) -> list[int]:
    """The CUDA device whose RNG state the preview must leave untouched (none on a CPU)."""
    return [model.device.index or 0] if model.device.type == "cuda" else []


def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_texts: list[str],
    max_new_tokens: int,
    logits_processor: LogitsProcessorList | None = None,
    batch_size: int = 16,
) -> list[Generation]:
    """Greedy answers to rendered `prompt_texts`, `batch_size` prompts per `generate` call.

    Prompts are padded on the left, so every row's answer starts at the same column and the
    processors' step count and generated tail are those of one-at-a-time generation; generate
    derives the positions from the attention mask, so padding shifts no position. `seconds` is
    the batch's time shared equally among its rows."""
    answers: list[Generation] = []
    for start in range(0, len(prompt_texts), batch_size):
        answers += generate_batch(
            model, tokenizer, prompt_texts[start : start + batch_size], max_new_tokens, logits_processor
        )
    return answers


def generate_batch(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_texts: list[str],
    max_new_tokens: int,
    logits_processor: LogitsProcessorList | None,
) -> list[Generation]:
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    inputs = encode_prompts(tokenizer, prompt_texts, pad_token_id).to(model.device)
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_token_id)
    for processor in logits_processor or ():
        if reset := getattr(processor, "reset", None):
            reset()
    was_training = model.training
    model.eval()
    started = time.perf_counter()
    try:
        with torch.no_grad():
            output = model.generate(**inputs, generation_config=config, logits_processor=logits_processor)
    finally:
        model.train(was_training)
    seconds = (time.perf_counter() - started) / len(prompt_texts)
    prompt_columns = inputs["input_ids"].shape[1]
    end_ids = {tokenizer.eos_token_id, pad_token_id} - {None}
    generations = []
    for row, mask in zip(output, inputs["attention_mask"], strict=True):
        new_tokens = answer_tokens(row[prompt_columns:].tolist(), end_ids)
        text = tokenizer.decode(new_tokens, skip_special_tokens=True)
        generations.append(Generation(text, len(new_tokens), seconds, int(mask.sum())))
    return generations


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompt_texts: list[str], pad_token_id: int) -> BatchEncoding:
    """Rendered prompts as one left-padded batch."""
    rows = [encode_prompt(tokenizer, text)["input_ids"][0].tolist() for text in prompt_texts]
    width = max(len(ids) for ids in rows)
    input_ids = torch.tensor([[pad_token_id] * (width - len(ids)) + ids for ids in rows])
    attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in rows])
    return BatchEncoding({"input_ids": input_ids, "attention_mask": attention_mask})


def answer_tokens(generated: list[int], end_ids: set[int]) -> list[int]:
    """A row's generated tokens up to and including its first end token: after it, generate only
    pads the row while the others go on."""
    for position, token in enumerate(generated):
        if token in end_ids:
            return generated[: position + 1]
    return generated
