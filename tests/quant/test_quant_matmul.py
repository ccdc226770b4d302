"""The quantized-matmul kernels against their reference twins (Triton interpreter on a CPU,
compiled on a GPU), fresh random inputs, odd shapes; and the references against the
unquantized matmul within the rounding bound."""

import importlib.util

import pytest
import torch
import torch.nn.functional as F

from dg_lsp.kernels.quant_format import dequantize_weight, quantize_activations_fp8, quantize_weight
from dg_lsp.kernels.quant_matmul import (
    align_pairs,
    grouped_quant_matmul_reference,
    grouped_quant_matmul_triton,
    m_bucket,
    quant_matmul_reference,
    quant_matmul_triton,
)

from ..kernels._tolerances import tolerance

needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# On a GPU the kernels dot in bf16 (8 mantissa bits); the interpreter dots in float32.
DTYPE = torch.bfloat16 if DEVICE == "cuda" else torch.float32


def assert_matches_float64_reference(got: torch.Tensor, x: torch.Tensor, reference, *args) -> None:
    """`got` against `reference(x, *args)` computed in float64 (x's values exactly). The
    inputs are unit-variance: the K-term sums are of size sqrt(K)."""
    k = x.shape[1]
    want = reference(x.double(), *args)
    torch.testing.assert_close(got.double(), want, **tolerance(DTYPE, k, magnitude=k**0.5))


