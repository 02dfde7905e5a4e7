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
device-to-host copy. On the CPU they stay on the host, where reading them costs nothing, and
`causal_attention_per_segment` runs torch's CPU flash-attention kernel per example inside one
custom operator: a compiled model traces it as one opaque call (no graph break per layer), and its
backward writes each example's gradients straight into place instead of summing a zero-filled
full-length gradient per slice, as autograd does for sliced inputs. Measured at the bench's
shapes (a 1,536-token row of 8 examples, 4 heads, 2 key/value heads, head dim 64, forward and
backward, one thread), per-example flash attention beats one SDPA over the row with a
block-diagonal mask (about 5x the time: the masked kernel skips no blocks) and examples padded to
a batch (about 2x); flex_attention has no backward on the CPU.
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
    if query.device.type == "cpu" and not kwargs.get("dropout"):
        return causal_attention_per_segment(query, key, value, cu_seq_lens_q, kwargs.get("scaling"))[0], None
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


def segments(boundaries: torch.Tensor, length: int) -> list[tuple[int, int]]:
    """The non-empty (start, end) slices of the row; they must cover it whole, as the output and
    gradients of `causal_attention_per_segment` are filled in from them alone."""
    edges = boundaries.tolist()
    if edges[0] != 0 or edges[-1] != length:
        raise ValueError(f"packed boundaries {edges[0]}..{edges[-1]} do not cover the row of {length} tokens")
    return [(start, end) for start, end in pairwise(edges) if end > start]


# query (1, heads, length, head dim), key/value (1, key/value heads, length, head dim); returns the
# output as (1, length, heads, head dim), the layout the model reads, and the log-sum-exp the
# backward needs. Custom operators take no Python objects, hence the scale and not the module.
@torch.library.custom_op("trainer::causal_attention_per_segment", mutates_args=())
def causal_attention_per_segment(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, boundaries: torch.Tensor, scale: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    heads, length, head_dim = query.shape[1:]
    output = query.new_empty(1, length, heads, head_dim)
    logsumexp = []
    for start, end in segments(boundaries, length):
        piece, piece_logsumexp = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            query[:, :, start:end], key[:, :, start:end], value[:, :, start:end], 0.0, True, scale=scale
        )
        output[:, start:end] = piece.transpose(1, 2)
        logsumexp.append(piece_logsumexp)
    return output, torch.cat(logsumexp, dim=-1)


@causal_attention_per_segment.register_fake
def _(query, key, value, boundaries, scale):
    heads, length, head_dim = query.shape[1:]
    return query.new_empty(1, length, heads, head_dim), query.new_empty(1, heads, length, dtype=torch.float32)


@torch.library.custom_op("trainer::causal_attention_per_segment_backward", mutates_args=())
def causal_attention_per_segment_backward(
    grad_output: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    output: torch.Tensor,
    logsumexp: torch.Tensor,
    boundaries: torch.Tensor,
    scale: float | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    grads = [torch.empty_like(tensor) for tensor in (query, key, value)]
    for start, end in segments(boundaries, query.shape[2]):
        pieces = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
            grad_output[:, start:end].transpose(1, 2),
            query[:, :, start:end],
            key[:, :, start:end],
            value[:, :, start:end],
            output[:, start:end].transpose(1, 2),
            logsumexp[:, :, start:end],
            0.0,
            True,
            scale=scale,
        )
        for grad, piece in zip(grads, pieces, strict=True):
            grad[:, :, start:end] = piece
    return tuple(grads)


@causal_attention_per_segment_backward.register_fake
def _(grad_output, query, key, value, output, logsumexp, boundaries, scale):
    return tuple(torch.empty_like(tensor) for tensor in (query, key, value))


def keep_for_backward(ctx: Any, inputs: tuple, output: tuple) -> None:
    query, key, value, ctx.boundaries, ctx.scale = inputs
    ctx.save_for_backward(query, key, value, *output)


def attention_backward(ctx: Any, grad_output: torch.Tensor, _grad_logsumexp: torch.Tensor | None) -> tuple:
    query, key, value, output, logsumexp = ctx.saved_tensors
    grads = causal_attention_per_segment_backward(
        grad_output.contiguous(), query, key, value, output, logsumexp, ctx.boundaries, ctx.scale
    )
    return *grads, None, None


causal_attention_per_segment.register_autograd(attention_backward, setup_context=keep_for_backward)


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
    if reason := per_example_attention_inexact(model.config):
        log.warning(
            "Packing: SDPA per example leaves out %s: the losses differ from padded batches; "
            "data.packing=false trains this model exactly",
            reason,
        )


def packing_inexact(model: PreTrainedModel) -> str | None:
    """What packed batches would compute differently from padded ones for this model, or None:
    packing-aware attention keeps examples apart itself; SDPA per example takes the place of
    the others."""
    if model.config._attn_implementation in PACKING_AWARE:
        return None
    return per_example_attention_inexact(model.config)


def per_example_attention_inexact(config: Any) -> str | None:
    """What of the model's attention SDPA per example does not compute (it is causal and full, no
    more), or None where packed batches have the losses of padded ones."""
    layer_types = set(getattr(config, "layer_types", None) or ["full_attention"])
    if layer_types != {"full_attention"}:
        return f"its {', '.join(sorted(layer_types - {'full_attention'}))} layers"
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return f"its sliding window of {config.sliding_window} tokens"
    if getattr(config, "attn_logit_softcapping", None):
        return "its attention softcapping"
    return None
