"""Attention that stays within each example of a padding-free (packed) batch.

transformers' own `sdpa` handles packed batches by building a dense block-diagonal mask over the
whole packed length, whose cost grows with its square and which keeps SDPA off its fast kernels.
`sdpa_per_example` instead runs causal SDPA on each example's slice, located by the
`cu_seq_lens_q` boundaries the packing collator supplies: the same result, with the work of the
examples alone. Without those boundaries (evaluation without packing, generation) it is plain
`sdpa` with transformers' own masks.
"""

from __future__ import annotations

import logging
from itertools import pairwise
from typing import Any

import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

log = logging.getLogger(__name__)

PER_EXAMPLE_SDPA = "sdpa_per_example"
# These already keep attention within each example of a packed batch, from its position ids or boundaries.
PACKING_AWARE = ("flash_attention_2", "flash_attention_3", "flash_attention_4", "flex_attention")


def per_example_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    cu_seq_lens_q: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Causal SDPA per example: query/key/value are (1, heads, packed length, head dim)."""
    if cu_seq_lens_q is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    outputs = [
        sdpa_attention_forward(
            module, query[:, :, start:end], key[:, :, start:end], value[:, :, start:end], None, **kwargs
        )[0]
        for start, end in pairwise(cu_seq_lens_q.tolist())
    ]
    # sdpa_attention_forward returns (batch, length, heads, head dim): the examples join on the length.
    return torch.cat(outputs, dim=1), None


def per_example_sdpa_mask(
    *args: Any,
    attention_mask: torch.Tensor | None,
    q_length: int,
    kv_length: int,
    use_vmap: bool = False,
    **kwargs: Any,
) -> torch.Tensor | None:
    """No mask for a batch without padding, cache or custom mask functions: the attention applies
    causality per example itself. Anything else gets sdpa's own mask."""
    if attention_mask is None and q_length == kv_length and not use_vmap:
        return None
    return sdpa_mask(
        *args, attention_mask=attention_mask, q_length=q_length, kv_length=kv_length, use_vmap=use_vmap, **kwargs
    )


def use_per_example_attention(model: PreTrainedModel) -> None:
    """Switch an `sdpa` or `eager` model to per-example attention; packing-aware ones stay as they are."""
    current = model.config._attn_implementation
    if current in PACKING_AWARE or current == PER_EXAMPLE_SDPA:
        log.info("Packing: %s attention already keeps examples apart", current)
        return
    AttentionInterface.register(PER_EXAMPLE_SDPA, per_example_sdpa_attention)
    AttentionMaskInterface.register(PER_EXAMPLE_SDPA, per_example_sdpa_mask)
    model.set_attn_implementation(PER_EXAMPLE_SDPA)
    log.info("Packing: %s attention replaced by SDPA per example (no attention across examples)", current)
