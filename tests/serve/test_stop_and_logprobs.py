"""`stop` and `logprobs` through the real server and the official client: the answer ends before
the first stop string, and each answer token's logprob is the model's own log-softmax."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

from tests.serve.running import HELLO, SERVED_NAME
from trainer.modeling.generation import encode_prompt

# Sampled, so that the untrained tiny model's answer has varied characters to stop at.
SAMPLED = {"model": SERVED_NAME, "messages": HELLO, "max_tokens": 30, "temperature": 1.5, "seed": 3}


def ask(server, **request):
    return server.client().chat.completions.create(**{**SAMPLED, **request})


def characters_in_the_middle(text: str) -> list[str]:
    """Letters and digits of the answer's middle third: after its start, before its last token."""
    return [char for char in text[len(text) // 3 : 2 * len(text) // 3] if char.isascii() and char.isalnum()]


@pytest.mark.parametrize("as_list", [False, True])
def test_the_answer_ends_right_before_the_first_of_its_stop_strings(server, as_list):
    free = ask(server)
    text = free.choices[0].message.content
    # Strings from the answer itself (one not in it would change nothing), the later one first.
    stops = characters_in_the_middle(text)[:2][::-1]
    assert len(stops) == 2, f"no letters or digits to stop at in {text!r}"

    reply = ask(server, stop=stops if as_list else stops[0])

    kept = text[: min(text.find(stop) for stop in (stops if as_list else stops[:1]))]
    assert (reply.choices[0].message.content, reply.choices[0].finish_reason) == (kept, "stop")
    # Generation itself stopped there, not just the text returned.
    assert reply.usage.completion_tokens < free.usage.completion_tokens


@pytest.fixture(scope="module")
def direct(tiny_model: Path):
    """The served model and tokenizer, loaded apart from the server, for a plain forward pass."""
    return AutoModelForCausalLM.from_pretrained(tiny_model).eval(), AutoTokenizer.from_pretrained(tiny_model)


def token_ids_by_bytes(tokenizer) -> dict[bytes, int]:
    """Each token's bytes, read with GPT-2's own byte-to-character table (the tiny model's
    tokenizer is byte-level BPE)."""
    byte_of = {char: byte for byte, char in bytes_to_unicode().items()}
    vocabulary = tokenizer.get_vocab().items()
    return {
        bytes(byte_of[char] for char in piece): token_id
        for piece, token_id in vocabulary
        if all(char in byte_of for char in piece)
    }


@pytest.mark.parametrize("temperature", [0.0, 1.5])
def test_logprobs_are_the_log_softmax_of_the_models_raw_logits_for_each_answer_token(server, direct, temperature):
    model, tokenizer = direct
    reply = ask(server, temperature=temperature, max_tokens=8, logprobs=True, top_logprobs=5)

    entries = reply.choices[0].logprobs.content
    assert decoded(entries) == reply.choices[0].message.content
    ids = [token_ids_by_bytes(tokenizer)[bytes(entry.bytes)] for entry in entries]
    prompt = tokenizer.apply_chat_template(HELLO, tokenize=False, add_generation_prompt=True)
    prompt_ids = encode_prompt(tokenizer, prompt)["input_ids"][0].tolist()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt_ids + ids])).logits[0]
    # The logits at position p predict token p + 1: the answer's tokens from the prompt's last on.
    expected = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], dim=-1)
    for position, (entry, token_id) in enumerate(zip(entries, ids, strict=True)):
        assert entry.logprob == pytest.approx(expected[position, token_id].item(), abs=1e-4)
        best = torch.topk(expected[position], k=5)
        assert [top.logprob for top in entry.top_logprobs] == pytest.approx(best.values.tolist(), abs=1e-4)
        if temperature == 0:  # greedy: the answer's token is the most likely one
            assert entry.top_logprobs[0].bytes == entry.bytes


def test_without_top_logprobs_each_token_has_its_logprob_and_no_alternatives(server):
    reply = ask(server, max_tokens=4, logprobs=True)
    entries = reply.choices[0].logprobs.content
    assert entries and all(entry.logprob <= 0 and entry.top_logprobs == [] for entry in entries)


def test_with_a_stop_string_the_logprobs_cover_the_kept_answer(server):
    free = ask(server).choices[0].message.content
    stop = characters_in_the_middle(free)[0]

    reply = ask(server, stop=stop, logprobs=True)

    entries, kept = reply.choices[0].logprobs.content, reply.choices[0].message.content
    # Every kept character's token is there; the last one may also hold (part of) the stop string.
    assert decoded(entries).startswith(kept)
    assert len(decoded(entries[:-1])) < len(kept)


def decoded(entries) -> str:
    """The text of these tokens' bytes, as the tokenizer decodes it (a broken character is �)."""
    return b"".join(bytes(entry.bytes) for entry in entries).decode("utf-8", "replace")
