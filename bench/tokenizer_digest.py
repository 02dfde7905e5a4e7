"""`python -m bench.tokenizer_digest`: what naming the tokenizer in the cache key costs (once per
run) on a real-size tokenizer: a byte-level BPE of 150,000 tokens, as large as Qwen's.

    PYTHONPATH=src python -m bench.tokenizer_digest [--vocab 150000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from trainer.data.cache import tokenizer_digest
from trainer.modeling.chat_template import CHATML_TEMPLATE
from trainer.modeling.tiny import IM_END, IM_START, PAD

# Longer merged tokens than real vocabularies hold add nothing to the file but its size.
MAX_TOKEN_CHARS = 16


def bpe_tokenizer(vocab_size: int, seed: int = 0) -> PreTrainedTokenizerFast:
    """A byte-level BPE whose vocabulary and merges have the size of a real one: each merge joins
    a token to one of the first 2,000, as training on text mostly does."""
    vocab = {symbol: index for index, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tokens, merges, rng = list(vocab), [], random.Random(seed)
    while len(vocab) < vocab_size:
        left, right = rng.choice(tokens), rng.choice(tokens[:2000])
        if left + right not in vocab and len(left + right) <= MAX_TOKEN_CHARS:
            vocab[left + right] = len(vocab)
            tokens.append(left + right)
            merges.append((left, right))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=IM_END, pad_token=PAD, additional_special_tokens=[IM_START]
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=150_000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    tokenizer = bpe_tokenizer(options.vocab)
    size = len(tokenizer.backend_tokenizer.to_str()) / 1e6
    wall, cpu = [], []
    for _ in range(options.rounds):
        started, cpu_started = time.perf_counter(), time.process_time()
        tokenizer_digest(tokenizer)
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
    # CPU time as well: on a shared machine the wall time is mostly the wait for a core.
    print(
        f"tokenizer_digest, {len(tokenizer):,}-token BPE ({size:.1f} MB tokenizer.json), median (range) of "
        f"{options.rounds} rounds: {statistics.median(wall):.0f} ({min(wall):.0f}..{max(wall):.0f}) ms wall, "
        f"{statistics.median(cpu):.0f} ({min(cpu):.0f}..{max(cpu):.0f}) ms CPU; load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
