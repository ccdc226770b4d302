"""Matmul with quantized weights: weight-only int8, group-wise int4, and FP8 x FP8 (Hopper).

`y = x @ W.T` with W stored as in `quant_format` (payload + float32 scale). Two entry points,
each dispatching (like the other kernel modules) to a `_triton` host wrapper where
`kernels_usable`, else to a plain-torch `_reference` twin of the same signature:

- `quant_matmul(x, qweight, scale, fmt)`: a dense linear layer, x [M, K] -> [M, N].
- `grouped_quant_matmul(x, qweight, scale, fmt, pair_expert, fanout)`: routed experts. Pair p
  (a token-expert assignment) computes `x[p // fanout] @ W[pair_expert[p]].T`; the weights are
  [E, N, K]. Pairs are sorted by expert into blocks of BLOCK_M rows padded per expert
  (`align_pairs`, the vLLM fused-MoE layout), so one program reads one expert's weight tile
  once for up to BLOCK_M rows. The alignment uses only device-side torch ops of fixed output
  size, so it is CUDA-graph safe (no host sync).

Numerics. int8 / int4: weights are dequantized in registers to the activation dtype (bf16 on a
GPU; int4 through its bit pattern, exactly), the dot accumulates in float32; the int8
per-channel scale is applied once at the end, the int4 group scale to each K block's dot
(BLOCK_K divides the group size). fp8: activations are quantized per token to e4m3 on the host
side (two torch ops), the dot is fp8 x fp8 -> fp32 on tensor cores with its partial sums
promoted to float32 every K block, and both scales are applied at the end. Under the Triton
interpreter (TRITON_INTERPRET=1, the CPU tests) the operands are cast to float32 before
`tl.dot`: the interpreter gets bf16 and fp8 dots wrong or does not support them.

Tiles (`quant_tiles`): BLOCK_M by row count (16 / 64 / 128: a token, a canvas, a prompt
chunk), BLOCK_N, BLOCK_K, warps and stages autotuned on a GPU per (row bucket, N, K, group,
format, grouped, BLOCK_M) among six candidates, unless DG_LSP_AUTOTUNE=0 (the first candidate,
untuned). int4 needs the group size, fp8 K, to be a multiple of 16 (fp8: 32); other shapes use
the reference. Nothing is compiled or even decorated at import: the Triton half
(`_quant_matmul_triton`) is imported at the first launch. Without triton the host wrappers
raise; the dispatchers then never call them (see `kernels_usable`), and a kernel that fails on
the GPU is replaced by its reference (`call_with_fallback`), per format.
"""

from __future__ import annotations

import os

import torch

from . import _runtime
from ._runtime import KernelInputError, call_with_fallback, interpreting, triton_available, use_triton
from .quant_format import dequantize_weight, quantize_activations_fp8
from .quant_tiles import FORMAT_IDS as _FORMAT_ID
from .quant_tiles import MIN_DOT, PROMPT_BLOCK_M, default_tile, device_shared_limit, min_block_k


def kernels_usable(x: torch.Tensor, fmt: str, group: int | None = None) -> bool:
    """Whether a model layer should call the compiled kernel for activations `x`, format `fmt`
    (group: int4's group size, K otherwise): CUDA tensors with Triton, inference only (the
    CPU always takes the reference; the tests call the kernels through the interpreter)."""
    if not use_triton(x):
        return False
    if fmt in ("int4", "fp8") and (group or 0) % min_block_k(fmt):
        return False  # a K block must divide the group (int4) or K (fp8); dots need K blocks >= 16 (fp8: 32)
    # fp8 tensor-core dots need Ada/Hopper (sm_89+); elsewhere fp8 weights use the reference.
    return fmt != "fp8" or _runtime.device_capability(x.device) >= (8, 9)


# -- dispatch ------------------------------------------------------------------------------


def quant_matmul(x: torch.Tensor, qweight: torch.Tensor, scale: torch.Tensor, fmt: str) -> torch.Tensor:
    """x: [M, K] -> [M, N] in x's dtype: the kernel for CUDA inference, else the reference."""
    if kernels_usable(x, fmt, _group_size(x, scale, fmt)):
        return call_with_fallback(
            f"quant_matmul[{fmt}]", quant_matmul_triton, quant_matmul_reference, x, qweight, scale, fmt
        )
    return quant_matmul_reference(x, qweight, scale, fmt)


def grouped_quant_matmul(
    x: torch.Tensor, qweight: torch.Tensor, scale: torch.Tensor, fmt: str, pair_expert: torch.Tensor, fanout: int
) -> torch.Tensor:
    """x: [M, K]; qweight/scale per expert; pair_expert: [P] -> [P, N]; kernel or reference as above."""
    if kernels_usable(x, fmt, _group_size(x, scale, fmt)):
        return call_with_fallback(
            f"grouped_quant_matmul[{fmt}]", grouped_quant_matmul_triton, grouped_quant_matmul_reference,
            x, qweight, scale, fmt, pair_expert, fanout,
        )
    return grouped_quant_matmul_reference(x, qweight, scale, fmt, pair_expert, fanout)


