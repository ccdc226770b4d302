"""The stored layout of quantized weights, and its plain-torch quantize / dequantize.

A weight `W` of shape [N, K] (N outputs, K inputs; experts add a leading E) is stored as a
payload and a float32 scale, always quantized symmetrically along K (the reduced dimension):

- "int8": payload int8 [N, K], `q = round(W / s)` in [-127, 127]; scale [N], one per output
  channel, `s = max|W[n]| / 127`.
- "int4": payload uint8 [N, K // 2], two weights per byte: column 2j in the low nibble, column
  2j + 1 in the high nibble, each stored as `q + 8` with `q = round(W / s)` in [-8, 7]; scale
  [N, K // G], one per group of G consecutive input columns (`s = max|W[n, group]| / 7`).
  G divides K and is even; the group size is `K // scale.shape[-1]`.
- "fp8": payload float8_e4m3fn [N, K], `q = W / s` rounded to e4m3; scale [N],
  `s = max|W[n]| / 448` (448 is e4m3's largest finite value). At run time the activations are
  quantized the same way per token (`quantize_activations_fp8`), so the matmul runs in FP8.

`W ~= dequantize_weight(q, s, fmt)`; the error bound per element is s / 2 for the integer
formats and a relative 2**-4 for e4m3 (3 mantissa bits).

This module imports only torch: the checkpoint writer, the loader and the kernels' reference
twins share it.
"""

from __future__ import annotations

import math

import torch

FORMATS = ("int8", "int4", "fp8")
FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = 448.0
_TINY = 1e-12  # an all-zero row gets a tiny scale instead of a division by zero


def int4_group_size(k: int, group_size: int) -> int | None:
    """The group size used for a K-wide weight: `group_size` when it divides K, else the largest
    even common divisor (so small models still quantize); None when K is odd (no packing)."""
    g = math.gcd(k, group_size)
    if g % 2:
        return None
    return g


def quantize_weight(w: torch.Tensor, fmt: str, group_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """w: [..., N, K] float -> (payload, scale float32) in the layout above. Runs on w's device."""
    w32 = w.float()
    if fmt == "int8":
        scale = (w32.abs().amax(dim=-1) / 127.0).clamp_min(_TINY)
        q = torch.round(w32 / scale[..., None]).clamp_(-127, 127).to(torch.int8)
        return q, scale
    if fmt == "fp8":
        scale = (w32.abs().amax(dim=-1) / FP8_MAX).clamp_min(_TINY)
        return (w32 / scale[..., None]).clamp_(-FP8_MAX, FP8_MAX).to(FP8_DTYPE), scale
    if fmt == "int4":
        *lead, n, k = w32.shape
        g = int4_group_size(k, group_size)
        if g is None:
            raise ValueError(f"int4 needs an even number of input columns, got {k}")
        grouped = w32.reshape(*lead, n, k // g, g)
        scale = (grouped.abs().amax(dim=-1) / 7.0).clamp_min(_TINY)  # [..., N, K // G]
        q = torch.round(grouped / scale[..., None]).clamp_(-8, 7).reshape(*lead, n, k).to(torch.int16) + 8
        packed = (q[..., 0::2] | (q[..., 1::2] << 4)).to(torch.uint8)  # [..., N, K // 2]
        return packed, scale
    raise ValueError(f"unknown quantization format {fmt!r}; expected one of {FORMATS}")


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """uint8 [..., N, K // 2] -> int8 [..., N, K] with values in [-8, 7]."""
    low = (packed & 0xF).to(torch.int8) - 8
    high = (packed >> 4).to(torch.int8) - 8
    return torch.stack([low, high], dim=-1).flatten(-2)


def dequantize_weight(q: torch.Tensor, scale: torch.Tensor, fmt: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(payload, scale) -> [..., N, K] in `dtype` (computed in float32)."""
    if fmt == "int4":
        values = unpack_int4(q).float()
        *lead, n, k = values.shape
        groups = scale.shape[-1]
        return (values.reshape(*lead, n, groups, k // groups) * scale[..., None].float()).reshape(*lead, n, k).to(dtype)
    if fmt in ("int8", "fp8"):
        return (q.float() * scale[..., None].float()).to(dtype)
    raise ValueError(f"unknown quantization format {fmt!r}; expected one of {FORMATS}")


def quantize_activations_fp8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x: [M, K] -> (float8_e4m3fn [M, K], float32 scale [M]), one scale per token (row)."""
    x32 = x.float()
    scale = (x32.abs().amax(dim=-1) / FP8_MAX).clamp_min(_TINY)
    return (x32 / scale[:, None]).clamp_(-FP8_MAX, FP8_MAX).to(FP8_DTYPE), scale


def payload_shape(n: int, k: int, fmt: str) -> tuple[int, int]:
    return (n, k // 2) if fmt == "int4" else (n, k)


def payload_dtype(fmt: str) -> torch.dtype:
    return {"int8": torch.int8, "int4": torch.uint8, "fp8": FP8_DTYPE}[fmt]
