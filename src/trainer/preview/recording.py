"""Where finished previews go: previews.jsonl (one line each) and TensorBoard text. Each is a
listener: a callable that receives every `PreviewResult` on the training thread."""

from __future__ import annotations

import json
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from trainer.preview.base import PreviewResult
from trainer.run.files import write_text_atomic


class PreviewLog:
    """Appends each preview to previews.jsonl as one complete line, flushed at once, so a reader
    (or a crash) never sees half a line."""

    def __init__(self, path: Path, start_step: int | None = None) -> None:
        self.path = path
        if start_step is not None and path.exists():
            self.forget_after(start_step)

    def forget_after(self, step: int) -> None:
        """A resumed run repeats the steps after its checkpoint: their previews go, not doubled."""
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        write_text_atomic(self.path, "".join(line for line in lines if json.loads(line)["step"] <= step))

    def __call__(self, result: PreviewResult) -> None:
        line = json.dumps(result.to_dict(), ensure_ascii=False) + "\n"
        with self.path.open("a", encoding="utf-8") as file:
            file.write(line)


class PreviewTensorBoardText:
    """One text entry per preview, tag `preview/prompt_<index>`, at the preview's step. Written
    to its own event file directory: transformers' TensorBoard writer owns the other one."""

    def __init__(self, log_dir: Path, start_step: int | None = None) -> None:
        self.log_dir = log_dir
        # A resumed run hides what the killed one wrote after its checkpoint.
        self.purge_step = None if start_step is None else start_step + 1
        self.writer: SummaryWriter | None = None

    def __call__(self, result: PreviewResult) -> None:
        if self.writer is None:
            self.writer = SummaryWriter(str(self.log_dir), purge_step=self.purge_step)
        self.writer.add_text(f"preview/prompt_{result.prompt_index}", describe(result), global_step=result.step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def describe(result: PreviewResult) -> str:
    """The preview as Markdown: prompt, golden answer, model answer, match, checks, stats."""
    answer = result.text if result.success else f"**failed:** {result.error_message}"
    rows = [
        f"**step** {result.step} · **backend** {result.backend_type} · **match** {result.match}"
        f" · {result.tokens_generated} tokens in {result.generation_time_sec:.2f}s",
        *[f"**{name}** {value}" for name, value in result.checks.items()],
        *[f"**{name}** {stats}" for name, stats in result.processor_stats.items()],
        f"**prompt**\n\n{fenced(result.prompt)}",
        f"**golden answer**\n\n{fenced(result.golden_answer)}",
        f"**model answer**\n\n{fenced(answer)}",
    ]
    return "\n\n".join(rows)


def fenced(text: str) -> str:
    """A Markdown code block, so chat markup and whitespace show as they are."""
    return "```\n" + text.replace("```", "` ` `") + "\n```"
