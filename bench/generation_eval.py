"""`python -m bench --generation-eval`: the generation eval's batched answers against the same
answers generated one prompt at a time, and what the eval costs a default run.

The default run's model (tiny qwen3) and data (the sample chats, profile regime3) at eval's
defaults: 32 held-out prompts, answers of up to 64 tokens, 16 prompts per batch. The untrained
model never ends an answer early, so every answer is 64 tokens either way: the two ways do the
same work, and each round checks they give the same answers. Rounds alternate the two ways; the
ratio is taken within each round.

The share of a default run's wall time is estimated, not a 300-step run timed: a short default
run (eval off) gives the seconds per training step, and a default run evaluates 6 times (every
50 of its 300 steps), each evaluation as long as the batched round measured here.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from bench.report import Spread, Target, per_round_ratios, tables_markdown
from trainer.config.schema import EvalConfig, ModelConfig, ProfileConfig, RunConfig, TrainerConfig
from trainer.data.split import load_record_split
from trainer.engine import TrainerEngine
from trainer.eval.generation_eval import held_out_prompts
from trainer.modeling.generation import generate_answer, generate_answers
from trainer.modeling.loading import load_model_and_tokenizer
from trainer.precision import plan_precision
from trainer.profiles import build_profile

TARGET_SPEED_UP = 4.0
STEP_SAMPLE = 20


def run_generation_eval_benchmark(rounds: int, workdir: Path) -> dict:
    started = time.perf_counter()
    config = replace(
        TrainerConfig(),
        model=ModelConfig(cache_dir=str(workdir / "models")),
        profile=ProfileConfig(name="regime3"),
        run=RunConfig(output_dir=str(workdir / "run")),
    )
    evaluation = EvalConfig()
    profile = build_profile(config.profile, config.seed)
    model, tokenizer, _ = load_model_and_tokenizer(config.model, plan_precision("fp32").model_dtype)
    records = load_record_split(config.data, profile, config.seed)
    system_prompt = profile.render_system_prompt(config.data.system_prompt)
    texts = [prompt.text for prompt in held_out_prompts(records, profile, system_prompt, tokenizer, evaluation)]
    batched_rates, single_rates = [], []
    for round_number in range(rounds):
        ways = {
            "batched": lambda: generate_answers(model, tokenizer, texts, evaluation.max_new_tokens, None, evaluation.batch_size),
            "single": lambda: [generate_answer(model, tokenizer, text, evaluation.max_new_tokens) for text in texts],
        }  # fmt: skip
        answers, seconds = {}, {}
        for name in sorted(ways, reverse=round_number % 2 == 1):
            began = time.perf_counter()
            answers[name] = [answer.text for answer in ways[name]()]
            seconds[name] = time.perf_counter() - began
        assert answers["batched"] == answers["single"], "batched answers must equal one-at-a-time answers"
        batched_rates.append(len(texts) / seconds["batched"])
        single_rates.append(len(texts) / seconds["single"])
        print(f"round {round_number + 1}: batched {batched_rates[-1]:.2f} answers/s, one at a time {single_rates[-1]:.2f} answers/s", flush=True)  # fmt: skip
    step_seconds = seconds_per_training_step(config, workdir)
    eval_seconds = len(texts) / Spread.of(batched_rates).median
    evaluations = config.train.max_steps // config.train.eval_steps
    training = step_seconds * config.train.max_steps
    share = evaluations * eval_seconds / (training + evaluations * eval_seconds)
    speed_up = per_round_ratios(batched_rates, single_rates)
    rows = [
        (
            "prompts x longest answer, batch",
            f"{len(texts)} x {evaluation.max_new_tokens} tokens, {evaluation.batch_size}",
        ),
        ("batched answers/s", Spread.of(batched_rates).show(2)),
        ("one-at-a-time answers/s", Spread.of(single_rates).show(2)),
        ("one evaluation (batched)", f"{eval_seconds:.1f} s"),
        ("default run: seconds per training step (eval off)", f"{step_seconds:.2f} s"),
        (f"default run: {evaluations} evaluations / wall time with eval.enabled=true", f"{share:.1%}"),
        ("benchmark wall time", f"{(time.perf_counter() - started) / 60:.1f} min"),
    ]
    targets = [Target("batched / one-at-a-time answers/s at batch 16", speed_up, TARGET_SPEED_UP)]
    for target in targets:
        print(target.show())
    return {
        "batched_answers_per_sec": Spread.of(batched_rates).__dict__,
        "single_answers_per_sec": Spread.of(single_rates).__dict__,
        "seconds_per_training_step": step_seconds,
        "eval_share_of_default_run": share,
        "targets": [target.to_dict() for target in targets],
        "markdown": tables_markdown(rows, targets),
    }


def seconds_per_training_step(config: TrainerConfig, workdir: Path) -> float:
    """The default run's seconds per step, from a short run of it (eval and checkpoints out of the way)."""
    short = replace(
        config,
        train=replace(config.train, max_steps=STEP_SAMPLE, eval_steps=STEP_SAMPLE + 1, save_steps=STEP_SAMPLE + 1),
        run=RunConfig(output_dir=str(workdir / "steps")),
    )
    result = TrainerEngine(environ={}).run_job(short)
    assert result.success, result.error_message
    return result.summary["segment_tokens"] / result.summary["tokens_per_sec"] / STEP_SAMPLE
