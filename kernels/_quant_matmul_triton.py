"""The Triton half of `quant_matmul`: the kernel, its autotuning, its launch.

Imported by the host wrappers at their first launch, never at package import: whether
@triton.jit interprets or compiles is decided when the kernel is defined, and the tests set
TRITON_INTERPRET=1 only once collected. Layouts and numerics: see `quant_matmul`.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .quant_matmul import MIN_DOT


def _autotune_configs():
    configs = []
    for block_n in (32, 64, 128):
        for block_k in (32, 64, 128, 256):
            for warps, stages in ((4, 3), (4, 4), (8, 3)):
                configs.append(triton.Config({"BLOCK_N": block_n, "BLOCK_K": block_k}, num_warps=warps, num_stages=stages))
    return configs


def _prune_configs(configs, named_args, **kwargs):
    """int4 needs BLOCK_K to divide the group size (one scale per K block), fp8 to divide K
    (GROUP is K for the per-channel formats, so the same rule covers both; int8 never prunes)."""
    if {**named_args, **kwargs}.get("FORMAT") == 0:  # constexprs passed by keyword arrive in kwargs
        return configs
    group = named_args["GROUP"]
    kept = [c for c in configs if group % c.kwargs["BLOCK_K"] == 0 and c.kwargs["BLOCK_K"] >= MIN_DOT]
    return kept or configs[:1]


# -- the kernel --------------------------------------------------------------------------

@triton.jit
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
    w_base = w_ptr + expert * stride_we + offs_n[None, :] * stride_wn  # [1, BLOCK_N]
    s_base = w_scale_ptr + expert * stride_se + offs_n * stride_sn  # [BLOCK_N]

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_ok = offs_k < K
        a_ptrs = x_ptr + x_row[:, None] * stride_xm + offs_k[None, :] * stride_xk
        if FORMAT == 2:
            # fp8 has no `other`: BLOCK_K divides K (the host ensures it), so only rows and
            # columns are masked, and their garbage never reaches a stored output.
            a = tl.load(a_ptrs, mask=row_ok[:, None])
        else:
            a = tl.load(a_ptrs, mask=row_ok[:, None] & k_ok[None, :], other=0.0)
        if FORMAT == 1:
            # two weights per byte: column 2j low nibble, 2j + 1 high nibble, stored + 8
            packed = tl.load(w_base + (offs_k // 2)[:, None] * stride_wk, mask=n_ok[None, :] & k_ok[:, None], other=0)
            nibble = (packed.to(tl.int32) >> ((offs_k % 2) * 4)[:, None]) & 0xF
            group_scale = tl.load(s_base + (k0 // GROUP) * stride_sg, mask=n_ok, other=0.0)
            b = (nibble - 8).to(tl.float32) * group_scale[None, :]
        elif FORMAT == 2:
            b = tl.load(w_base + offs_k[:, None] * stride_wk, mask=n_ok[None, :])
        else:
            b = tl.load(w_base + offs_k[:, None] * stride_wk, mask=n_ok[None, :] & k_ok[:, None], other=0)
        if DOT_FP32:
            acc += tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")  # no TF32 on the GPU
        elif FORMAT == 2:
            acc += tl.dot(a, b)  # e4m3 x e4m3 -> fp32 on tensor cores
        else:
            acc += tl.dot(a, b.to(a.dtype))

    if FORMAT != 1:
        acc = acc * tl.load(s_base, mask=n_ok, other=0.0)[None, :]
    if FORMAT == 2:
        acc = acc * tl.load(x_scale_ptr + x_row, mask=row_ok, other=0.0)[:, None]
    out_ptrs = out_ptr + out_row[:, None] * stride_om + offs_n[None, :] * stride_on
    tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & n_ok[None, :])


_autotuned_kernel = triton.autotune(
    configs=_autotune_configs(),
    key=["M_BUCKET", "N", "K", "FORMAT", "GROUPED"],
    prune_configs_by={"early_config_prune": _prune_configs},
)(_quant_matmul_kernel)


def launch(programs_m: int, n: int, args: tuple, meta: dict, tiles: dict, dot_fp32: bool) -> None:
    """Fixed tiles (the interpreter, or DG_LSP_AUTOTUNE=0)."""
    grid = (programs_m, triton.cdiv(n, tiles["BLOCK_N"]))
    _quant_matmul_kernel[grid](*args, DOT_FP32=dot_fp32, **meta, **tiles)


def launch_autotuned(programs_m: int, n: int, args: tuple, meta: dict) -> None:
    """Tiles along N and K tuned per (M bucket, N, K, format, grouped) on first use; BLOCK_M is
    the caller's (for grouped matmuls it is the routing alignment's block)."""
    grid = lambda cfg: (programs_m, triton.cdiv(n, cfg["BLOCK_N"]))  # noqa: E731
    _autotuned_kernel[grid](*args, DOT_FP32=False, **meta)
