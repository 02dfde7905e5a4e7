"""`GenerationEval`: one scoring of a model's answers to the held-out prompts, written to
evals/step-N.jsonl and returned as metrics (the share of answers that pass each of the profile's
checks)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from trainer.config.schema import EVAL_METRIC_PREFIX, EvalConfig
from trainer.data.split import RecordSplit
from trainer.modeling.generation import generate_answers
from trainer.preview.base import PreviewPrompt
from trainer.preview.prompts import select_prompts
from trainer.profiles.base import Profile
from trainer.run.files import write_text_atomic
from trainer.run.layout import RunDirectory

log = logging.getLogger(__name__)

# Called with (step, metrics) after each evaluation: status.json's latest eval metrics.
EvalListener = Callable[[int, dict[str, float]], None]
# Called with (step, scored answers) after each evaluation: the rows of evals/step-N.jsonl.
AnswersListener = Callable[[int, list[dict[str, Any]]], None]


@dataclass
class GenerationEval:
    prompts: list[PreviewPrompt]
    profile: Profile
    tokenizer: PreTrainedTokenizerBase
    config: EvalConfig
    run_dir: RunDirectory
    # Only the main process writes the answers files.
    writes_files: bool = True
    listeners: list[EvalListener] = field(default_factory=list)
    answers_listeners: list[AnswersListener] = field(default_factory=list)
    # Every evaluation so far: {"step": N, "eval/<metric>": share, ...}.
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def evaluate(self, model: PreTrainedModel, step: int) -> dict[str, float]:
        """Answer every prompt, score the answers, record them; the metrics as eval/<name>."""
        started = time.perf_counter()
        processors = self.profile.build_logits_processors(self.tokenizer)
        generations = generate_answers(
            model,
            self.tokenizer,
            [prompt.text for prompt in self.prompts],
            self.config.max_new_tokens,
            processors,
            self.config.batch_size,
        )
        rows = [
            {
                "step": step,
                "prompt_index": prompt.index,
                "answer": generation.text,
                "reference": prompt.golden_answer,
                "tokens_generated": generation.tokens_generated,
                "checks": self.profile.score_answer(generation.text, prompt.golden_answer),
            }
            for prompt, generation in zip(self.prompts, generations, strict=True)
        ]
        metrics = score_shares(rows, self.profile.eval_metrics)
        elapsed = time.perf_counter() - started
        self.seconds += elapsed
        if self.writes_files:
            self.run_dir.evals_dir.mkdir(exist_ok=True)
            write_text_atomic(self.run_dir.eval_answers_file(step), answers_as_jsonl(rows))
        self.history = [entry for entry in self.history if entry["step"] != step] + [{"step": step, **metrics}]
        for listener in self.listeners:
            listener(step, metrics)
        for answers_listener in self.answers_listeners:
            answers_listener(step, rows)
        log.info(
            "Generation eval at step %d: %s (%d answers in %.1fs)",
            step,
            "  ".join(f"{name} {value:.3f}" for name, value in metrics.items()),
            len(rows),
            elapsed,
        )
        return metrics

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The metrics as logged: eval/<name>."""
        return tuple(EVAL_METRIC_PREFIX + name for name in self.profile.eval_metrics)

    def summary(self) -> dict[str, Any]:
        """What result.json records: the last evaluation's metrics (flat, where sweeps look them
        up), and every evaluation."""
        last = {key: value for key, value in self.history[-1].items() if key != "step"} if self.history else {}
        return {
            **last,
            "generation_eval": {
                "prompts": len(self.prompts),
                "evaluations": self.history,
                "seconds": round(self.seconds, 3),
            },
        }


def answers_as_jsonl(rows: list[dict[str, Any]]) -> str:
    """The scored answers as evals/step-N.jsonl holds them: one JSON object a line."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def score_shares(rows: list[dict[str, Any]], metrics: tuple[str, ...]) -> dict[str, float]:
    """Per metric, the share of answers that pass it (0.0 for no answers)."""
    return {
        EVAL_METRIC_PREFIX + name: sum(row["checks"][name] for row in rows) / len(rows) if rows else 0.0
        for name in metrics
    }


def held_out_prompts(
    records: RecordSplit, profile: Profile, system_prompt: str, tokenizer: PreTrainedTokenizerBase, config: EvalConfig
) -> list[PreviewPrompt]:
    """Up to `config.max_samples` validation conversations with an assistant turn, each up to its
    last assistant turn, rendered as previews render theirs. The choice is seeded by a constant,
    not the run's seed: every run on the same data is scored on the same prompts (a sweep over
    seeds included)."""
    return select_prompts(records.validation, profile, system_prompt, tokenizer, config.max_samples, seed=0)
