"""The numeric building blocks the model calls.

Every function here is a plain-torch reference with a fixed signature, so a faster
implementation (Triton on CUDA) can be swapped in by rebinding the name without touching
the model's structure. The three imported from `dg_lsp.kernels` already dispatch: their
Triton kernel for CUDA tensors at inference, else their torch reference twin, which
computes exactly what the model computed before the kernels existed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dg_lsp.kernels.attention import canvas_attention  # noqa: F401  (decoder: cached prompt + canvas)
from dg_lsp.kernels.moe import moe_experts  # noqa: F401  (routed experts, grouped matmul)
from dg_lsp.kernels.sampling import soft_embeddings  # noqa: F401  (self-conditioning input)


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """Gemma-4 RMSNorm: computed in float32, scaled by `weight` itself (not 1 + weight)."""
    x32 = x.float()
    out = x32 * torch.pow(x32.pow(2).mean(-1, keepdim=True) + eps, -0.5)
    if weight is not None:
        out = out * weight.float()
    return out.type_as(x)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [B, T, heads, D]; cos, sin: [B or 1, T, D]."""
    return x * cos.unsqueeze(2) + rotate_half(x) * sin.unsqueeze(2)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Grouped-query attention with unit scale (q and k are RMS-normed instead).

    q: [B, H, T, D]; k, v: [B, Hkv, S, D]; mask: bool [T, S] (True = may attend) or None
    for full bidirectional attention. Returns [B, H, T, D].
    """
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0, enable_gqa=q.shape[1] != k.shape[1])


def softcap(logits: torch.Tensor, cap: float | None) -> torch.Tensor:
    if not cap:
        return logits
    return torch.tanh(logits / cap) * cap


def rope_inv_freq(head_dim: int, theta: float, rope_type: str, partial_rotary_factor: float) -> torch.Tensor:
    """Inverse frequencies, one per pair of head dimensions ([head_dim // 2] for proportional RoPE).

    "default" rotates the first `head_dim * factor` dimensions; "proportional" (full-attention
    layers) keeps frequencies computed over the whole head and sets the rest to zero, which
    leaves those dimensions unrotated. Built on the CPU even while the model is built on the
    meta device, since these are computed, not loaded.
    """
    if rope_type == "proportional":
        angles = int(partial_rotary_factor * head_dim // 2)
        rotated = 1.0 / theta ** (torch.arange(0, 2 * angles, 2, dtype=torch.float, device="cpu") / head_dim)
        return torch.cat([rotated, torch.zeros(head_dim // 2 - angles, device="cpu")])
    dim = int(head_dim * partial_rotary_factor)
    return 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float, device="cpu") / dim)


def rope_cos_sin(positions: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """positions: [B or 1, T] -> cos, sin: [B or 1, T, 2 * len(inv_freq)] in `dtype`."""
    freqs = positions[..., None].float() * inv_freq.to(positions.device)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def sliding_causal_mask(q_start: int, q_len: int, k_start: int, k_len: int, window: int | None, device) -> torch.Tensor:
    """Causal mask for queries at positions [q_start, q_start + q_len) over keys at
    [k_start, k_start + k_len); with a window, a query sees itself and the window - 1 before it."""
    q_pos = torch.arange(q_start, q_start + q_len, device=device)[:, None]
    k_pos = torch.arange(k_start, k_start + k_len, device=device)[None, :]
    mask = k_pos <= q_pos
    if window is not None:
        mask &= k_pos > q_pos - window
    return mask


def embed_scale(hidden_size: int, dtype: torch.dtype) -> torch.Tensor:
    # Kept in the weights' dtype, as the reference does (sqrt(3072) becomes 55.5 in bf16).
    return torch.tensor(math.sqrt(hidden_size), dtype=torch.float32).to(dtype)