def _group_size(x: torch.Tensor, scale: torch.Tensor, fmt: str) -> int:
    """int4's group size (columns per scale), K for the per-channel formats."""
    return x.shape[-1] // scale.shape[-1] if fmt == "int4" else x.shape[-1]


# -- reference twins ---------------------------------------------------------------------


def quant_matmul_reference(x: torch.Tensor, qweight: torch.Tensor, scale: torch.Tensor, fmt: str) -> torch.Tensor:
    """x: [M, K] -> [M, N] in x's dtype; float32 math (float64 for float64 x, the tests' exact
    reference). fp8 quantizes x per token first, as the kernel does."""
    compute = torch.promote_types(x.dtype, torch.float32)
    if fmt == "fp8":
        xq, xs = quantize_activations_fp8(x)
        y = (xq.to(compute) @ qweight.to(compute).T) * xs[:, None].to(compute) * scale.to(compute)[None, :]
        return y.to(x.dtype)
    w = dequantize_weight(qweight, scale, fmt, compute)
    return (x.to(compute) @ w.T).to(x.dtype)


def grouped_quant_matmul_reference(
    x: torch.Tensor, qweight: torch.Tensor, scale: torch.Tensor, fmt: str, pair_expert: torch.Tensor, fanout: int
) -> torch.Tensor:
    """x: [M, K]; qweight/scale: per expert [E, ...]; pair_expert: [P] -> [P, N] in x's dtype."""
    pairs = pair_expert.numel()
    out = torch.zeros(pairs, qweight.shape[1], dtype=x.dtype, device=x.device)
    rows = torch.arange(pairs, device=x.device) // fanout
    for e in torch.unique(pair_expert).tolist():
        (sel,) = torch.where(pair_expert == e)
        out[sel] = quant_matmul_reference(x[rows[sel]], qweight[e], scale[e], fmt)
    return out


# -- routing alignment (device-side, graph safe) ------------------------------------------


