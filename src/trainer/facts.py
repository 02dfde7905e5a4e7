"""The `Facts` validation checks a config against, gathered from this machine, the installed
transformers and trainer's registries (validation itself imports none of them)."""

from __future__ import annotations

import torch
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.trainer_utils import SchedulerType
from transformers.training_args import OptimizerNames

from trainer.config.validate import Facts
from trainer.modeling.tiny import ARCHITECTURES
from trainer.profiles import PROFILES


def gather_facts() -> Facts:
    cuda = torch.cuda.is_available()
    return Facts(
        cuda=cuda,
        bf16_supported=cuda and torch.cuda.is_bf16_supported(),
        optimizers=tuple(name.value for name in OptimizerNames),
        lr_schedulers=tuple(name.value for name in SchedulerType),
        attention_implementations=tuple(ALL_ATTENTION_FUNCTIONS.valid_keys()),
        profiles=tuple(PROFILES),
        tiny_architectures=tuple(ARCHITECTURES),
        profile_metrics={name: profile.eval_metrics for name, profile in PROFILES.items()},
    )
