"""plain: the data as given, with the system prompt applied; no logits processors."""

from __future__ import annotations

from trainer.profiles.base import Profile


class PlainProfile(Profile):
    name = "plain"
