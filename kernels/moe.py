"""Routed experts as a grouped matmul: DiffusionGemma's 128-expert, top-8 MoE layers.

`moe_experts(x, weights, index, gate_up_proj, down_proj)`:

- x: [N, H] expert inputs; weights: [N, K] routing weights (float32); index: [N, K] expert ids;
- gate_up_proj: [E, 2I, H] (rows [0, I) gate, [I, 2I) up); down_proj: [E, H, I].

Returns [N, H] in x's dtype: sum_k weights[n, k] * down_e(gelu_tanh(gate_e x) * up_e x)
with e = index[n, k].

The kernel path sorts the N * K (token, slot) pairs by expert on the device (no host sync),
runs one grouped matmul for gate and up together with the activation fused in, then one for
down with the routing weight fused in, each writing per-pair rows; the K rows of a token are
added up at the end. At a 256-token canvas with top-8 of 128 experts nearly every expert is
hit by ~16 pairs, so the work is dominated by reading each expert's weights once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._runtime import KernelInputError, call_with_fallback, interpreting, use_triton


def moe_experts(
    x: torch.Tensor, weights: torch.Tensor, index: torch.Tensor, gate_up_proj: torch.Tensor, down_proj: torch.Tensor
) -> torch.Tensor:
    if use_triton(x, index, gate_up_proj, down_proj):
        return call_with_fallback(
            "moe_experts", moe_experts_triton, moe_experts_reference, x, weights, index, gate_up_proj, down_proj
        )
    return moe_experts_reference(x, weights, index, gate_up_proj, down_proj)


def moe_experts_reference(
    x: torch.Tensor, weights: torch.Tensor, index: torch.Tensor, gate_up_proj: torch.Tensor, down_proj: torch.Tensor
) -> torch.Tensor:
    """The model's per-expert loop, operation for operation (the CPU path's numerics)."""
    out = torch.zeros_like(x)
    for e in torch.unique(index).tolist():
        token, slot = torch.where(index == e)
        gate, up = F.linear(x[token], gate_up_proj[e]).chunk(2, dim=-1)
        y = F.linear(F.gelu(gate, approximate="tanh") * up, down_proj[e]) * weights[token, slot, None]
        out.index_add_(0, token, y.to(out.dtype))
    return out


@dataclass(frozen=True)
class MoEConfig:
    block_m: int
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int


def default_config(n_pairs: int, num_experts: int) -> MoEConfig:
    """Row blocks about as tall as an expert's share of the pairs, so each expert's weights
    are read about once (untuned: benchmarks/kernels.py sweeps alternatives on the GPU)."""
    per_expert = max(1, n_pairs // max(1, num_experts))
    block_m = min(64, max(16, 1 << (per_expert - 1).bit_length()))
    return MoEConfig(block_m, 64, 64, 4, 3)


@dataclass
class Schedule:
    """The pairs sorted by expert, each expert's run padded to whole row blocks."""

    sorted_ids: torch.Tensor  # [blocks * block_m] int32: pair id (token * K + slot), n_pairs = padding
    block_expert: torch.Tensor  # [blocks] int32: the block's expert, E past the end


def schedule(index: torch.Tensor, num_experts: int, block_m: int) -> Schedule:
    """Built with device ops only: the number of blocks is bounded by
    ceil((N*K + E * (block_m - 1)) / block_m) without reading the counts back."""
    flat = index.reshape(-1).to(torch.int64)
    n_pairs = flat.numel()
    # scatter_add, not bincount: bincount reads its output size back to the host (a sync,
    # and no CUDA graph capture).
    counts = torch.zeros(num_experts, dtype=torch.int64, device=flat.device).scatter_add_(0, flat, torch.ones_like(flat))
    padded = (counts + block_m - 1) // block_m * block_m
    ends = padded.cumsum(0)
    starts = ends - padded
    order = torch.argsort(flat, stable=True)
    expert_of_sorted = flat[order]
    first_sorted = counts.cumsum(0) - counts
    rank = torch.arange(n_pairs, device=flat.device) - first_sorted[expert_of_sorted]
    blocks = -(-(n_pairs + num_experts * (block_m - 1)) // block_m)
    sorted_ids = torch.full((blocks * block_m,), n_pairs, dtype=torch.int32, device=flat.device)
    sorted_ids[starts[expert_of_sorted] + rank] = order.to(torch.int32)
    block_start = torch.arange(blocks, device=flat.device) * block_m
    block_expert = torch.searchsorted(ends, block_start, right=True).to(torch.int32)
    return Schedule(sorted_ids, block_expert)


def moe_experts_triton(
    x: torch.Tensor, weights: torch.Tensor, index: torch.Tensor, gate_up_proj: torch.Tensor, down_proj: torch.Tensor,
    *, config: MoEConfig | None = None,
) -> torch.Tensor:
    from . import _moe_triton as kern

    n, h = x.shape
    top_k = index.shape[1]
    e, two_i, _ = gate_up_proj.shape
    inter = two_i // 2
    if gate_up_proj.shape[2] != h or down_proj.shape != (e, h, inter) or weights.shape != index.shape:
        raise KernelInputError(
            f"shapes x {tuple(x.shape)}, gate_up {tuple(gate_up_proj.shape)}, down {tuple(down_proj.shape)}, "
            f"weights {tuple(weights.shape)}, index {tuple(index.shape)} do not match"
        )
    x, gate_up_proj, down_proj = (t if t.stride(-1) == 1 else t.contiguous() for t in (x, gate_up_proj, down_proj))
    n_pairs = n * top_k
    config = config or default_config(n_pairs, e)
    plan = schedule(index, e, config.block_m)
    blocks = plan.block_expert.numel()
    dot_fp32 = interpreting() or x.dtype == torch.float32
    launch = {"num_warps": config.num_warps, "num_stages": config.num_stages}
    meta = {"BLOCK_M": config.block_m, "BLOCK_N": config.block_n, "BLOCK_K": config.block_k, "DOT_FP32": dot_fp32}

    hidden = torch.empty(blocks * config.block_m, inter, dtype=x.dtype, device=x.device)  # per sorted slot
    kern._moe_gate_up_kernel[(blocks, -(-inter // config.block_n))](
        x, gate_up_proj, plan.block_expert, plan.sorted_ids, hidden,
        n_pairs, e, h, inter, top_k,
        x.stride(0), gate_up_proj.stride(0), gate_up_proj.stride(1), hidden.stride(0),
        **meta, **launch,
    )
    y = torch.empty(n_pairs, h, dtype=torch.float32, device=x.device)  # per (token, slot)
    routing = weights.reshape(-1).float().contiguous()
    kern._moe_down_kernel[(blocks, -(-h // config.block_n))](
        hidden, down_proj, plan.block_expert, plan.sorted_ids, routing, y,
        n_pairs, e, h, inter,
        hidden.stride(0), down_proj.stride(0), down_proj.stride(1), y.stride(0),
        **meta, **launch,
    )
    return y.view(n, top_k, h).sum(dim=1).to(x.dtype)
