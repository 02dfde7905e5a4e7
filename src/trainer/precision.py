"""Precision is one setting: it decides the model's dtype and the Trainer's mixed-precision flags."""

from __future__ import annotations

from dataclasses import dataclass

import torch

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class PrecisionPlan:
    model_dtype: torch.dtype
    bf16: bool
    fp16: bool


def plan_precision(name: str) -> PrecisionPlan:
    # fp16 keeps fp32 master weights: the grad scaler refuses to unscale fp16 gradients.
    plans = {
        "fp32": PrecisionPlan(torch.float32, bf16=False, fp16=False),
        "bf16": PrecisionPlan(torch.bfloat16, bf16=True, fp16=False),
        "fp16": PrecisionPlan(torch.float32, bf16=False, fp16=True),
    }
    return plans[name]


def precision_problems(name: str) -> list[str]:
    """Why this machine cannot train in `name`, as messages naming the setting to change."""
    if name not in PRECISIONS:
        return [f"precision={name} is unknown; choose one of {', '.join(PRECISIONS)}"]
    cuda = torch.cuda.is_available()
    if name == "fp16" and not cuda:
        return [
            "precision=fp16 needs a CUDA GPU and none is available (on CPU it would silently "
            "train in fp32); use precision=fp32, or precision=bf16"
        ]
    if name == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        return ["precision=bf16 is not supported by this GPU; use precision=fp16 or precision=fp32"]
    return []


def precision_warning(name: str) -> str | None:
    """A warning for settings that work but cost far more than the user likely expects."""
    if name == "bf16" and not torch.cuda.is_available() and not torch.cpu._is_amx_tile_supported():
        return (
            "precision=bf16 on this CPU is emulated (no AMX) and far slower than fp32 "
            "(about 28x measured on a 2-core AVX-512 machine); use precision=fp32 on CPU"
        )
    return None
