"""The Triton half of `quant_matmul`: the kernel, its autotuning, its launch.

Imported by the host wrappers at their first launch, never at package import: whether
@triton.jit interprets or compiles is decided when the kernel is defined, and the tests set
TRITON_INTERPRET=1 only once collected. Layouts, numerics and the tile tables: see
`quant_matmul` and `quant_tiles`.

The kernel computes the transposed product, out^T tile [BLOCK_N, BLOCK_M] = W tile @ x^T
tile ("swap AB"): the weight is the dot's first operand, which a tensor-core MMA may take
from registers, so a weight dequantized in registers goes straight into the MMA without a
round trip through shared memory; and the MMA's row dimension is BLOCK_N (64-256), which
Hopper's warp-group MMA needs (>= 64), while the few canvas tokens (16-64) are its column
dimension.
"""

from __future__ import annotations

import inspect

import triton
import triton.language as tl

from .quant_tiles import autotune_configs, prune_configs

# -- the kernel --------------------------------------------------------------------------


@triton.jit
def _unpack_int4_bf16(packed):
    """uint8 [R, C] (column 2j in the low nibble, 2j + 1 in the high one, each stored as q + 8)
    -> bfloat16 [R, 2C] holding q exactly. 0x4300 | n is the bf16 bit pattern of 128 + n
    (n < 128: bf16's spacing at 128 is 1), so q = that - 136, in integer and bf16 operations
    only: no conversion instructions, two values per bf16x2 subtraction."""
    low = ((packed & 0xF).to(tl.uint16) | 0x4300).to(tl.bfloat16, bitcast=True)
    high = ((packed >> 4).to(tl.uint16) | 0x4300).to(tl.bfloat16, bitcast=True)
    return tl.interleave(low - 136.0, high - 136.0)


@triton.jit
def _unpack_int4_int8(packed):
    """The same as int8 values, for the interpreter (which converts int8 to bf16 wrongly)."""
    return tl.interleave((packed & 0xF).to(tl.int8) - 8, (packed >> 4).to(tl.int8) - 8)