def align_pairs(pair_expert: torch.Tensor, num_experts: int, block_m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort pairs by expert into blocks of `block_m` rows, each expert's run padded to a block.

    pair_expert: [P] expert of each pair -> (sorted_pairs [capacity] pair ids, padding = P;
    block_expert [capacity // block_m]). capacity = P + E * (block_m - 1) rounded up to a block:
    a fixed bound, so the shapes do not depend on the routing (no host sync, graph capturable).
    Blocks past the used ones hold only padding; the kernel returns early on them.
    """
    pairs = pair_expert.numel()
    device = pair_expert.device
    capacity = -(-(pairs + num_experts * (block_m - 1)) // block_m) * block_m
    flat = pair_expert.reshape(-1).long()
    # counts via scatter_add (torch.bincount syncs on CUDA to find its size)
    counts = torch.zeros(num_experts, dtype=torch.long, device=device).scatter_add_(0, flat, torch.ones_like(flat))
    padded = (counts + block_m - 1) // block_m * block_m
    padded_end = torch.cumsum(padded, 0)
    padded_start = padded_end - padded
    start = torch.cumsum(counts, 0) - counts
    order = torch.sort(flat, stable=True).indices  # pair ids, grouped by expert
    sorted_expert = flat[order]
    dest = padded_start[sorted_expert] + torch.arange(pairs, device=device) - start[sorted_expert]
    sorted_pairs = torch.full((capacity,), pairs, dtype=torch.long, device=device).scatter_(0, dest, order)
    block_start = torch.arange(0, capacity, block_m, device=device)
    block_expert = torch.searchsorted(padded_end, block_start, right=True).clamp_max_(num_experts - 1)
    return sorted_pairs, block_expert


# -- tile configuration ------------------------------------------------------------------


def m_bucket(m: int) -> int:
    """Rows rounded up to a power of two, from 16; everything above 256 is one 'prompt' bucket
    (the autotuning key: sizes in one bucket share their tuned tiles)."""
    return 512 if m > 256 else max(MIN_DOT, 1 << (m - 1).bit_length())


def block_m_for(rows: int) -> int:
    """Rows per program: 16 for a token or a small canvas, 64 for canvases up to 256 rows
    (weight-bound either way: the weight tile is read once per program whatever BLOCK_M is),
    128 for prompt chunks. Three values keep the compiled variants few."""
    return MIN_DOT if rows <= MIN_DOT else (64 if rows <= 256 else PROMPT_BLOCK_M)


def grouped_block_m(pairs: int, experts: int) -> int:
    """Rows per program of a grouped matmul: each expert's run is padded to a whole block, so
    16 while experts see at most 16 pairs (a canvas over 128 experts), else 64."""
    return MIN_DOT if pairs // max(1, experts) <= MIN_DOT else 64


def autotuning(x: torch.Tensor) -> bool:
    """Whether launches on x's device are autotuned (CUDA, unless DG_LSP_AUTOTUNE=0: a first
    run on a new machine then starts at once, on the default tiles)."""
    return x.device.type == "cuda" and os.environ.get("DG_LSP_AUTOTUNE", "1") != "0"


def _check(x: torch.Tensor, qweight: torch.Tensor, scale: torch.Tensor, fmt: str, experts: bool) -> tuple[int, int, int]:
    if not triton_available():
        raise RuntimeError("triton is not installed: use the reference")
    if fmt not in _FORMAT_ID:
        raise KernelInputError(f"unknown quantization format {fmt!r}")
    if x.dim() != 2:
        raise KernelInputError(f"x must be [M, K], got {tuple(x.shape)}")
    if qweight.dim() != (3 if experts else 2):
        raise KernelInputError(f"qweight must be {'[E, N, K]' if experts else '[N, K]'}-shaped, got {tuple(qweight.shape)}")
    k = x.shape[1]
    n = qweight.shape[-2]
    stored_k = qweight.shape[-1] * (2 if fmt == "int4" else 1)
    if stored_k != k:
        raise KernelInputError(f"x has {k} columns but the {fmt} weight holds {stored_k}")
    group = k // scale.shape[-1] if fmt == "int4" else k
    if fmt in ("int4", "fp8") and group % min_block_k(fmt):
        # A K block must divide the group (int4) or K (fp8): the kernel has no K tail for them.
        raise KernelInputError(f"{fmt} needs {'the group size' if fmt == 'int4' else 'K'} ({group}) to be a multiple "
                               f"of {min_block_k(fmt)}: use the reference")
    return n, k, group


def _launch(x, qweight, scale, fmt, out, pairs, block_expert, m, p, fanout, block_m, group, grouped):
    n, k = qweight.shape[-2], x.shape[1]
    # float32 operands dot in float32 ("ieee", not TF32); fp8 dots in fp8 whatever x was.
    dot_fp32 = interpreting() or (fmt != "fp8" and x.dtype == torch.float32)
    if fmt == "fp8":
        x, x_scale = quantize_activations_fp8(x)
    else:
        x_scale = scale  # unused; any pointer will do
    # One code path for both modes: a dense weight is a single expert.
    w3 = qweight if grouped else qweight.unsqueeze(0)
    s3 = scale if grouped else scale.unsqueeze(0)
    strides_s = (s3.stride(0), s3.stride(1), s3.stride(2) if fmt == "int4" else 0)
    rows = p if grouped else m
    bucket = m_bucket(rows)
    args = (
        x, w3, s3, x_scale, out, pairs, block_expert,
        m, n, k, p, fanout, group, bucket,
        x.stride(0), x.stride(1),
        w3.stride(0), w3.stride(1), w3.stride(2),
        *strides_s,
        out.stride(0), out.stride(1),
    )
    meta = dict(FORMAT=_FORMAT_ID[fmt], GROUPED=grouped, BLOCK_M=block_m)
    programs_m = (pairs.numel() // block_m) if grouped else -(-m // block_m)
    from . import _quant_matmul_triton as impl  # imported at first launch: TRITON_INTERPRET is read then

    if autotuning(x):
        impl.launch_autotuned(programs_m, n, args, meta, dot_fp32)
    else:
        tiles = default_tile(fmt, group, block_m, device_shared_limit(x.device))
        impl.launch(programs_m, n, args, meta, tiles, dot_fp32)
    return out


def quant_matmul_triton(x: torch.Tensor, qweight: torch.Tensor, scale: torch.Tensor, fmt: str) -> torch.Tensor:
    """x: [M, K] (bf16/fp16/fp32) -> [M, N] in x's dtype. See the module docstring."""
    n, k, group = _check(x, qweight, scale, fmt, experts=False)
    m = x.shape[0]
    out = torch.empty(m, n, dtype=x.dtype, device=x.device)
    if m == 0:
        return out
    dummy = torch.zeros(1, dtype=torch.long, device=x.device)
    return _launch(x, qweight, scale, fmt, out, dummy, dummy, m, 0, 1, block_m_for(m), group, grouped=False)


def grouped_quant_matmul_triton(
    x: torch.Tensor, qweight: torch.Tensor, scale: torch.Tensor, fmt: str, pair_expert: torch.Tensor, fanout: int
) -> torch.Tensor:
    """x: [M, K]; qweight/scale per expert; pair_expert: [P] -> [P, N], row p = x[p // fanout] @ W[e_p].T."""
    n, k, group = _check(x, qweight, scale, fmt, experts=True)
    pairs = pair_expert.numel()
    out = torch.empty(pairs, n, dtype=x.dtype, device=x.device)
    if pairs == 0:
        return out
    block_m = grouped_block_m(pairs, qweight.shape[0])
    sorted_pairs, block_expert = align_pairs(pair_expert, qweight.shape[0], block_m)
    return _launch(x, qweight, scale, fmt, out, sorted_pairs, block_expert, x.shape[0], pairs, fanout,
                   block_m, group, grouped=True)
