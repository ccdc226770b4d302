"""Canvas attention (cached prompt + canvas, bidirectional, grouped KV heads) against its reference."""

import pytest
import torch

from dg_lsp.kernels import attention
from dg_lsp.kernels.attention import AttentionConfig, canvas_attention_reference, canvas_attention_triton

from ._marks import kernel_device, needs_cuda, needs_triton
from ._tolerances import float64, tolerance

pytestmark = needs_triton


def _inputs(b, h, hkv, c, s, d, cache_batch, device, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=g).to(device, dtype)

    q = rand(b, h, c, d)
    # The cache is read as a slice of a larger buffer (positions [3, 3 + s)), as KVCache.read returns it.
    cached_k = rand(cache_batch, hkv, s + 5, d)[:, :, 3 : 3 + s]
    cached_v = rand(cache_batch, hkv, s + 5, d)[:, :, 3 : 3 + s]
    # The canvas keys/values come from a [B, C, Hkv, D] projection, transposed.
    k = rand(b, c, hkv, d).transpose(1, 2)
    v = rand(b, c, hkv, d).transpose(1, 2)
    return q, cached_k, cached_v, k, v


@pytest.mark.parametrize(("b", "h", "hkv", "c", "s", "d", "cache_batch"), [
    (2, 4, 2, 5, 7, 40, 1),   # GQA, odd sizes, one cache for two canvases
    (1, 6, 2, 9, 0, 16, 1),   # nothing cached yet
    (2, 3, 3, 3, 21, 64, 2),  # one query head per KV head, a cache per canvas
    (1, 4, 1, 6, 11, 512, 1),  # DiffusionGemma's full-layer head size
])
def test_canvas_attention_matches_reference(b, h, hkv, c, s, d, cache_batch):
    inputs = _inputs(b, h, hkv, c, s, d, cache_batch, kernel_device(), seed=b * h * c + s)
    out = canvas_attention_triton(*inputs, config=AttentionConfig(16, 16, 4, 1))
    ref = canvas_attention_reference(*float64(*inputs))
    assert out.shape == ref.shape == (b, h, c, d)
    # The scores are sums of d products of unit-variance entries, of size sqrt(d); an error in
    # a score is the same relative error in its softmax weight, so in the output (|v| ~ 1).
    torch.testing.assert_close(out.double(), ref, **tolerance(torch.float32, d, magnitude=d**0.5))
    # Written in [B, C, H, D] order, so merging the heads needs no copy.
    assert out.transpose(1, 2).is_contiguous()


def test_dispatch_keeps_cpu_on_reference():
    inputs = _inputs(1, 4, 2, 5, 6, 32, 1, "cpu")
    assert torch.equal(attention.canvas_attention(*inputs), canvas_attention_reference(*inputs))


# -- compiled, on a GPU -------------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize(("hkv", "s", "d"), [(8, 1023, 256), (2, 3000, 512)], ids=["sliding", "full"])
def test_gpu_canvas_attention_bf16(hkv, s, d):
    inputs = _inputs(2, 16, hkv, 256, s, d, 1, "cuda", torch.bfloat16, seed=s)
    out = attention.canvas_attention(*inputs)
    ref = canvas_attention_reference(*(t.double() for t in inputs))
    assert (out.double() - ref).norm() / ref.norm() < 1e-2
