"""Attention that stays within each example of a padding-free (packed) batch.

transformers' own `sdpa` handles packed batches by building a dense block-diagonal mask over the
whole packed length, whose cost grows with its square and which keeps SDPA off its fast kernels.
`sdpa_per_example` instead runs causal SDPA on each example's slice, located by the
`cu_seq_lens_q` boundaries the packing collator supplies: the same result, with the work of the
examples alone. Without those boundaries (evaluation without packing, generation) it is plain
`sdpa` with transformers' own masks.

The collator computes the boundaries once per batch on the host. On CUDA they travel to the
device with the batch and one variable-length flash-attention kernel per layer
(`torch.nn.attention.varlen`) takes them, with the longest segment as a host int: no
device-to-host copy. On the CPU they stay on the host, where reading them costs nothing, and SDPA
runs per example, outside any compiled graph (the loop's length is data, not shape).
"""

from __future__ import annotations

import inspect
import logging
from functools import cache
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
    max_length_q: int | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Causal attention per example: query/key/value are (1, heads, packed length, head dim)."""
    if cu_seq_lens_q is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if cu_seq_lens_q.is_cuda and max_length_q is not None and varlen_parameters():
        return varlen_attention(query, key, value, cu_seq_lens_q, max_length_q, kwargs.get("scaling")), None
    return sdpa_per_example(module, query, key, value, cu_seq_lens_q, **kwargs), None


@torch.compiler.disable
def sdpa_per_example(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    boundaries: torch.Tensor,
    **kwargs: Any,
) -> torch.Tensor:
    """SDPA on each example's slice; empty segments (token-budget batches pad with them) are skipped."""
    outputs = [
        sdpa_attention_forward(
            module, query[:, :, start:end], key[:, :, start:end], value[:, :, start:end], None, **kwargs
        )[0]
        for start, end in pairwise(boundaries.tolist())
        if end > start
    ]
    # sdpa_attention_forward returns (batch, length, heads, head dim): the examples join on the length.
    return torch.cat(outputs, dim=1)


@cache
def varlen_parameters() -> frozenset[str]:
    """The keyword arguments of torch's varlen attention; empty where this torch has none."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return frozenset()
    return frozenset(inspect.signature(varlen_attn).parameters)


def varlen_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    boundaries: torch.Tensor,
    longest: int,
    scaling: float | None,
) -> torch.Tensor:
    """One flash-attention kernel over all examples of the row; returns (1, length, heads, head dim)."""
    from torch.nn.attention.varlen import varlen_attn

    parameters = varlen_parameters()
    # Older torch spells causality is_causal and has no GQA flag (then the key/value heads are repeated).
    options: dict[str, Any] = {"window_size": (-1, 0)} if "window_size" in parameters else {"is_causal": True}
    if "enable_gqa" in parameters:
        options["enable_gqa"] = True
    elif key.shape[1] != query.shape[1]:
        groups = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    # (1, heads, length, head dim) -> (length, heads, head dim), the layout the kernel reads.
    query, key, value = (tensor[0].transpose(0, 1) for tensor in (query, key, value))
    if "scale" in parameters:
        options["scale"] = scaling
    output = varlen_attn(query, key, value, boundaries, boundaries, longest, longest, **options)
    return output.unsqueeze(0)


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
