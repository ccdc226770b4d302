"""Compile every Triton kernel for an NVIDIA GPU target, on a machine without one.

The interpreter (TRITON_INTERPRET=1, the CPU tests) accepts code that compiled Triton rejects:
a plain Python global read inside a kernel, say, is a CompilationError only when compiled.
Triton's code generator and its bundled ptxas need no GPU, so this script builds each kernel
down to a cubin for sm_90 (Hopper) in the specializations the host wrappers launch. Run in a
fresh interpreter without TRITON_INTERPRET (tests/kernels/test_compile.py does); prints one
line per kernel and exits 1 if any failed.
"""

from __future__ import annotations

import os
import sys
import traceback

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

assert not os.environ.get("TRITON_INTERPRET"), "compile with TRITON_INTERPRET unset"

from dg_lsp.kernels import _attention_triton, _moe_triton, _quant_matmul_triton, _sampling_triton  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)


def signature(fn, pointers: dict[str, str], constexprs: dict, scalars: dict[str, str] | None = None) -> dict[str, str]:
    """Every argument of `fn`: pointers as given, constexprs as 'constexpr', the rest int32
    sizes and strides unless `scalars` says otherwise."""
    scalars = scalars or {}
    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = pointers[name]
        else:
            sig[name] = scalars.get(name, "i32")
    return sig


def cases():
    s, a, m, q = _sampling_triton, _attention_triton, _moe_triton, _quant_matmul_triton
    for has_noise in (False, True):
        yield (f"sample_partials[noise={has_noise}]", s._sample_partials_kernel,
               {"logits_ptr": "*bf16", "noise_ptr": "*fp32", "seed_ptr": "*i64", "part_stats_ptr": "*fp32",
                "part_index_ptr": "*i64"}, {"HAS_NOISE": has_noise, "BLOCK": 2048}, {"temperature": "fp32"}, 4)
    yield ("sample_combine", s._sample_combine_kernel,
           {"part_stats_ptr": "*fp32", "part_index_ptr": "*i64", "sampled_ptr": "*i64", "argmax_ptr": "*i64",
            "entropy_ptr": "*fp32"}, {"BLOCK_SPLITS": 64}, None, 4)
    yield ("row_logsumexp", s._row_logsumexp_kernel, {"logits_ptr": "*bf16", "lse_ptr": "*fp32"}, {"BLOCK": 2048}, None, 4)
    # bf16 at production tiles; the float32 (ieee dot) branches at small ones, which compile
    # in seconds instead of half a minute.
    for dtype, fp32, head_dim, block in (("bf16", False, 512, 64), ("fp32", True, 64, 32)):
        yield (f"soft_embed[{dtype}]", s._soft_embed_kernel,
               {"logits_ptr": "*bf16", "lse_ptr": "*fp32", "weight_ptr": f"*{dtype}", "partial_ptr": "*fp32"},
               {"BLOCK_M": block, "BLOCK_N": 2 * block, "BLOCK_K": block, "DOT_FP32": fp32}, None, 4)
        pointers = {name: f"*{dtype}" for name in ("q_ptr", "cached_k_ptr", "cached_v_ptr", "k_ptr", "v_ptr", "out_ptr")}
        yield (f"canvas_attention[{dtype}]", a._canvas_attention_kernel, pointers,
               {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_D": head_dim, "DOT_FP32": fp32}, None, 8)
        tiles = {"BLOCK_M": 16, "BLOCK_N": block, "BLOCK_K": block, "DOT_FP32": fp32}
        yield (f"moe_gate_up[{dtype}]", m._moe_gate_up_kernel,
               {"x_ptr": f"*{dtype}", "gate_up_ptr": f"*{dtype}", "block_expert_ptr": "*i32", "sorted_ids_ptr": "*i32",
                "hidden_ptr": f"*{dtype}"}, tiles, None, 4)
        yield (f"moe_down[{dtype}]", m._moe_down_kernel,
               {"hidden_ptr": f"*{dtype}", "down_ptr": f"*{dtype}", "block_expert_ptr": "*i32", "sorted_ids_ptr": "*i32",
                "weights_ptr": "*fp32", "y_ptr": "*fp32"}, tiles, None, 4)
    for fmt, (x_type, w_type) in enumerate((("bf16", "i8"), ("bf16", "u8"), ("fp8e4nv", "fp8e4nv"))):
        for grouped in (False, True):
            yield (f"quant_matmul[format={fmt},grouped={grouped}]", q._quant_matmul_kernel,
                   {"x_ptr": f"*{x_type}", "w_ptr": f"*{w_type}", "w_scale_ptr": "*fp32", "x_scale_ptr": "*fp32",
                    "out_ptr": "*bf16", "pairs_ptr": "*i64", "block_expert_ptr": "*i64"},
                   {"FORMAT": fmt, "GROUPED": grouped, "DOT_FP32": False, "BLOCK_M": 16, "BLOCK_N": 64, "BLOCK_K": 64},
                   None, 4)
    # The interpreter's float32 dot branch, compiled too (DG_LSP_AUTOTUNE=0 can take it on a GPU).
    yield ("quant_matmul[format=0,fp32 dot]", q._quant_matmul_kernel,
           {"x_ptr": "*fp32", "w_ptr": "*i8", "w_scale_ptr": "*fp32", "x_scale_ptr": "*fp32", "out_ptr": "*fp32",
            "pairs_ptr": "*i64", "block_expert_ptr": "*i64"},
           {"FORMAT": 0, "GROUPED": False, "DOT_FP32": True, "BLOCK_M": 16, "BLOCK_N": 64, "BLOCK_K": 64}, None, 4)


def main() -> int:
    failed = 0
    for label, fn, pointers, constexprs, scalars, warps in cases():
        source = ASTSource(fn=fn, signature=signature(fn, pointers, constexprs, scalars), constexprs=constexprs)
        try:
            triton.compile(source, target=TARGET, options={"num_warps": warps, "num_stages": 2})
        except Exception:  # report every kernel, not only the first failure
            failed += 1
            print(f"FAILED {label}\n{traceback.format_exc(limit=1)}")
        else:
            print(f"ok {label}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
