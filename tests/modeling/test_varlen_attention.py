"""Packed attention gives what SDPA per example gives: on the CPU through one custom operator
(forward and gradients, traceable without a graph break), on CUDA through one varlen kernel over
the packed row. On a CPU machine the kernel is stood in for by a per-segment reference, which
checks the layout and arguments trainer hands it; with CUDA the real kernel is compared."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F

from trainer.config.schema import TinyModelConfig
from trainer.modeling import packed_attention
from trainer.modeling.packed_attention import causal_attention_per_segment, sdpa_per_example, varlen_attention
from trainer.modeling.tiny import build_model, build_tokenizer

BOUNDARIES = [0, 5, 17, 17, 30, 30]  # three examples, then empty segments, as token-budget batches have


def reference_varlen_attn(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, window_size, enable_gqa, scale):
    """varlen_attn's contract on (tokens, heads, head dim), one segment at a time."""
    assert window_size == (-1, 0) and enable_gqa and cu_seq_q is cu_seq_k
    assert query.shape[0] == int(cu_seq_q[-1]) and max_q >= int(cu_seq_q.diff().max())
    outputs = [
        F.scaled_dot_product_attention(
            *(tensor[start:end].transpose(0, 1) for tensor in (query, key, value)),
            is_causal=True, enable_gqa=True, scale=scale,
        ).transpose(0, 1)
        for start, end in pairwise(cu_seq_q.tolist())
    ]  # fmt: skip
    return torch.cat(outputs)


@pytest.fixture(scope="module")
def attention_module():
    return build_model("qwen3", TinyModelConfig(), build_tokenizer(512)).model.layers[0].self_attn


@pytest.fixture(autouse=True)
def fresh_signature():
    packed_attention.varlen_parameters.cache_clear()
    yield
    packed_attention.varlen_parameters.cache_clear()


def gap_to_per_example(attention_module, device: str, dtype: torch.dtype = torch.float32) -> float:
    attention_module = attention_module.to(device, dtype)
    heads, kv_heads, head_dim = 4, 2, attention_module.head_dim
    torch.manual_seed(0)
    query, key, value = (
        torch.randn(1, count, 30, head_dim, device=device, dtype=dtype) for count in (heads, kv_heads, kv_heads)
    )
    boundaries = torch.tensor(BOUNDARIES, dtype=torch.int32, device=device)
    scaling = attention_module.scaling
    varlen = varlen_attention(query, key, value, boundaries, 13, scaling)
    per_example = sdpa_per_example(attention_module, query, key, value, boundaries, scaling=scaling, dropout=0.0)
    assert varlen.shape == per_example.shape == (1, 30, heads, head_dim)
    return float((varlen.float() - per_example.float()).abs().max())


def test_varlen_attention_hands_the_kernel_the_layout_it_reads(attention_module, monkeypatch):
    import torch.nn.attention.varlen as varlen

    monkeypatch.setattr(varlen, "varlen_attn", reference_varlen_attn)
    assert gap_to_per_example(attention_module, "cpu") < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the varlen kernel needs CUDA")
def test_the_cuda_varlen_kernel_matches_sdpa_per_example(attention_module):
    assert gap_to_per_example(attention_module, "cuda", torch.bfloat16) < 2e-2


def projected_inputs(heads: int, kv_heads: int, head_dim: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Leaves shaped like projection outputs and the (1, heads, length, head dim) views the
    attention receives, strided as in the model."""
    torch.manual_seed(0)
    leaves = [torch.randn(1, 30, count * head_dim, requires_grad=True) for count in (heads, kv_heads, kv_heads)]
    return leaves, [leaf.view(1, 30, -1, head_dim).transpose(1, 2) for leaf in leaves]


def test_the_cpu_attention_operator_matches_sdpa_per_example_with_its_gradients(attention_module):
    boundaries = torch.tensor(BOUNDARIES, dtype=torch.int32)
    scaling, head_dim = attention_module.scaling, attention_module.head_dim
    leaves, views = projected_inputs(4, 2, head_dim)
    reference = sdpa_per_example(attention_module, *views, boundaries, scaling=scaling, dropout=0.0)
    output = causal_attention_per_segment(*views, boundaries, scaling)[0]
    upstream = torch.randn_like(reference)
    expected = torch.autograd.grad(reference, leaves, upstream)
    got = torch.autograd.grad(output, leaves, upstream)
    assert output.shape == (1, 30, 4, head_dim)
    assert float((output - reference).abs().max()) < 1e-6
    assert max(float((a - b).abs().max()) for a, b in zip(got, expected, strict=True)) < 1e-6


def test_the_cpu_attention_operator_compiles_without_a_graph_break(attention_module):
    boundaries = torch.tensor(BOUNDARIES, dtype=torch.int32)
    _, views = projected_inputs(4, 2, attention_module.head_dim)

    def attend(query, key, value, boundaries):
        return causal_attention_per_segment(query, key, value, boundaries, 0.25)[0].sum()

    compiled = torch.compile(attend, fullgraph=True, backend="aot_eager")
    assert torch.allclose(compiled(*views, boundaries), attend(*views, boundaries))


def test_boundaries_that_leave_part_of_the_row_uncovered_are_refused():
    _, views = projected_inputs(4, 2, 16)
    with pytest.raises(ValueError, match="do not cover the row of 30 tokens"):
        causal_attention_per_segment(*views, torch.tensor([0, 5, 17], dtype=torch.int32), None)
