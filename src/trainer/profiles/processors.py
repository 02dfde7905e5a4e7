"""Generation-time logits processors of the profiles. They shape what the model generates (in
previews and inference), never the training loss.

Each processor keeps `stats` that previews report, and `reset()` clears them. A processor also
notices by itself when a new `generate` call starts (the sequence stops growing by one token per
call), so the step schedule restarts even when a caller forgets to reset.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import LogitsProcessor, PreTrainedTokenizerBase

THINK_TAGS = ("<think>", "</think>")
THINK_PENALTY = 80.0
# (first generated step it no longer covers, multiplier): strongest where a reply begins, since
# that is where a chat model trained with thinking blocks opens one; 1.0 after the last entry.
THINK_SCHEDULE = ((4, 8.0), (8, 2.0), (12, 1.5))
STOP_PENALTY_BASE = 100.0
STOP_PENALTY_RATE = 10.0
EOT_REWARD = 50.0
STOP_RUN_LENGTHS = range(2, 5)
# Extra tokens decoded beyond the longest stop run: tokens merged across its edges still fit.
TAIL_MARGIN_TOKENS = 4


@dataclass
class ProcessorStats:
    # Steps (per sequence) at which the processor overrode the model's own top choice.
    hits: int = 0
    stop_seen: bool = False
    # Steps (per sequence) scored after a stop signal, the end-of-turn token included.
    tokens_after_stop: int = 0


class ResettableLogitsProcessor(LogitsProcessor):
    """Tracks which generated step each call scores; subclasses keep per-sequence state."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.stats = ProcessorStats()
        self._prompt_length: int | None = None
        self._next_length: int | None = None
        self._batch_size: int | None = None

    def generated_step(self, input_ids: torch.LongTensor) -> int:
        """0 for the call that picks the first generated token, 1 for the next, and so on."""
        batch_size, length = input_ids.shape
        if length != self._next_length or batch_size != self._batch_size:
            self._prompt_length, self._batch_size = length, batch_size
            self.begin_generation(batch_size)
        self._next_length = length + 1
        assert self._prompt_length is not None
        return length - self._prompt_length

    def begin_generation(self, batch_size: int) -> None:
        """Start the per-sequence state of a new `generate` call."""


class ThinkPenaltyProcessor(ResettableLogitsProcessor):
    """Pushes the `<think>`/`</think>` tokens down by `penalty * multiplier`, the multiplier
    falling with the generated step as in THINK_SCHEDULE."""

    def __init__(self, token_ids: list[int], penalty: float = THINK_PENALTY) -> None:
        self.token_ids = torch.tensor(token_ids, dtype=torch.long)
        self.penalty = penalty
        super().__init__()

    @classmethod
    def for_tokenizer(cls, tokenizer: PreTrainedTokenizerBase) -> ThinkPenaltyProcessor:
        """Penalises the think tags the vocabulary has as single tokens (Qwen3 has both); a
        tokenizer without them cannot emit a tag in one step, so there is nothing to push down."""
        vocab = tokenizer.get_vocab()
        return cls([vocab[tag] for tag in THINK_TAGS if tag in vocab])

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = self.generated_step(input_ids)
        if not len(self.token_ids):
            return scores
        token_ids = self.token_ids.to(scores.device)
        self.stats.hits += int(torch.isin(scores.argmax(dim=-1), token_ids).sum())
        penalty = torch.zeros(scores.shape[-1], dtype=scores.dtype, device=scores.device)
        penalty[token_ids] = self.penalty * think_multiplier(step)
        return scores - penalty


def think_multiplier(step: int) -> float:
    return next((multiplier for end, multiplier in THINK_SCHEDULE if step < end), 1.0)


def stop_runs(stop_emojis: tuple[str, ...]) -> tuple[str, ...]:
    """Every stop signal: each stop emoji repeated 2..4 times."""
    return tuple(emoji * count for emoji in stop_emojis for count in STOP_RUN_LENGTHS)


class PostStopPenaltyProcessor(ResettableLogitsProcessor):
    """Ends a sequence right after its stop signal: once the text ends with a stop emoji repeated
    2..4 times, each later step subtracts `base * rate**n` (n = 1, 2, ...) from every logit but
    the end-of-turn token's, which gains `eot_reward` instead.

    Emojis span several tokens in most vocabularies, so the signal is matched on the decoded
    tail of the sequence (the prompt's end included: a prefilled answer may already be done)."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        stop_emojis: tuple[str, ...],
        base: float = STOP_PENALTY_BASE,
        rate: float = STOP_PENALTY_RATE,
        eot_reward: float = EOT_REWARD,
    ) -> None:
        if tokenizer.eos_token_id is None:
            raise ValueError("the post-stop penalty needs a tokenizer with an end-of-turn (eos) token")
        self.tokenizer = tokenizer
        self.eos_token_id: int = tokenizer.eos_token_id
        # Once generated, either token means the sequence is over (batches pad finished ones).
        self.end_token_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
        self.stop_runs = stop_runs(stop_emojis)
        longest = max(len(tokenizer.encode(run, add_special_tokens=False)) for run in self.stop_runs)
        self.tail_tokens = longest + TAIL_MARGIN_TOKENS
        self.base, self.rate, self.eot_reward = base, rate, eot_reward
        super().__init__()

    def begin_generation(self, batch_size: int) -> None:
        # Per sequence: None until its stop signal, then the number of steps scored since.
        self._steps_after_stop: list[int | None] = [None] * batch_size
        self._finished = [False] * batch_size

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = self.generated_step(input_ids)
        exponents = [self.penalty_exponent(row, sequence, step) for row, sequence in enumerate(input_ids)]
        if not any(exponents):
            return scores
        exponent = torch.tensor(exponents, dtype=torch.float64, device=scores.device)
        active = exponent > 0
        self.stats.hits += int((active & (scores.argmax(dim=-1) != self.eos_token_id)).sum())
        penalty = torch.where(active, self.base * self.rate**exponent, 0.0).to(scores.dtype)[:, None]
        # rate**n overflows to inf within a few hundred steps, and -inf logits upset some samplers.
        adjusted = (scores - penalty).clamp_min(torch.finfo(scores.dtype).min)
        adjusted[:, self.eos_token_id] = scores[:, self.eos_token_id] + active.to(scores.dtype) * self.eot_reward
        return adjusted

    def penalty_exponent(self, row: int, sequence: torch.LongTensor, step: int) -> int:
        """n for this sequence's next token: 0 before its stop signal and once it has ended."""
        if self._finished[row] or (step > 0 and int(sequence[-1]) in self.end_token_ids):
            self._finished[row] = True
            return 0
        if self._steps_after_stop[row] is None:
            if not self.ends_with_stop_run(sequence):
                return 0
            self._steps_after_stop[row] = 0
            self.stats.stop_seen = True
        exponent = self._steps_after_stop[row] + 1
        self._steps_after_stop[row] = exponent
        self.stats.tokens_after_stop += 1
        return exponent

    def ends_with_stop_run(self, sequence: torch.LongTensor) -> bool:
        tail = self.tokenizer.decode(sequence[-self.tail_tokens :].tolist()).rstrip()
        return tail.endswith(self.stop_runs)
