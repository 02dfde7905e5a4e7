"""OpenAI's `logprobs` / `top_logprobs` of a chat completion: for each token of the answer, its
log-probability and the `top_logprobs` most likely tokens at that position, each with its UTF-8
bytes (a token may hold part of a character, so its bytes, not its text, join up to the answer).

The log-probabilities are the log-softmax of the model's raw logits, before temperature, top_p or
any logits processor: they are the model's own distribution, the same whatever the sampling
settings (as OpenAI's are), comparable between requests, and never -inf for a token that top_p
happened to filter out."""

from __future__ import annotations

from functools import cache
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase


def token_logprobs(
    tokenizer: PreTrainedTokenizerBase, token_ids: tuple[int, ...], logits: torch.Tensor, top: int
) -> list[dict[str, Any]]:
    """One entry per token of `token_ids` (special tokens, which the answer's text leaves out, left
    out here too); `logits` has one row per token id."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    best = torch.topk(logprobs, k=top, dim=-1)
    special = set(tokenizer.all_special_ids)
    entries = []
    for position, token_id in enumerate(token_ids):
        if token_id in special:
            continue
        alternatives = zip(best.indices[position].tolist(), best.values[position].tolist(), strict=True)
        entry = token_entry(tokenizer, token_id, logprobs[position, token_id].item())
        entry["top_logprobs"] = [token_entry(tokenizer, other, value) for other, value in alternatives]
        entries.append(entry)
    return entries


def token_entry(tokenizer: PreTrainedTokenizerBase, token_id: int, logprob: float) -> dict[str, Any]:
    raw = token_bytes(tokenizer, token_id)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # part of a character: OpenAI's notation for such a token
        text = "bytes:" + "".join(f"\\x{byte:02x}" for byte in raw)
    return {"token": text, "logprob": logprob, "bytes": list(raw)}


def token_bytes(tokenizer: PreTrainedTokenizerBase, token_id: int) -> bytes:
    """The bytes a token stands for. Byte-level BPE (GPT-2, Qwen, Llama 3) writes each byte as one
    printable character; SentencePiece writes a space as `▁` and, with byte fallback, a byte as
    `<0xE2>`; other tokens decode alone (which may drop a leading space)."""
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if token_id not in tokenizer.all_special_ids:
        decoder = backend_decoder(tokenizer)
        if "ByteLevel" in decoder and all(char in byte_of_character() for char in piece):
            return bytes(byte_of_character()[char] for char in piece)
        if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
            return bytes([int(piece[3:5], 16)])
        if "Metaspace" in decoder or "▁" in decoder:
            return piece.replace("▁", " ").encode("utf-8")
    return tokenizer.decode([token_id]).encode("utf-8")


def backend_decoder(tokenizer: PreTrainedTokenizerBase) -> str:
    """The fast tokenizer's decoder as text (e.g. `ByteLevel(...)`), or "" for a slow tokenizer."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return str(backend.decoder) if backend is not None else ""


@cache
def byte_of_character() -> dict[str, int]:
    """The inverse of byte-level BPE's byte-to-character table: printable bytes stand for
    themselves, the others for the characters from U+0100 on, in order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [byte for byte in range(256) if byte not in printable]
    table = {chr(byte): byte for byte in printable}
    table.update({chr(256 + index): byte for index, byte in enumerate(others)})
    return table
