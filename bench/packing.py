"""Throughput of `data.packing=true` against a plain transformers `Trainer` with dynamic padding.

Same model (a tiny Qwen3 shape), same variable-length chats, same batches in the same order, same
loss: only the batching differs. Runs alternate A B A B so drifting machine load hits both alike.
Prints real (non-pad) tokens/s of each, their ratio, and how far the per-step losses differ.

    PYTHONPATH=src python bench/packing.py [--chats 512] [--batch 8] [--steps 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import logging
import random
import tempfile
import time

import torch
from datasets import Dataset
from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments
from transformers.utils import logging as hf_logging

from trainer.config import DataConfig, TinyModelConfig, TrainerConfig
from trainer.data.tokenization import IGNORE_INDEX, tokenize_with_assistant_mask
from trainer.modeling.tiny import build_model, build_tokenizer
from trainer.training import batching

SHAPE = TinyModelConfig(
    hidden_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, intermediate_size=768
)
OPERATIONS = [("plus", "+", lambda a, b: a + b), ("minus", "-", lambda a, b: a - b), ("times", "*", lambda a, b: a * b)]


def chat(rng: random.Random) -> list[dict[str, str]]:
    """A system prompt and 1..10 arithmetic turns (about 80 to 300 tokens): in random batches of
    8, about a third of a padded batch is padding."""
    messages = [{"role": "system", "content": "You are a careful calculator. Show the operation, then the result."}]
    for _ in range(rng.randint(1, 10)):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        word, sign, apply = rng.choice(OPERATIONS)
        messages.append({"role": "user", "content": f"What is {a} {word} {b}?"})
        messages.append({"role": "assistant", "content": f"{a} {sign} {b} = {apply(a, b)}"})
    return messages


def training_data(tokenizer, chats: int) -> Dataset:
    rng = random.Random(0)
    rows = [tokenize_with_assistant_mask(tokenizer, chat(rng), max_length=1024) for _ in range(chats)]
    return Dataset.from_dict(
        {
            "input_ids": [row.input_ids for row in rows],
            "attention_mask": [[1] * len(row.input_ids) for row in rows],
            "labels": [row.labels for row in rows],
        }
    )


def run(packing: bool, tokenizer, data: Dataset, batch: int, steps: int, device: str) -> tuple[float, int, list[float]]:
    """(seconds, real tokens, per-step losses) of `steps` optimizer steps."""
    model = build_model("qwen3", SHAPE, tokenizer)
    extra = (
        batching(TrainerConfig(data=DataConfig(packing=True)), model, tokenizer)
        if packing
        else {"data_collator": DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX)}
    )
    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=batch,
            max_steps=steps,
            learning_rate=1e-3,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            seed=0,
            data_seed=0,
            disable_tqdm=True,
            log_level="error",
            use_cpu=device == "cpu",
            include_num_input_tokens_seen="non_padding",
        )
        trainer = Trainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, **extra)
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        trainer.train()
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return seconds, trainer.state.num_input_tokens_seen, losses


def padding_share(data: Dataset, batch: int, steps: int) -> float:
    """The share of pad tokens in padded batches of this size, over a random order of the chats."""
    lengths = [len(ids) for ids in data["input_ids"]]
    random.Random(0).shuffle(lengths)
    batches = [lengths[start : start + batch] for start in range(0, batch * steps, batch)]
    return 1 - sum(map(sum, batches)) / sum(max(group) * len(group) for group in batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads for torch")
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    hf_logging.set_verbosity_error()
    logging.basicConfig(level=logging.WARNING)

    tokenizer = build_tokenizer(SHAPE.vocab_size)
    data = training_data(tokenizer, options.chats)
    lengths = sorted(map(len, data["input_ids"]))
    padded_share = padding_share(data, options.batch, options.steps)
    print(
        f"{options.chats} chats, {lengths[0]}..{lengths[-1]} tokens (median {lengths[len(lengths) // 2]}); "
        f"model hidden {SHAPE.hidden_size} x {SHAPE.num_hidden_layers} layers; batch {options.batch}, "
        f"{options.steps} steps per run; device {options.device}, {torch.get_num_threads()} threads; "
        f"padding is {padded_share:.0%} of the padded batches"
    )
    speeds: dict[str, list[float]] = {"padded": [], "packed": []}
    losses: dict[str, list[float]] = {}
    for round_number in range(1, options.rounds + 1):
        for name in ("padded", "packed"):
            seconds, tokens, step_losses = run(
                name == "packed", tokenizer, data, options.batch, options.steps, options.device
            )
            speeds[name].append(tokens / seconds)
            losses[name] = step_losses
            print(
                f"round {round_number} {name:6}: {tokens} real tokens in {seconds:6.2f}s = {tokens / seconds:8.0f} tokens/s"
            )
    padded, packed = (sum(speeds[name]) / len(speeds[name]) for name in ("padded", "packed"))
    gap = max(abs(a - b) for a, b in zip(losses["padded"], losses["packed"], strict=True))
    print(f"padded (dynamic padding, plain Trainer): {padded:8.0f} real tokens/s")
    print(f"packed (data.packing=true):             {packed:8.0f} real tokens/s")
    print(
        f"speed-up: {packed / padded:.2f}x; per-step losses differ by at most {gap:.2e} (final {losses['packed'][-1]:.4f})"
    )


if __name__ == "__main__":
    main()
