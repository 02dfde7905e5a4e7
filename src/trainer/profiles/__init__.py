"""Profile registry: `profile=<name>` on the command line picks the class registered here."""

from __future__ import annotations

from trainer.config import ProfileConfig
from trainer.profiles.base import Profile
from trainer.profiles.plain import PlainProfile

PROFILES: dict[str, type[Profile]] = {
    PlainProfile.name: PlainProfile,
}


def build_profile(config: ProfileConfig, seed: int) -> Profile:
    return PROFILES[config.name](config, seed)