# Row and pair counts vary from call to call; specializing on them (1, a multiple of 16)
# would compile and tune each tile configuration several times for no gain.
@triton.jit(do_not_specialize=["M", "P", "FANOUT", "M_BUCKET"])
def _quant_matmul_kernel(
    # pointers
    x_ptr, w_ptr, w_scale_ptr, x_scale_ptr, out_ptr, pairs_ptr, block_expert_ptr,
    # sizes
    M, N, K, P, FANOUT, GROUP, M_BUCKET,
    # strides
    stride_xm, stride_xk,
    stride_we, stride_wn, stride_wk,
    stride_se, stride_sn, stride_sg,
    stride_om, stride_on,
    # meta-parameters
    FORMAT: tl.constexpr,  # 0 int8, 1 int4, 2 fp8
    GROUPED: tl.constexpr,
    DOT_FP32: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0).to(tl.int64)
    pid_n = tl.program_id(1).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    if GROUPED:
        # Padding blocks come after each expert's pairs: a block whose first row is padding is empty.
        if tl.load(pairs_ptr + pid_m * BLOCK_M) >= P:
            return
        pair = tl.load(pairs_ptr + offs_m)
        row_ok = pair < P
        x_row = pair // FANOUT
        out_row = pair
        expert = tl.load(block_expert_ptr + pid_m).to(tl.int64)
    else:
        row_ok = offs_m < M
        x_row = offs_m
        out_row = offs_m
        expert = 0
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = offs_n < N
    offs_k = tl.arange(0, BLOCK_K)
    # x^T tile [BLOCK_K, BLOCK_M]: the dot's second operand, K contiguous in memory.
    x_ptrs = x_ptr + x_row[None, :] * stride_xm + offs_k[:, None] * stride_xk
    # Weight rows [BLOCK_N, BLOCK_K] (int4: [BLOCK_N, BLOCK_K // 2] packed bytes), K contiguous:
    # each byte is loaded once, in wide vector loads.
    if FORMAT == 1:
        w_ptrs = w_ptr + expert * stride_we + offs_n[:, None] * stride_wn + tl.arange(0, BLOCK_K // 2)[None, :] * stride_wk
    else:
        w_ptrs = w_ptr + expert * stride_we + offs_n[:, None] * stride_wn + offs_k[None, :] * stride_wk
    s_ptrs = w_scale_ptr + expert * stride_se + offs_n * stride_sn  # [BLOCK_N]

    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        if FORMAT == 0:
            # int8 allows any K: the tail is masked (zeros add nothing).
            k_ok = (k0 + offs_k) < K
            xt = tl.load(x_ptrs, mask=row_ok[None, :] & k_ok[:, None], other=0.0)
            w = tl.load(w_ptrs, mask=n_ok[:, None] & k_ok[None, :], other=0)
        else:
            # int4 / fp8: BLOCK_K divides the group (int4) or K (fp8), so there is no K tail;
            # masked rows and columns hold garbage that never reaches a stored output.
            xt = tl.load(x_ptrs, mask=row_ok[None, :])
            w = tl.load(w_ptrs, mask=n_ok[:, None])
        if FORMAT == 1:
            if DOT_FP32:
                w = _unpack_int4_int8(w)
            else:
                w = _unpack_int4_bf16(w)
        if DOT_FP32:  # the interpreter: no bf16 / fp8 dots there
            part = tl.dot(w.to(tl.float32), xt.to(tl.float32), input_precision="ieee")
        elif FORMAT == 2:
            # e4m3 x e4m3 on tensor cores; Hopper's fp8 MMA adds with fewer bits than float32,
            # so its partial sums are promoted to a float32 accumulator every K block.
            part = tl.dot(w, xt, max_num_imprecise_acc=BLOCK_K)
        else:
            part = tl.dot(w.to(xt.dtype), xt)
        if FORMAT == 1:
            # One scale per (column, group) and BLOCK_K divides the group: scale after the dot.
            group_scale = tl.load(s_ptrs + (k0 // GROUP) * stride_sg, mask=n_ok, other=0.0)
            acc += part * group_scale[:, None]
        else:
            acc += part
        x_ptrs += BLOCK_K * stride_xk
        w_ptrs += (BLOCK_K // 2 if FORMAT == 1 else BLOCK_K) * stride_wk

    if FORMAT != 1:
        acc = acc * tl.load(s_ptrs, mask=n_ok, other=0.0)[:, None]
    if FORMAT == 2:
        acc = acc * tl.load(x_scale_ptr + x_row, mask=row_ok, other=0.0)[None, :]
    out_ptrs = out_ptr + out_row[None, :] * stride_om + offs_n[:, None] * stride_on
    tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=row_ok[None, :] & n_ok[:, None])


# Tuning results go to Triton's disk cache where this Triton supports it (3.2+), so a server
# restart does not time every configuration again.
_CACHE = {"cache_results": True} if "cache_results" in inspect.signature(triton.autotune).parameters else {}

_autotuned_kernel = triton.autotune(
    configs=autotune_configs(),
    # BLOCK_M is the caller's choice and changes the shared memory a configuration needs.
    key=["M_BUCKET", "N", "K", "GROUP", "FORMAT", "GROUPED", "DOT_FP32", "BLOCK_M"],
    prune_configs_by={"early_config_prune": prune_configs},
    **_CACHE,
)(_quant_matmul_kernel)


def launch(programs_m: int, n: int, args: tuple, meta: dict, tiles: dict, dot_fp32: bool) -> None:
    """Fixed tiles (the interpreter, or DG_LSP_AUTOTUNE=0)."""
    grid = (programs_m, triton.cdiv(n, tiles["BLOCK_N"]))
    _quant_matmul_kernel[grid](*args, DOT_FP32=dot_fp32, **meta, **tiles)


def launch_autotuned(programs_m: int, n: int, args: tuple, meta: dict, dot_fp32: bool) -> None:
    """Tiles along N and K tuned per (M bucket, N, K, group, format, grouped, BLOCK_M) on first
    use; BLOCK_M is the caller's (for grouped matmuls it is the routing alignment's block)."""
    grid = lambda cfg: (programs_m, triton.cdiv(n, cfg["BLOCK_N"]))  # noqa: E731
    _autotuned_kernel[grid](*args, DOT_FP32=dot_fp32, **meta)
