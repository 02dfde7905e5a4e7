"""`preview=local`: generate with the training model itself, in this process, with the
profile's logits processors. It runs on the training thread, so its cost is the generation time
(preview.num_prompts x preview.max_new_tokens); it never changes what training computes."""

from __future__ import annotations

from dataclasses import asdict

from transformers import LogitsProcessorList, PreTrainedTokenizerBase

from trainer.config.schema import PreviewConfig
from trainer.modeling.generation import generate_answer
from trainer.preview.base import PreviewRequest, PreviewResult


class LocalPreviewBackend:
    backend_type = "local"

    def __init__(
        self, config: PreviewConfig, tokenizer: PreTrainedTokenizerBase, processors: LogitsProcessorList, seed: int
    ) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.processors = processors
        self.seed = seed
        self.finished: list[PreviewResult] = []

    def submit(self, request: PreviewRequest) -> None:
        for prompt in request.prompts:
            for processor in self.processors:
                processor.reset()
            try:
                generation = generate_answer(
                    request.model,
                    self.tokenizer,
                    prompt.text,
                    self.config.max_new_tokens,
                    self.config.temperature,
                    self.processors,
                    seed=self.seed + request.step,
                )
            except (RuntimeError, ValueError) as error:
                # Out of memory and the like: the preview fails, training goes on.
                self.finished.append(
                    PreviewResult.failed(prompt, request.step, self.backend_type, f"{type(error).__name__}: {error}")
                )
                continue
            self.finished.append(
                PreviewResult.answered(
                    prompt,
                    request.step,
                    self.backend_type,
                    generation.text,
                    generation.tokens_generated,
                    generation.seconds,
                    processor_stats={
                        type(processor).__name__: asdict(processor.stats) for processor in self.processors
                    },
                )
            )

    def collect(self) -> list[PreviewResult]:
        finished, self.finished = self.finished, []
        return finished

    def wait(self) -> list[PreviewResult]:
        # Nothing runs in the background: every preview finished in submit().
        return self.collect()
