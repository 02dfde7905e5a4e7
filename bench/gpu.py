"""`python -m bench --gpu`: a Qwen3-0.6B-shaped model in bf16 on one CUDA device, trained for one
epoch of the same data three ways: a plain transformers `Trainer` with dynamic padding, trainer
with token-budget packed batches, and the same with `torch.compile`. Reports real (non-pad)
tokens/s, model FLOPs utilisation (6 * N * real tokens/s against the chip's dense bf16 peak) and
the per-step peak of allocated memory (max/min over steps: flat for static shapes).

The weights are random and the data synthetic (no download): chats of 256..2048 tokens with the
loss on the second half of each, the assistant-only shape. trainer's Trainer is built by the
product (`trainer.training.build_hf_trainer`), as the engine builds it; only the model and the data
come from here. The first steps (compilation, kernel selection, allocator warm-up) are left out of
the rate. Before training, the varlen attention kernel is checked against SDPA per example.
"""

from __future__ import annotations

import random
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from datasets import Dataset
from transformers import (
    AutoModelForCausalLM,
    DataCollatorForSeq2Seq,
    PreTrainedModel,
    PrinterCallback,
    Qwen3Config,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from bench.limits import model_gflops, parameter_count
from bench.report import Spread, Target, results_markdown
from trainer.config.schema import DataConfig, PrecisionConfig, RunConfig, TrainConfig, TrainerConfig
from trainer.data.cache_entry import TokenizedData
from trainer.data.tokenization import IGNORE_INDEX
from trainer.modeling.packed_attention import sdpa_per_example, varlen_attention
from trainer.modeling.tiny import build_tokenizer
from trainer.precision import plan_precision
from trainer.recipe import training_callbacks
from trainer.run.layout import RunDirectory
from trainer.run.status import StatusWriter
from trainer.training import build_hf_trainer

SEQUENCE_LENGTH = 2048
BATCH = 16  # examples per plain step: about 18k real tokens padded to about 32k
TOKENS_PER_BATCH = 16384
WARMUP_STEPS = 4
LEARNING_RATE = 1e-5
# Dense bf16 peak TFLOP/s by device name (vendor figures, no sparsity).
BF16_PEAK_TFLOPS = {"H200": 989.5, "H100": 989.5, "A100": 312.0, "L40S": 362.0, "A10G": 70.0, "L4": 121.0}
CONTENDERS = ("plain", "token_budget", "token_budget_compile")


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
        length = rng.randint(SEQUENCE_LENGTH // 8, SEQUENCE_LENGTH)
        ids = [rng.randrange(1, vocab_size) for _ in range(length)]
        columns["input_ids"].append(ids)
        columns["attention_mask"].append([1] * length)
        columns["labels"].append([IGNORE_INDEX] * (length // 2) + ids[length // 2 :])
    return Dataset.from_dict(columns)


class StepClock(TrainerCallback):
    """Real tokens and seconds of the steps after the warm-up, timed at synchronized step ends,
    and every step's peak of allocated memory."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, int]] = []
        self.step_peaks: list[int] = []

    def on_step_begin(self, args, state, control, **kwargs):
        torch.cuda.reset_peak_memory_stats()

    def on_step_end(self, args, state, control, **kwargs):
        control.should_save = False  # the last step's checkpoint: the benchmark keeps nothing
        torch.cuda.synchronize()
        self.step_peaks.append(torch.cuda.max_memory_allocated())
        if state.global_step >= WARMUP_STEPS:
            self.marks.append((time.perf_counter(), state.num_input_tokens_seen))

    def tokens_per_sec(self) -> float:
        (start, first), (end, last) = self.marks[0], self.marks[-1]
        return (last - first) / (end - start)

    def summary(self) -> dict:
        # The first step allocates the optimizer state: the flatness counts the steps after it.
        steady = self.step_peaks[1:]
        return {
            "tokens_per_sec": self.tokens_per_sec(),
            "steps": len(self.step_peaks),
            "peak_memory_gib": max(self.step_peaks) / 2**30,
            "step_peak_max_over_min": max(steady) / min(steady),
            "step_peaks_gib": [round(peak / 2**30, 2) for peak in self.step_peaks],
        }


def bf16_peak_tflops(device_name: str) -> float | None:
    return next((peak for name, peak in BF16_PEAK_TFLOPS.items() if name in device_name), None)


def bf16_matmul_tflops(size: int = 8192, repeats: int = 10) -> float:
    a, b = (torch.randn(size, size, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e12


def fresh_model() -> PreTrainedModel:
    """Random weights, initialised on the GPU (seconds, where the CPU takes tens)."""
    torch.manual_seed(0)
    with torch.device("cuda"):
        return AutoModelForCausalLM.from_config(qwen3_0_6b_shape(), dtype=torch.bfloat16, attn_implementation="sdpa")


def varlen_gap(model: PreTrainedModel) -> float:
    """Largest gap between the varlen kernel and SDPA per example, forward and input gradients,
    on a row of three examples and two empty segments (GQA, bf16), relative to the largest value."""
    attention = model.model.layers[0].self_attn
    boundaries = torch.tensor([0, 300, 1000, 2048, 2048, 2048], dtype=torch.int32, device="cuda")
    config = model.config
    shapes = [(1, heads, 2048, config.head_dim) for heads in (16, 8, 8)]
    inputs = [torch.randn(shape, device="cuda", dtype=torch.bfloat16, requires_grad=True) for shape in shapes]
    results = []
    for attend in (
        lambda q, k, v: varlen_attention(q, k, v, boundaries, 1048, attention.scaling),
        lambda q, k, v: sdpa_per_example(attention, q, k, v, boundaries, scaling=attention.scaling, dropout=0.0),
    ):
        output = attend(*inputs)
        gradients = torch.autograd.grad(output.float().square().sum(), inputs)
        results.append([output, *gradients])
    return max(
        float((a.float() - b.float()).abs().max() / b.float().abs().max()) for a, b in zip(*results, strict=True)
    )


def run_plain(data: TokenizedData, steps: int, clock: StepClock) -> None:
    """The plain transformers `Trainer`, dynamic padding, bf16, the same optimizer and steps."""
    tokenizer = build_tokenizer(512)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-plain-") as output_dir:
        arguments = TrainingArguments(
            output_dir=output_dir,
            learning_rate=LEARNING_RATE,
            # Two halves per step: the full-vocabulary logits of 16 padded chats at once do not fit.
            per_device_train_batch_size=BATCH // 2,
            gradient_accumulation_steps=2,
            max_steps=steps,
            optim="adamw_torch_fused",
            bf16=True,
            logging_steps=10,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=0,
            include_num_input_tokens_seen="non_padding",
        )
        trainer = Trainer(
            model=fresh_model(),
            args=arguments,
            train_dataset=data.train,
            processing_class=tokenizer,
            data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX),
            callbacks=[clock],
        )
        trainer.remove_callback(PrinterCallback)
        trainer.train()


def run_token_budget(data: TokenizedData, compile_model: bool, clock: StepClock) -> None:
    """trainer as the engine builds it: token-budget packing, one epoch of the same data."""
    config = TrainerConfig(
        data=DataConfig(packing=True, max_length=SEQUENCE_LENGTH, tokens_per_batch=TOKENS_PER_BATCH),
        precision=PrecisionConfig(name="bf16"),
        train=replace(
            TrainConfig(),
            learning_rate=LEARNING_RATE,
            max_steps=-1,
            num_train_epochs=1.0,
            logging_steps=10,
            save_steps=10**6,
            eval_steps=10**6,
            torch_compile=compile_model,
        ),
        seed=0,
    )
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as workdir:
        run_dir = RunDirectory(Path(workdir))
        config = replace(config, run=RunConfig(output_dir=workdir))
        status = StatusWriter(run_dir.status_file, config.monitoring.status_interval_sec)
        tokenizer = build_tokenizer(512)  # only the pad id and saving use it: the data is token ids already
        callbacks = training_callbacks(config, run_dir, status, extra=[clock])
        trainer = build_hf_trainer(config, run_dir, fresh_model(), tokenizer, data, plan_precision("bf16"), callbacks)
        trainer.train()
        clock.fill_ratio = trainer.batch_sampler.fill_ratio


def run_gpu_benchmark(steps: int) -> dict:
    if not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA device; none is visible")
    started = time.perf_counter()
    device = torch.cuda.get_device_name()
    model = fresh_model()
    parameters = parameter_count(model)
    gap = varlen_gap(model)
    del model
    matmul = bf16_matmul_tflops()
    peak = bf16_peak_tflops(device)
    print(f"{device}: bf16 matmul 8192^3 {matmul:.0f} TFLOP/s; varlen vs SDPA per example: relative gap {gap:.2e}")
    data = TokenizedData(train=synthetic_chats(BATCH * steps, qwen3_0_6b_shape().vocab_size), validation=None)
    runners: dict[str, Callable[[StepClock], None]] = {
        "plain": lambda clock: run_plain(data, steps, clock),
        "token_budget": lambda clock: run_token_budget(data, False, clock),
        "token_budget_compile": lambda clock: run_token_budget(data, True, clock),
    }
    results: dict[str, dict] = {}
    for name, runner in runners.items():
        clock = StepClock()
        try:
            runner(clock)
            results[name] = clock.summary() | {"fill_ratio": getattr(clock, "fill_ratio", None)}
            results[name]["mfu"] = (
                model_gflops(parameters, results[name]["tokens_per_sec"]) / 1e3 / peak if peak else None
            )
        except Exception as error:  # one contender's failure must not lose the others' numbers
            traceback.print_exc()
            results[name] = {"error": f"{type(error).__name__}: {str(error).strip().splitlines()[0]}"}
        torch.cuda.empty_cache()
        print(f"{name}: {results[name]}", flush=True)
    return gpu_report(device, parameters, steps, matmul, peak, gap, results, time.perf_counter() - started)


def gpu_report(
    device: str,
    parameters: int,
    steps: int,
    matmul: float,
    peak: float | None,
    gap: float,
    results: dict,
    seconds: float,
) -> dict:
    measured = {name: result for name, result in results.items() if "error" not in result}
    rows = [(f"{name} error", result["error"]) for name, result in results.items() if "error" in result]
    for name, result in measured.items():
        rows += [
            (f"{name} real tokens/s", f"{result['tokens_per_sec']:,.0f}"),
            (f"{name} 6*N*tokens/s / bf16 peak", f"{result['mfu']:.3f}" if result["mfu"] else "peak unknown"),
            (f"{name} per-step peak memory max/min", f"{result['step_peak_max_over_min']:.3f}"),
            (f"{name} peak memory", f"{result['peak_memory_gib']:.1f} GiB"),
        ]
    rows += [
        ("bf16 matmul 8192^3", f"{matmul:.0f} TFLOP/s (vendor dense peak {peak} TFLOP/s)"),
        ("varlen attention vs SDPA per example, largest gap / largest value", f"{gap:.1e}"),
        ("benchmark wall time", f"{seconds / 60:.1f} min"),
    ]
    targets = []
    best = max(
        (name for name in measured if name != "plain"), key=lambda name: measured[name]["tokens_per_sec"], default=None
    )
    if best and "plain" in measured:
        ratio = measured[best]["tokens_per_sec"] / measured["plain"]["tokens_per_sec"]
        targets.append(Target(f"{best} / plain transformers", Spread.of([ratio]), 1.0))
    if best and peak:
        targets.append(Target(f"{best}: 6*N*tokens/s / bf16 peak", Spread.of([measured[best]["mfu"]]), 0.45, unit=""))
    for name in measured:
        if name != "plain":
            flat = measured[name]["step_peak_max_over_min"]
            targets.append(Target(f"{name}: per-step peak max/min", Spread.of([flat]), 1.1, at_least=False, unit=""))
    header = (
        f"GPU run on {time.strftime('%Y-%m-%d')}, {device}, torch {torch.__version__}; Qwen3-0.6B shape "
        f"({parameters / 1e6:.0f}M parameters), bf16, chats of {SEQUENCE_LENGTH // 8}..{SEQUENCE_LENGTH} tokens, one epoch of "
        f"{BATCH * steps} chats: plain batch {BATCH} (2 x {BATCH // 2}) with dynamic padding vs token budget {TOKENS_PER_BATCH}; "
        f"first {WARMUP_STEPS} steps not timed."
    )
    for name, value in rows:
        print(f"{name}: {value}")
    for target in targets:
        print(target.show())
    return {
        "device": device,
        "parameters": parameters,
        "steps": steps,
        "bf16_matmul_tflops": matmul,
        "bf16_peak_tflops": peak,
        "varlen_gap": gap,
        "results": results,
        "targets": [target.to_dict() for target in targets],
        "markdown": results_markdown(header, rows, targets),
    }
