"""`distributed.strategy` as the HF Trainer's own settings: DDP needs nothing beyond the launcher,
FSDP and DeepSpeed are `TrainingArguments` the Trainer hands on to accelerate."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import torch
from torch import nn
from transformers import Trainer

from trainer.config.schema import DistributedConfig

log = logging.getLogger(__name__)

# A parameter's bits read as integers of its own width (fp32 -> int32, bf16/fp16 -> int16).
INTEGER_OF_SIZE = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
# Elements summed at once: bounds the int64 copy the sum makes of a large embedding.
CHECKSUM_CHUNK = 1 << 24


def distributed_arguments(config: DistributedConfig) -> dict[str, Any]:
    """The `TrainingArguments` of the strategy; a single process ignores them all."""
    arguments: dict[str, Any] = {
        "ddp_backend": config.backend,
        # Every trainable parameter takes part in each step: spare DDP its per-step search for unused ones.
        "ddp_find_unused_parameters": False,
    }
    if config.deepspeed is not None:
        return arguments | {"deepspeed": config.deepspeed}
    if config.strategy == "fsdp":
        fsdp = config.fsdp
        arguments |= {
            "fsdp": True,
            "fsdp_config": {
                "version": 2,
                "reshard_after_forward": fsdp.reshard_after_forward,
                "cpu_offload": fsdp.cpu_offload,
                "activation_checkpointing": fsdp.activation_checkpointing,
                "state_dict_type": fsdp.state_dict_type,
            },
        }
    return arguments


def parameter_checksum(model: nn.Module) -> str:
    """A digest of the parameters this process holds: equal on every rank of a DDP run, so a
    rank whose weights drifted shows in its log. It sums each tensor's bit patterns as integers,
    on its device and in bounded chunks: exact and independent of the summation order, unlike
    a float sum, so it also matches the saved model loaded elsewhere."""
    digest = hashlib.sha256()
    with torch.no_grad():
        for name, parameter in sorted(model.named_parameters()):
            bits = parameter.detach().reshape(-1).view(INTEGER_OF_SIZE[parameter.element_size()])
            total = sum(int(chunk.sum(dtype=torch.int64)) for chunk in bits.split(CHECKSUM_CHUNK))
            digest.update(f"{name}:{total};".encode())
    return digest.hexdigest()[:16]


def log_replica_checksum(trainer: Trainer) -> None:
    """Under DDP, log this rank's parameter checksum into its own log: equal on every rank."""
    if trainer.args.world_size > 1 and not (trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled):
        checksum = parameter_checksum(trainer.model)
        log.info("Parameter checksum on rank %d: %s", trainer.args.process_index, checksum)
