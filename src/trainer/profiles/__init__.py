"""Profile registry: `profile=<name>` on the command line picks the class registered here."""

from __future__ import annotations

from trainer.config.schema import ProfileConfig
from trainer.profiles.base import Profile
from trainer.profiles.emoji_think import EmojiThinkProfile
from trainer.profiles.plain import PlainProfile
from trainer.profiles.regime3 import Regime3Profile

PROFILES: dict[str, type[Profile]] = {
    PlainProfile.name: PlainProfile,
    EmojiThinkProfile.name: EmojiThinkProfile,
    Regime3Profile.name: Regime3Profile,
}


def build_profile(config: ProfileConfig, seed: int) -> Profile:
    return PROFILES[config.name](config, seed)
