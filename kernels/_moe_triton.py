"""Triton kernels behind `moe.py`; imported only when they are launched.

Both kernels walk a schedule of row blocks: the (token, slot) pairs sorted by expert, each
expert's run padded to a multiple of BLOCK_M, so every block belongs to one expert and
reads that expert's weights once for all its rows. Blocks past the schedule's end (their
expert is E) exit at once; that keeps the grid size known without a device sync.
"""

from __future__ import annotations

import triton
import triton.language as tl

# A constexpr: compiled kernels may read only constexpr globals (a plain float is a NameError).
_SQRT_2_OVER_PI = tl.constexpr(0.7978845608028654)


@triton.jit
def _gelu_tanh(x):
    # 0.5 * (1 + tanh(u)) == sigmoid(2u)
    # tensor first: the interpreter cannot multiply a constexpr global by a tensor
    return x * tl.sigmoid((x + 0.044715 * x * x * x) * (2.0 * _SQRT_2_OVER_PI))


@triton.jit
def _moe_gate_up_kernel(
    # pointers
    x_ptr, gate_up_ptr, block_expert_ptr, sorted_ids_ptr, hidden_ptr,
    # sizes
    n_pairs, E, H, I, TOP_K,
    # strides
    stride_x_n, stride_gu_e, stride_gu_r, stride_hidden_r,
    # meta-parameters
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    DOT_FP32: tl.constexpr,
):
    """hidden[slot] = gelu_tanh(x @ gate^T) * (x @ up^T) for one block of sorted pairs and
    BLOCK_N intermediate columns: gate and up share every load of x."""
    pid_block = tl.program_id(0)
    pid_n = tl.program_id(1)
    expert = tl.load(block_expert_ptr + pid_block).to(tl.int64)
    if expert >= E:
        return
    slots = pid_block * BLOCK_M + tl.arange(0, BLOCK_M)
    pair = tl.load(sorted_ids_ptr + slots)
    pair_ok = pair < n_pairs
    token = (pair // TOP_K).to(tl.int64)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < I
    gate_rows = gate_up_ptr + expert * stride_gu_e + cols.to(tl.int64) * stride_gu_r
    up_rows = gate_rows + I * stride_gu_r

    acc_gate = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    acc_up = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for k0 in range(0, H, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < H
        a = tl.load(x_ptr + token[:, None] * stride_x_n + ks[None, :], mask=pair_ok[:, None] & k_ok[None, :], other=0.0)
        w_mask = col_ok[:, None] & k_ok[None, :]
        w_gate = tl.load(gate_rows[:, None] + ks[None, :], mask=w_mask, other=0.0)
        w_up = tl.load(up_rows[:, None] + ks[None, :], mask=w_mask, other=0.0)
        if DOT_FP32:
            a = a.to(tl.float32)
            w_gate = w_gate.to(tl.float32)
            w_up = w_up.to(tl.float32)
        # "ieee": float32 operands (DOT_FP32) get a true fp32 dot, not TF32; bf16 ones ignore it.
        acc_gate += tl.dot(a, tl.trans(w_gate), input_precision="ieee")
        acc_up += tl.dot(a, tl.trans(w_up), input_precision="ieee")
    hidden = _gelu_tanh(acc_gate) * acc_up
    out = hidden_ptr + slots[:, None].to(tl.int64) * stride_hidden_r + cols[None, :]
    tl.store(out, hidden.to(hidden_ptr.dtype.element_ty), mask=pair_ok[:, None] & col_ok[None, :])


@triton.jit
def _moe_down_kernel(
    # pointers
    hidden_ptr, down_ptr, block_expert_ptr, sorted_ids_ptr, weights_ptr, y_ptr,
    # sizes
    n_pairs, E, H, I,
    # strides
    stride_hidden_r, stride_down_e, stride_down_r, stride_y_r,
    # meta-parameters
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    DOT_FP32: tl.constexpr,
):
    """y[pair] = routing weight * (hidden @ down^T) for one block and BLOCK_N output columns,
    written at the pair's own row so the sum over a token's experts needs no atomics."""
    pid_block = tl.program_id(0)
    pid_n = tl.program_id(1)
    expert = tl.load(block_expert_ptr + pid_block).to(tl.int64)
    if expert >= E:
        return
    slots = pid_block * BLOCK_M + tl.arange(0, BLOCK_M)
    pair = tl.load(sorted_ids_ptr + slots)
    pair_ok = pair < n_pairs
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < H
    w_rows = down_ptr + expert * stride_down_e + cols.to(tl.int64) * stride_down_r

    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for k0 in range(0, I, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_ok = ks < I
        a = tl.load(
            hidden_ptr + slots[:, None].to(tl.int64) * stride_hidden_r + ks[None, :],
            mask=pair_ok[:, None] & k_ok[None, :], other=0.0,
        )
        w = tl.load(w_rows[:, None] + ks[None, :], mask=col_ok[:, None] & k_ok[None, :], other=0.0)
        if DOT_FP32:
            a = a.to(tl.float32)
            w = w.to(tl.float32)
        acc += tl.dot(a, tl.trans(w), input_precision="ieee")  # as in the gate/up kernel
    routing = tl.load(weights_ptr + pair, mask=pair_ok, other=0.0).to(tl.float32)
    acc = acc * routing[:, None]
    out = y_ptr + pair[:, None].to(tl.int64) * stride_y_r + cols[None, :]
    tl.store(out, acc, mask=pair_ok[:, None] & col_ok[None, :])
