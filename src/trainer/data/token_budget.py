"""Token-budget batches: every packed batch holds up to `data.tokens_per_batch` tokens of whole
examples, and the packing collator pads what is left over once at the end, so every step has
the same shape (one compile, a flat memory peak).

The examples are assigned to batches best-fit-decreasing: longest first, each into the fullest
batch it still fits in. The assignment depends only on the sorted lengths, so every epoch has the
same number of batches (epochs and `max_steps` keep their meaning); which of the examples of equal
length go where, and the order of the batches, are shuffled per epoch from the seed. The order is a
pure function of (seed, epoch), so a resumed run, which skips the batches it already trained in
its epoch, continues exactly where it stopped.
"""

from __future__ import annotations

import bisect
import logging
import random
from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler

log = logging.getLogger(__name__)


def best_fit_decreasing(lengths: Sequence[int], budget: int, order: Sequence[int]) -> list[list[int]]:
    """Batches of example indices, each summing to at most `budget` tokens. `order` breaks ties
    between examples of equal length (a stable sort), so the batch sizes do not depend on it."""
    by_length = sorted(order, key=lambda index: -lengths[index])
    batches: list[list[int]] = []
    # (room left, batch number) of the open batches, kept sorted: the best fit is the first with room enough.
    room: list[tuple[int, int]] = []
    for index in by_length:
        length = lengths[index]
        if length > budget:
            raise ValueError(f"example {index} has {length} tokens, more than the budget of {budget}")
        slot = bisect.bisect_left(room, (length, -1))
        if slot == len(room):
            batches.append([index])
            left, number = budget - length, len(batches) - 1
        else:
            left, number = room.pop(slot)
            batches[number].append(index)
            left -= length
        if left > 0:
            bisect.insort(room, (left, number))
    return batches


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """The DataLoader's `batch_sampler` for token-budget batches."""

    def __init__(self, lengths: Sequence[int], budget: int, seed: int) -> None:
        self.lengths, self.budget, self.seed, self.epoch = list(lengths), budget, seed, 0
        plan = best_fit_decreasing(self.lengths, budget, range(len(self.lengths)))
        self.batch_count = len(plan)
        # The most examples any batch holds (the same every epoch): the packing collator pads the
        # attention boundaries to it, so their shape is static too.
        self.max_examples = max(map(len, plan), default=0)
        self.fill_ratio = sum(self.lengths) / (budget * self.batch_count) if plan else 0.0
        log.info(
            "Token budget %d: %d examples in %d batches of at most %d examples, %.1f%% of the budget filled",
            budget, len(self.lengths), self.batch_count, self.max_examples, 100 * self.fill_ratio,
        )  # fmt: skip

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        rng = random.Random(f"{self.seed}-{epoch}")
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        batches = best_fit_decreasing(self.lengths, self.budget, order)
        rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.epoch_batches(self.epoch))

    def __len__(self) -> int:
        return self.batch_count
