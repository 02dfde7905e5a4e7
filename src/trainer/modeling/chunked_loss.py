"""The causal-LM loss from the hidden states, without the logits of the whole batch.

At a real vocabulary (Qwen3: 151,936 tokens) the logits are a step's largest activation: 4 bytes
x vocabulary per labelled position in fp32, and the log-softmax and its gradient as much again.
Here the model's output head hands its input on instead (`LinearCrossEntropyLoss.hidden_states_out`:
the model still selects the labelled positions with `logits_to_keep`), and the loss multiplies
those hidden states with the head's weight itself:

- `chunked`: `ChunkedLinearCrossEntropy`, a few hundred positions at a time: at most one chunk of
  logits exists at once, on any device, with no extra package.
- `liger` / `cce`: the fused kernels of Liger Kernel and Apple's Cut Cross-Entropy (CUDA only).

The chunked loss runs outside the model's forward, so a compiled model (`train.torch_compile`)
compiles as before: the chunks are never traced, and no chunk breaks its graph.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import MethodType
from typing import Any

import torch
from torch import nn

from trainer.data.packing import next_token_targets, token_mean

log = logging.getLogger(__name__)

# Config keys of families whose forward changes the head's output before it is the logits (Gemma 2's
# softcapping, Cohere's and Granite's scaling, muP multipliers): the loss from the hidden states
# would leave that out, so these keep the unchunked loss.
LOGIT_TRANSFORMS = (
    "final_logit_softcapping",
    "logit_scale",
    "logits_scaling",
    "output_multiplier",
    "lm_head_multiplier",
    "logits_mup_width_multiplier",
)
# (hidden states (N, H), head weight (V, H), targets (N,)) -> the summed loss of the N positions.
SummedLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """The summed cross-entropy of `hidden @ weight.T` against `targets`, `chunk_size` positions at
    a time. The gradients are computed in the forward, chunk by chunk, while each chunk's logits
    exist (as Liger's fused kernel does): recomputing the logits in the backward would repeat the
    head's matmul, which at a large vocabulary is most of a small model's step. The backward only
    scales them. Logits are upcast to fp32, as transformers' own loss does."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_size: int, grads: bool):
        # The forward runs with autograd off: whether a backward will follow is the caller's `grads`.
        needs_hidden, needs_weight = (grads and needed for needed in ctx.needs_input_grad[:2])
        inputs = hidden.to(weight.dtype)
        grad_hidden = torch.empty_like(inputs) if needs_hidden else None
        # fp32 whatever the weight's dtype: the chunks' contributions add up without rounding.
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if needs_weight else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, len(targets), chunk_size):
            chunk, chunk_targets = inputs[start : start + chunk_size], targets[start : start + chunk_size]
            logits = (chunk @ weight.T).float()
            target_logits = logits.gather(1, chunk_targets[:, None])
            maxima = logits.amax(dim=1, keepdim=True)
            # In place from here: the chunk's logits become its softmax, then its gradient.
            sums = logits.sub_(maxima).exp_().sum(dim=1, keepdim=True)
            total += (maxima + sums.log() - target_logits).sum()
            if grad_hidden is None and grad_weight is None:
                continue
            logits.div_(sums).scatter_add_(1, chunk_targets[:, None], torch.full_like(target_logits, -1.0))
            grad_logits = logits.to(weight.dtype)
            if grad_hidden is not None:
                torch.matmul(grad_logits, weight, out=grad_hidden[start : start + chunk_size])
            if grad_weight is None:
                continue
            if weight.dtype == torch.float32:
                grad_weight.addmm_(grad_logits.T, chunk)  # no (vocabulary, hidden) temporary per chunk
            else:
                grad_weight += (grad_logits.T @ chunk).float()
        ctx.hidden_dtype, ctx.weight_dtype, ctx.spent = hidden.dtype, weight.dtype, False
        ctx.save_for_backward(grad_hidden, grad_weight)
        return total

    @staticmethod
    def backward(ctx, grad_total: torch.Tensor):
        # Scaled in place: a copy of the (vocabulary, hidden) gradient would add to the step's peak.
        # The graph is then spent, as with retain_graph=False, which is how a training step runs.
        if ctx.spent:
            raise RuntimeError("the chunked cross-entropy's gradients were already used by a backward")
        ctx.spent = True
        grad_hidden, grad_weight = ctx.saved_tensors
        if grad_hidden is not None:
            grad_hidden = grad_hidden.mul_(grad_total).to(ctx.hidden_dtype)
        if grad_weight is not None:
            grad_weight = grad_weight.mul_(grad_total).to(ctx.weight_dtype)
        return grad_hidden, grad_weight, None, None, None


