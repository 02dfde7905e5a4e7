"""The one workload every CPU comparison trains on: the same model shape, chats, batch, steps and seed.

The chats are written to a JSONL file and go through the product's own data pipeline (profile,
chat template, assistant-only labels), so every contender trains on the very same token ids and
labels; only what each does with them differs.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from trainer.config.schema import DataConfig, ModelConfig, RunConfig, TinyModelConfig, TrainConfig, TrainerConfig
from trainer.data.cache_entry import TokenizedData, tokenize_split
from trainer.data.split import load_record_split
from trainer.modeling.loading import load_model_and_tokenizer
from trainer.precision import plan_precision
from trainer.profiles import build_profile

SYSTEM_PROMPT = "You are a careful calculator. Show the operation, then the result."
OPERATIONS = [("plus", "+", lambda a, b: a + b), ("minus", "-", lambda a, b: a - b), ("times", "*", lambda a, b: a * b)]
# The shape: hidden 256, 4 layers (the default tiny model is smaller still).
SHAPE = TinyModelConfig(
    hidden_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, intermediate_size=768
)


@dataclass(frozen=True)
class Workload:
    chats: int = 384
    batch: int = 8
    steps: int = 30
    seed: int = 42
    learning_rate: float = 1e-3
    # The product's default: logging every step would add a TensorBoard write per step to trainer's side.
    logging_steps: int = 10


def chat(rng: random.Random) -> dict:
    """A system prompt and 1..10 arithmetic turns (about 80 to 300 tokens): in random batches of
    8, about a third of a padded batch is padding."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for _ in range(rng.randint(1, 10)):
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        word, sign, apply = rng.choice(OPERATIONS)
        messages.append({"role": "user", "content": f"What is {a} {word} {b}?"})
        messages.append({"role": "assistant", "content": f"{a} {sign} {b} = {apply(a, b)}"})
    return {"messages": messages}


def write_chats(path: Path, count: int) -> Path:
    rng = random.Random(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(chat(rng)) + "\n" for _ in range(count)), encoding="utf-8")
    return path


def engine_config(workload: Workload, workdir: Path, model_cache: Path, packing: bool = False) -> TrainerConfig:
    """The product's config for the workload: no validation set and no checkpoint inside the
    measured steps, so every contender does the same work; monitoring stays as the product ships it."""
    steps = workload.steps
    return TrainerConfig(
        model=ModelConfig(tiny=SHAPE, cache_dir=str(model_cache)),
        data=DataConfig(
            train=str(workdir / "chats.jsonl"), validation_split=0.0, system_prompt=SYSTEM_PROMPT, packing=packing
        ),
        train=replace(
            TrainConfig(),
            learning_rate=workload.learning_rate,
            per_device_train_batch_size=workload.batch,
            max_steps=steps,
            logging_steps=workload.logging_steps,
            eval_steps=steps + 1,
            save_steps=steps + 1,
        ),
        # Dated one fixed day, as tests are: the same tokens, so comparable timings, on any day.
        run=RunConfig(output_dir=str(workdir / "run"), date="2026-12-01"),
        seed=workload.seed,
    )


def tokenized_data(config: TrainerConfig) -> TokenizedData:
    """The workload's chats tokenized exactly as a run of `config` tokenizes them."""
    profile = build_profile(config.profile, config.seed)
    records = load_record_split(config.data, profile, config.seed)
    _, tokenizer, _ = load_model_and_tokenizer(config.model, plan_precision(config.precision.name).model_dtype)
    system_prompt = profile.render_system_prompt(config.data.system_prompt, date.fromisoformat(config.run.date))
    return tokenize_split(records, profile, system_prompt, tokenizer, config.data.max_length)