def _rand(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(DEVICE)


@needs_triton
@pytest.mark.parametrize("fmt", ["int8", "int4", "fp8"])
@pytest.mark.parametrize("m,k,n", [(3, 64, 40), (37, 96, 72), (1, 32, 17)])
def test_dense_kernel_matches_reference(fmt, m, k, n):
    q, s = quantize_weight(_rand(n, k, seed=m + n), fmt, group_size=32)
    x = _rand(m, k, seed=k).to(DTYPE)
    assert_matches_float64_reference(quant_matmul_triton(x, q, s, fmt), x, quant_matmul_reference, q, s, fmt)


@needs_triton
def test_dense_kernel_handles_a_prompt_sized_input():
    q, s = quantize_weight(_rand(24, 48, seed=3), "int8")
    x = _rand(300, 48, seed=4).to(DTYPE)  # above 256 rows: the prompt bucket's tiles
    assert m_bucket(300) == 512
    assert_matches_float64_reference(quant_matmul_triton(x, q, s, "int8"), x, quant_matmul_reference, q, s, "int8")


@needs_triton
@pytest.mark.parametrize("fmt", ["int8", "int4", "fp8"])
def test_grouped_kernel_matches_reference(fmt):
    experts, tokens, top_k = 5, 11, 2
    q, s = quantize_weight(_rand(experts, 24, 64, seed=5), fmt, group_size=32)
    x = _rand(tokens, 64, seed=6).to(DTYPE)
    pair_expert = torch.randint(0, experts - 1, (tokens * top_k,), generator=torch.Generator().manual_seed(7)).to(DEVICE)
    got = grouped_quant_matmul_triton(x, q, s, fmt, pair_expert, top_k)  # expert 4 unused: an empty run
    assert_matches_float64_reference(got, x, grouped_quant_matmul_reference, q, s, fmt, pair_expert, top_k)


def test_align_pairs_sorts_by_expert_in_padded_blocks():
    pair_expert = torch.tensor([2, 0, 2, 2, 1, 0, 2])
    sorted_pairs, block_expert = align_pairs(pair_expert, num_experts=4, block_m=2)
    pad = pair_expert.numel()
    blocks = sorted_pairs.view(-1, 2)
    assert sorted_pairs.numel() % 2 == 0 and sorted_pairs.numel() >= pad + 4 * (2 - 1)
    for block, expert in zip(blocks.tolist(), block_expert.tolist()):
        real = [p for p in block if p != pad]
        assert all(pair_expert[p] == expert for p in real)
        assert real == block[: len(real)]  # padding only at a block's end
    assert sorted(p for p in sorted_pairs.tolist() if p != pad) == list(range(pad))


@pytest.mark.parametrize("fmt", ["int8", "int4"])
def test_integer_reference_error_is_within_the_rounding_bound(fmt):
    w, x = _rand(33, 64, seed=8).cpu(), _rand(9, 64, seed=9).cpu()
    q, s = quantize_weight(w, fmt, group_size=32)
    step = s[:, None].expand_as(w) if fmt == "int8" else s.repeat_interleave(32, dim=-1)
    bound = x.abs() @ (step / 2).T + 1e-5  # each weight is off by at most half a step
    assert torch.all((quant_matmul_reference(x, q, s, fmt) - F.linear(x, w)).abs() <= bound)


def test_fp8_reference_error_is_within_e4m3_precision():
    w, x = _rand(33, 64, seed=10).cpu(), _rand(9, 64, seed=11).cpu()
    q, s = quantize_weight(w, "fp8")
    _, xs = quantize_activations_fp8(x)
    # weights and activations each relative 2**-4 (normals) or 2**-10 * scale (subnormals)
    bound = (x.abs() @ w.abs().T) * (2 * 2**-4 + 2**-8)
    bound += 2**-10 * (x.abs().sum(-1, keepdim=True) * s[None, :] + xs[:, None] * w.abs().sum(-1)[None, :]) * 1.1 + 1e-5
    assert torch.all((quant_matmul_reference(x, q, s, "fp8") - F.linear(x, w)).abs() <= bound)


def test_reference_dequantizes_like_the_format():
    q, s = quantize_weight(_rand(7, 32, seed=12).cpu(), "int4", group_size=16)
    x = _rand(3, 32, seed=13).cpu()
    torch.testing.assert_close(quant_matmul_reference(x, q, s, "int4"), x @ dequantize_weight(q, s, "int4").T)


@needs_cuda
@needs_triton
def test_fp8_tensor_core_kernel_on_hopper():
    if torch.cuda.get_device_capability() < (8, 9):
        pytest.skip("FP8 tensor cores need sm_89+")
    q, s = quantize_weight(_rand(2816, 2816, seed=14), "fp8")
    x = _rand(256, 2816, seed=15).to(torch.bfloat16)
    got, want = quant_matmul_triton(x, q, s, "fp8").float(), quant_matmul_reference(x, q, s, "fp8").float()
    assert (got - want).abs().max() <= 1e-2 * want.abs().max()


@needs_triton
@pytest.mark.parametrize("fmt", ["int8", "int4", "fp8"])
def test_kernel_accumulates_a_long_k_exactly(fmt):
    """K = 8192 (the full layers' o_proj): 64 K blocks summed in float32. On Hopper the fp8
    MMA adds with fewer bits than float32, unless its partial sums are promoted every K block
    (`max_num_imprecise_acc`; the compile check asserts the promotion is in the code)."""
    q, s = quantize_weight(_rand(32, 8192, seed=16), fmt, group_size=128)
    x = _rand(16, 8192, seed=17).to(DTYPE)
    assert_matches_float64_reference(quant_matmul_triton(x, q, s, fmt), x, quant_matmul_reference, q, s, fmt)


@needs_triton
@pytest.mark.parametrize(("k", "group"), [(256, 128), (48, 16), (160, 32)])
def test_int4_kernel_for_each_group_size(k, group):
    """Groups of 128 take the default 128-deep K blocks, 16 and 32 the fallback tiles
    (BLOCK_K = the largest power of two dividing the group): one scale per K block either way."""
    q, s = quantize_weight(_rand(40, k, seed=k), "int4", group_size=group)
    assert s.shape[-1] == k // group
    x = _rand(19, k, seed=k + 1).to(DTYPE)
    assert_matches_float64_reference(quant_matmul_triton(x, q, s, "int4"), x, quant_matmul_reference, q, s, "int4")