def chunked_cross_entropy(chunk_size: int) -> SummedLoss:
    def summed(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return ChunkedLinearCrossEntropy.apply(hidden, weight, targets, chunk_size, torch.is_grad_enabled())

    return summed


def liger_cross_entropy() -> SummedLoss:
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    fused = LigerFusedLinearCrossEntropyLoss(reduction="sum")

    def summed(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return fused(weight, hidden, targets)

    return summed


def cce_cross_entropy() -> SummedLoss:
    from cut_cross_entropy import linear_cross_entropy

    def summed(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return linear_cross_entropy(hidden, weight, targets, reduction="sum")

    return summed


@dataclass(frozen=True)
class LinearCrossEntropyLoss:
    """The Trainer's `compute_loss_func` while the model's head hands on the hidden states of the
    positions `logits_to_keep` selected (every position whose next token is a label, in order):
    token-mean cross-entropy over the accumulated batch, as transformers' own loss computes it."""

    head: nn.Module
    summed: SummedLoss

    def __call__(self, outputs: Any, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None):
        targets = next_token_targets(labels)
        return token_mean(self.summed(outputs.logits, self.head.weight, targets), targets, num_items_in_batch)

    @contextmanager
    def hidden_states_out(self) -> Iterator[None]:
        """The model's forward returns the kept hidden states as its `logits` within this block
        (the loss's), and real logits outside it (generation, previews)."""
        self.head.emits_hidden_states = True
        try:
            yield
        finally:
            self.head.emits_hidden_states = False


def hidden_states_loss(model: nn.Module, fused_loss: str, chunk_size: int | None) -> LinearCrossEntropyLoss | None:
    """The loss from the hidden states that `train.fused_loss` / `train.loss_chunk_size` ask for,
    or None for the unchunked loss: asked for, or a model whose head output is not the logits as
    they are (said in the log)."""
    if fused_loss == "none" and chunk_size is None:
        return None
    head = model.get_output_embeddings()
    if reason := unchunkable_reason(model, head):
        log.warning("The loss is computed from the whole logits: %s", reason)
        return None
    summed = {"liger": liger_cross_entropy, "cce": cce_cross_entropy}.get(fused_loss)
    pass_hidden_states_through(head)
    log.info("Loss: %s", f"{fused_loss} fused kernel" if summed else f"chunked, {chunk_size} positions at a time")
    return LinearCrossEntropyLoss(head, summed() if summed else chunked_cross_entropy(chunk_size))


def unchunkable_reason(model: nn.Module, head: nn.Module | None) -> str | None:
    """Why the loss cannot be computed from the hidden states and the head's weight, if it cannot."""
    # peft's modules_to_save trains a copy of the head: a wrapper whose `weight` is the active copy's.
    linear = getattr(head, "original_module", head)
    if type(linear) is not nn.Linear or linear.bias is not None:
        return f"the output head is a {type(linear).__name__}, not a linear layer without bias"
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if "logits_to_keep" not in inspect.signature(base.forward).parameters:
        return f"{type(base).__name__} takes no logits_to_keep to select the labelled positions"
    configs = [model.config, getattr(model.config, "text_config", None)]
    transforms = [
        key for key in LOGIT_TRANSFORMS for config in configs if getattr(config, key, None) not in (None, 1.0)
    ]
    if transforms:
        return f"the model's forward transforms the logits ({', '.join(transforms)})"
    return None


def pass_hidden_states_through(head: nn.Module) -> None:
    """Give `head` a forward that returns its input while `head.emits_hidden_states` is set. The
    method is the instance's own: the module's class, weights and state dict stay as they are."""
    original = type(head).forward

    def forward(self: nn.Module, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return hidden_states if self.emits_hidden_states else original(self, hidden_states, *args, **kwargs)

    head.emits_hidden_states = False
    head.forward = MethodType(forward, head)
