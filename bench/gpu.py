"""`python -m bench --gpu`: trainer's packed training of a Qwen3-0.6B-shaped model on one CUDA
device, in bf16 at sequence length 2048: tokens/s and model FLOPs utilisation (MFU) against the
chip's dense bf16 peak.

The weights are random and the data synthetic (no download): chats of 256..2048 tokens with the
loss on the second half of each, the assistant-only shape. The Trainer is built by the product
(`trainer.training.build_hf_trainer`, packing on), as the engine builds it; only the model and the
data come from here. The first steps (kernel selection, allocator warm-up) are left out of the rate.
"""

from __future__ import annotations

import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, Qwen3Config, TrainerCallback

from bench.limits import model_gflops, parameter_count
from trainer.config import DataConfig, PrecisionConfig, RunConfig, TrainConfig, TrainerConfig
from trainer.data.preparation import TokenizedData
from trainer.data.tokenization import IGNORE_INDEX
from trainer.modeling.tiny import build_tokenizer
from trainer.monitoring.status import StatusWriter
from trainer.precision import plan_precision
from trainer.run_dir import RunDirectory
from trainer.training import build_hf_trainer

SEQUENCE_LENGTH = 2048
BATCH = 16  # examples per step: about 18k tokens
WARMUP_STEPS = 5
# Dense bf16 peak TFLOP/s by device name (vendor figures, no sparsity).
BF16_PEAK_TFLOPS = {"H200": 989.5, "H100": 989.5, "A100": 312.0, "L40S": 362.0, "A10G": 70.0, "L4": 121.0}


def qwen3_0_6b_shape(vocab_size: int = 151936) -> Qwen3Config:
    return Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40960,
        rope_theta=1_000_000,
        tie_word_embeddings=True,
    )


def synthetic_chats(count: int, vocab_size: int, seed: int = 0) -> Dataset:
    rng = random.Random(seed)
    columns: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": []}
    for _ in range(count):
        length = rng.randint(256, SEQUENCE_LENGTH)
        ids = [rng.randrange(1, vocab_size) for _ in range(length)]
        columns["input_ids"].append(ids)
        columns["attention_mask"].append([1] * length)
        columns["labels"].append([IGNORE_INDEX] * (length // 2) + ids[length // 2 :])
    return Dataset.from_dict(columns)


class StepClock(TrainerCallback):
    """Tokens and seconds of the steps after the warm-up, timed at synchronized step ends."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, int]] = []

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= WARMUP_STEPS:
            torch.cuda.synchronize()
            self.marks.append((time.perf_counter(), state.num_input_tokens_seen))

    def tokens_per_sec(self) -> float:
        (start, first), (end, last) = self.marks[0], self.marks[-1]
        return (last - first) / (end - start)


def bf16_peak_tflops(device_name: str) -> float | None:
    return next((peak for name, peak in BF16_PEAK_TFLOPS.items() if name in device_name), None)


def run_gpu_benchmark(steps: int) -> dict:
    if not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA device; none is visible")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(qwen3_0_6b_shape(), dtype=torch.bfloat16, attn_implementation="sdpa")
    parameters = parameter_count(model)
    data = TokenizedData(train=synthetic_chats(BATCH * (steps + 1), model.config.vocab_size), validation=None)
    config = TrainerConfig(
        data=DataConfig(packing=True, max_length=SEQUENCE_LENGTH),
        precision=PrecisionConfig(name="bf16"),
        train=replace(
            TrainConfig(),
            learning_rate=1e-5,
            per_device_train_batch_size=BATCH,
            max_steps=steps,
            logging_steps=10,
            save_steps=steps + 1,
            eval_steps=steps + 1,
        ),
    )
    clock = StepClock()
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as workdir:
        run_dir = RunDirectory(Path(workdir))
        config = replace(config, run=RunConfig(output_dir=workdir))
        status = StatusWriter(run_dir.status_file, config.monitoring.status_interval_sec)
        tokenizer = build_tokenizer(512)  # only the pad id and saving use it: the data is token ids already
        trainer = build_hf_trainer(config, run_dir, model, tokenizer, data, plan_precision("bf16"), status)
        trainer.add_callback(clock)
        trainer.train()
    device = torch.cuda.get_device_name()
    tokens_per_sec = clock.tokens_per_sec()
    achieved = model_gflops(parameters, tokens_per_sec) / 1e3
    peak = bf16_peak_tflops(device)
    report = {
        "device": device,
        "parameters": parameters,
        "sequence_length": SEQUENCE_LENGTH,
        "batch": BATCH,
        "steps": steps,
        "tokens_per_sec": tokens_per_sec,
        "model_tflops": achieved,
        "bf16_peak_tflops": peak,
        "mfu": achieved / peak if peak else None,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
    }
    print(
        f"{device}: Qwen3-0.6B shape ({parameters / 1e6:.0f}M parameters), bf16, packing, seq {SEQUENCE_LENGTH}, "
        f"batch {BATCH}: {tokens_per_sec:,.0f} tokens/s = {achieved:.1f} TFLOP/s (6*N*tokens/s)"
        + (f", MFU {achieved / peak:.1%} of {peak:g} TFLOP/s" if peak else ", bf16 peak unknown for this device")
    )
    return report
