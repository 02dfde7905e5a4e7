"""OpenAI's `stop`: generation ends once the decoded answer contains one of the request's stop
strings, and the answer is cut right before it. Matched on text, not on token ids, because a stop
string may be split across tokens, or be a part of one token, in any tokenizer."""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase, StoppingCriteria


class StopStrings(StoppingCriteria):
    """Stops when the answer generated after the first `prompt_tokens` tokens contains a stop
    string. Decodes the whole answer at each step: the answer is bounded by --max-tokens, and a
    partial tail decode could split a multi-byte character."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stops: tuple[str, ...], prompt_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.stops = stops
        self.prompt_tokens = prompt_tokens

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        answers = self.tokenizer.batch_decode(input_ids[:, self.prompt_tokens :], skip_special_tokens=True)
        found = [stop_position(answer, self.stops) is not None for answer in answers]
        return torch.tensor(found, dtype=torch.bool, device=input_ids.device)


def stop_position(text: str, stops: tuple[str, ...]) -> int | None:
    """Where the earliest stop string in `text` begins, or None."""
    positions = [position for stop in stops if (position := text.find(stop)) >= 0]
    return min(positions, default=None)
