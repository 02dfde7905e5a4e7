"""`preview=none`: no previews."""

from __future__ import annotations

from trainer.preview.base import PreviewRequest, PreviewResult


class NoPreviewBackend:
    backend_type = "none"

    def submit(self, request: PreviewRequest) -> None:
        return None

    def collect(self) -> list[PreviewResult]:
        return []

    def wait(self) -> list[PreviewResult]:
        return []
