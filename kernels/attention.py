"""Canvas attention: the decoder's bidirectional attention over the cached prompt and the canvas.

`canvas_attention(q, cached_k, cached_v, k, v)`:

- q: [B, H, C, D], the canvas queries;
- cached_k, cached_v: [B or 1, Hkv, S, D], the prompt's keys/values as the KV cache holds
  them (a sliding layer passes only its last `window - 1` positions; a batch-1 cache serves
  a batch of canvases);
- k, v: [B, Hkv, C, D], the canvas keys/values.

Returns [B, H, C, D]: softmax(q @ [cached_k; k]^T) @ [cached_v; v] with unit scale (q and
k are RMS-normed), no mask, query heads grouped over KV heads (H a multiple of Hkv). The
kernel reads the two key sources through two pointers instead of concatenating them, and
writes its output in [B, C, H, D] memory order (returned as a [B, H, C, D] view), so the
model's merge of the heads is a free reshape. Head sizes up to 512 (DiffusionGemma's full
layers) are supported.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import _runtime
from ._runtime import KernelInputError, call_with_fallback, interpreting, use_triton


def canvas_attention(
    q: torch.Tensor, cached_k: torch.Tensor, cached_v: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    if use_triton(q, cached_k, cached_v, k, v):
        return call_with_fallback(
            "canvas_attention", canvas_attention_triton, canvas_attention_reference, q, cached_k, cached_v, k, v
        )
    return canvas_attention_reference(q, cached_k, cached_v, k, v)


def canvas_attention_reference(
    q: torch.Tensor, cached_k: torch.Tensor, cached_v: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    if cached_k.shape[0] != k.shape[0]:  # several canvases over one cached prompt
        cached_k, cached_v = (t.expand(k.shape[0], -1, -1, -1) for t in (cached_k, cached_v))
    keys = torch.cat([cached_k, k], dim=2)
    values = torch.cat([cached_v, v], dim=2)
    return F.scaled_dot_product_attention(q, keys, values, scale=1.0, enable_gqa=q.shape[1] != keys.shape[1])


@dataclass(frozen=True)
class AttentionConfig:
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int


def default_config(head_dim: int, capability: tuple[int, int] = (9, 0)) -> AttentionConfig:
    """Tiles that keep a [block_m, D] float32 accumulator in registers (untuned guesses:
    benchmarks/kernels.py sweeps alternatives on the GPU). Before Hopper the MMA operands sit
    in registers too: with 64 keys per tile at D = 256 they spill there, 32 keys do not
    (tests/kernels/_compile_for_gpu.py)."""
    if head_dim <= 128:
        return AttentionConfig(64, 64, 4, 3)
    if head_dim <= 256:
        return AttentionConfig(64, 64, 8, 2) if capability >= (9, 0) else AttentionConfig(64, 32, 8, 2)
    return AttentionConfig(32, 32, 8, 2)


def canvas_attention_triton(
    q: torch.Tensor, cached_k: torch.Tensor, cached_v: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    *, config: AttentionConfig | None = None,
) -> torch.Tensor:
    from . import _attention_triton as kern

    b, h, c, d = q.shape
    bc, hkv, s, _ = cached_k.shape
    if h % hkv or k.shape != (b, hkv, c, d) or v.shape != k.shape:
        raise KernelInputError(f"shapes q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} do not match")
    if cached_v.shape != cached_k.shape or bc not in (1, b) or cached_k.shape[-1] != d:
        raise KernelInputError(f"cached keys/values {tuple(cached_k.shape)} / {tuple(cached_v.shape)} do not match q")
    q, cached_k, cached_v, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, cached_k, cached_v, k, v))
    config = config or default_config(d, _runtime.device_capability(q.device))
    group = h // hkv
    out = torch.empty(b, c, h, d, dtype=q.dtype, device=q.device).transpose(1, 2)  # [B, H, C, D] view

    def batch_stride(t: torch.Tensor) -> int:
        return 0 if t.shape[0] == 1 else t.stride(0)  # a batch-1 cache is shared by every canvas

    grid = (-(-group * c // config.block_m), hkv, b)
    kern._canvas_attention_kernel[grid](
        q, cached_k, cached_v, k, v, out,
        c, s, d, group,
        q.stride(0), q.stride(1), q.stride(2),
        batch_stride(cached_k), cached_k.stride(1), cached_k.stride(2),
        batch_stride(cached_v), cached_v.stride(1), cached_v.stride(2),
        k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2),
        out.stride(0), out.stride(1), out.stride(2),
        BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_D=max(16, 1 << (d - 1).bit_length()),
        DOT_FP32=interpreting() or q.dtype == torch.float32,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )
    return out
