"""Kernel benchmark: each Triton kernel against its roofline and its torch baseline, on one GPU.

Geometry: DiffusionGemma 26B-A4B (google/diffusiongemma-26B-A4B-it; the same numbers as the
`gemma-26b-a4b` preset of benchmarks/engine.py, from the published config): vocabulary
262,144, hidden 2816, 16 query heads, sliding layers 8 KV heads of 256 (window 1024),
full layers 2 KV heads of 512, 128 experts of 704, top 8; a 256-token canvas, batch 1.

In one run, on one device:

1. the two ceilings, measured here: a 1 GiB device-to-device copy (GB/s, bytes read plus
   written) and an 8192^3 bf16 matmul on random data (TFLOP/s);
2. for each case, the kernel (each tile configuration of a short sweep; the best is the
   figure) and the torch baseline the model used before (the reference twin: cuBLAS and
   torch's softmax/SDPA): median time, the fewest bytes the operation must move and its
   FLOPs, achieved GB/s and TFLOP/s as a fraction of the ceilings, the roofline floor
   max(bytes / GB/s, FLOPs / TFLOP/s), and the speed-up over the baseline;
3. a correctness check of the kernel against the baseline on the same inputs (relative
   error, or for the sampler: argmax agreement and entropy difference).

Timing: `triton.testing.do_bench` (CUDA events, warm-up, median). Inputs smaller than a few
L2 caches are rotated over several copies so the cache does not flatter the figures.

The table is printed, a JSON record goes to benchmarks/results/kernels-cuda-<date>.json and
is printed last as one line. Run from the repository root (needs CUDA and Triton):

    python benchmarks/kernels.py               # everything, a few minutes
    python benchmarks/kernels.py --only moe    # one family: sampler, soft_embed, attention, moe, quant_matmul
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_records import device_description, publish_record, record_header  # noqa: E402

BENCHMARK = "kernels"
VOCAB, HIDDEN, HEADS, CANVAS = 262_144, 2816, 16, 256
SLIDING_KV_HEADS, SLIDING_HEAD_DIM, WINDOW = 8, 256, 1024
FULL_KV_HEADS, FULL_HEAD_DIM = 2, 512
EXPERTS, TOP_K, EXPERT_INTERMEDIATE = 128, 8, 704
DEVICE = "cuda"  # a module constant so a CPU smoke run (interpreter, tiny sizes) can swap it


def import_kernels():
    """The kernel modules (dg_lsp maps kernels/ as `dg_lsp.kernels` in a checkout that was not
    pip-installed, e.g. on a bare GPU machine)."""
    from dg_lsp.kernels import attention, moe, quant_matmul, sampling

    return attention, moe, quant_matmul, sampling


# -- measuring -----------------------------------------------------------------------------


def median_ms(fn: Callable[[], Any]) -> float:
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=25, rep=200, return_mode="median"))


def rotating(make: Callable[[int], Any], bytes_per_set: int, l2_bytes: int) -> Callable[[], Any]:
    """Cycle over enough input sets that together they overflow L2 three times."""
    sets = [make(i) for i in range(max(1, min(16, math.ceil(3 * l2_bytes / max(bytes_per_set, 1)))))]
    state = {"i": 0}

    def next_set():
        state["i"] = (state["i"] + 1) % len(sets)
        return sets[state["i"]]

    return next_set


@dataclass
class Ceilings:
    gb_per_s: float
    tflop_per_s: float


def measure_ceilings() -> Ceilings:
    """Measured, not datasheet: a 1 GiB copy (random data) and an 8192^3 bf16 matmul (random data)."""
    return Ceilings(_copy_gb_per_s(), _matmul_tflop_per_s())


def _copy_gb_per_s() -> float:
    src = torch.randn(256 * 2**20, device=DEVICE)  # 1 GiB of float32
    dst = torch.empty_like(src)
    return 2 * 2**30 / median_ms(lambda: dst.copy_(src)) / 1e6  # bytes read + written


def _matmul_tflop_per_s() -> float:
    a = torch.randn(8192, 8192, device=DEVICE, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=DEVICE, dtype=torch.bfloat16)
    return 2 * 8192**3 / median_ms(lambda: a @ b) / 1e9


@dataclass
class Case:
    family: str
    name: str
    bytes: int  # the fewest bytes the operation must move through device memory
    flops: int
    baseline: Callable[[], Any]
    variants: dict[str, Callable[[], Any]]  # kernel tile configurations
    check: Callable[[Any, Any], dict[str, float]]
    results: dict[str, Any] = field(default_factory=dict)


def run_case(case: Case, ceil: Ceilings) -> dict[str, Any]:
    baseline_out = case.baseline()
    baseline_ms = median_ms(case.baseline)
    variants = {}
    for label, fn in case.variants.items():
        try:
            out = fn()
            if DEVICE == "cuda":
                torch.cuda.synchronize()
            variants[label] = {"ms": median_ms(fn), "check": case.check(out, baseline_out)}
        except Exception as exc:  # a tile configuration out of shared memory, say
            variants[label] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    timed = {k: v for k, v in variants.items() if "ms" in v}
    best = min(timed, key=lambda k: timed[k]["ms"]) if timed else None
    floor_ms = max(case.bytes / ceil.gb_per_s / 1e6, case.flops / ceil.tflop_per_s / 1e9)
    row: dict[str, Any] = {
        "family": case.family, "case": case.name, "bytes": case.bytes, "flops": case.flops,
        "floor_ms": floor_ms, "baseline_ms": baseline_ms, "variants": variants, "best": best,
    }
    if best is not None:
        ms = timed[best]["ms"]
        row.update(
            kernel_ms=ms,
            gb_per_s=case.bytes / ms / 1e6,
            tflop_per_s=case.flops / ms / 1e9,
            bandwidth_fraction=case.bytes / ms / 1e6 / ceil.gb_per_s,
            compute_fraction=case.flops / ms / 1e9 / ceil.tflop_per_s,
            floor_fraction=floor_ms / ms,
            speedup=baseline_ms / ms,
            check=timed[best]["check"],
        )
    return row


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    out, ref = out.double(), ref.double()
    return {"rel_err": float((out - ref).norm() / ref.norm().clamp_min(1e-30)), "nan": bool(out.isnan().any())}


# -- cases -----------------------------------------------------------------------------------


def sampler_cases(sampling, l2: int) -> list[Case]:
    from dg_lsp.engine.sampler import sample_tokens, token_entropy

    rows = CANVAS
    logits = torch.randn(rows, VOCAB, device=DEVICE) * 4
    seed = torch.tensor([1], device=DEVICE)
    gen = torch.Generator(device=DEVICE).manual_seed(0)

    def baseline():
        # The denoising step's chain before the kernel: softmax, inverse-CDF draw, entropy, argmax.
        probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
        return sample_tokens(probs, gen, "fast"), logits.argmax(-1), token_entropy(logits)

    def check(out, ref):
        return {"argmax_agree": float((out[1] == ref[1]).float().mean()),
                "entropy_max_abs": float((out[2] - ref[2]).abs().max())}

    variants = {
        f"block{block}": (lambda block=block: sampling.fused_sample_triton(logits, 1.0, seed, block=block))
        for block in (1024, 2048, 4096)
    }
    return [Case("sampler", f"fused_sample rows={rows} V={VOCAB} fp32", rows * VOCAB * 4, 0, baseline, variants, check)]


def soft_embed_cases(sampling, l2: int) -> list[Case]:
    rows = CANVAS
    logits = (torch.randn(rows, VOCAB, device=DEVICE) * 4).to(torch.bfloat16)
    weight = (torch.randn(VOCAB, HIDDEN, device=DEVICE) * 0.03).to(torch.bfloat16)
    scale = torch.tensor(math.sqrt(HIDDEN), dtype=torch.bfloat16)
    nbytes = logits.numel() * 2 + weight.numel() * 2 + rows * HIDDEN * 2
    variants = {}
    for bm, bn, bk, warps, stages in [(64, 128, 64, 4, 3), (128, 128, 64, 8, 3), (64, 256, 64, 8, 3), (32, 128, 128, 4, 3)]:
        variants[f"m{bm}n{bn}k{bk}w{warps}s{stages}"] = (
            lambda bm=bm, bn=bn, bk=bk, warps=warps, stages=stages: sampling.soft_embeddings_triton(
                logits, weight, scale, block_m=bm, block_n=bn, block_k=bk, num_warps=warps, num_stages=stages)
        )
    return [Case(
        "soft_embed", f"soft_embeddings rows={rows} V={VOCAB} H={HIDDEN} bf16", nbytes, 2 * rows * VOCAB * HIDDEN,
        lambda: sampling.soft_embeddings_reference(logits, weight, scale), variants, relative_error,
    )]


def attention_cases(attention, l2: int) -> list[Case]:
    cases = []
    geometries = [
        ("sliding", SLIDING_KV_HEADS, SLIDING_HEAD_DIM, WINDOW - 1),
        ("full", FULL_KV_HEADS, FULL_HEAD_DIM, 4096),
        ("full", FULL_KV_HEADS, FULL_HEAD_DIM, 32768),
    ]
    for kind, hkv, d, s in geometries:
        def make(i, hkv=hkv, d=d, s=s):
            g = torch.Generator(device=DEVICE).manual_seed(i)

            def r(*shape):
                return torch.randn(*shape, device=DEVICE, generator=g, dtype=torch.bfloat16)

            return r(1, HEADS, CANVAS, d), r(1, hkv, s, d), r(1, hkv, s, d), r(1, hkv, CANVAS, d), r(1, hkv, CANVAS, d)

        elems = HEADS * CANVAS * d * 2 + hkv * (s + CANVAS) * d * 2  # q + out, keys + values
        next_set = rotating(make, elems * 2, l2)
        fixed = make(0)
        configs = {
            256: [(64, 64, 8, 2), (128, 64, 8, 2), (64, 32, 4, 2), (32, 64, 4, 3)],
            512: [(32, 32, 8, 2), (64, 32, 8, 1), (32, 64, 8, 2), (16, 64, 4, 2)],
        }[d]
        variants = {
            f"m{bm}n{bn}w{w}s{st}": (lambda cfg=attention.AttentionConfig(bm, bn, w, st): attention.canvas_attention_triton(
                *next_set(), config=cfg))
            for bm, bn, w, st in configs
        }
        # Timed calls rotate over input sets, so the check compares kernel and baseline on set 0.
        cases.append(Case(
            "attention", f"canvas_attention {kind} Hkv={hkv} D={d} S={s} C={CANVAS}", elems * 2,
            4 * HEADS * CANVAS * (s + CANVAS) * d,
            lambda next_set=next_set: attention.canvas_attention_reference(*next_set()), variants,
            lambda out, ref, fixed=fixed: relative_error(
                attention.canvas_attention_triton(*fixed), attention.canvas_attention_reference(*fixed)),
        ))
    return cases


def moe_cases(moe, l2: int) -> list[Case]:
    cases = []
    gate_up = (torch.randn(EXPERTS, 2 * EXPERT_INTERMEDIATE, HIDDEN, device=DEVICE) * HIDDEN**-0.5).to(torch.bfloat16)
    down = (torch.randn(EXPERTS, HIDDEN, EXPERT_INTERMEDIATE, device=DEVICE) * EXPERT_INTERMEDIATE**-0.5).to(torch.bfloat16)
    per_expert_bytes = 3 * EXPERT_INTERMEDIATE * HIDDEN * 2
    for tokens in (CANVAS, 2048):
        x = torch.randn(tokens, HIDDEN, device=DEVICE, dtype=torch.bfloat16)
        probs = torch.softmax(torch.randn(tokens, EXPERTS, device=DEVICE), dim=-1)
        weights, index = torch.topk(probs, TOP_K, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)
        hit = int(torch.unique(index).numel())
        nbytes = hit * per_expert_bytes + 2 * x.numel() * 2
        flops = 2 * tokens * TOP_K * 3 * EXPERT_INTERMEDIATE * HIDDEN
        variants = {}
        for bm, bn, bk, w, st in [(16, 64, 64, 4, 3), (32, 64, 64, 4, 3), (16, 128, 64, 4, 4), (64, 128, 64, 8, 3)]:
            cfg = moe.MoEConfig(bm, bn, bk, w, st)
            variants[f"m{bm}n{bn}k{bk}w{w}s{st}"] = (
                lambda cfg=cfg, x=x, weights=weights, index=index: moe.moe_experts_triton(
                    x, weights, index, gate_up, down, config=cfg)
            )
        variants["default"] = lambda x=x, weights=weights, index=index: moe.moe_experts_triton(x, weights, index, gate_up, down)
        cases.append(Case(
            "moe", f"moe_experts N={tokens} E={EXPERTS} top{TOP_K} H={HIDDEN} I={EXPERT_INTERMEDIATE} ({hit} experts hit)",
            nbytes, flops,
            lambda x=x, weights=weights, index=index: moe.moe_experts_reference(x, weights, index, gate_up, down),
            variants, relative_error,
        ))
    return cases


# Projections of the 26B-A4B layer whose weights `dg-lsp quantize` stores quantized: q_proj
# (16 heads x 256) and the dense MLP's up projection (2112) and down projection.
QUANT_SHAPES = {"q_proj": (HEADS * SLIDING_HEAD_DIM, HIDDEN), "mlp.up_proj": (2112, HIDDEN), "mlp.down_proj": (HIDDEN, 2112)}
QUANT_ROWS = (16, 64, 256, 512)  # canvas-sized rows, and a prompt chunk


def quant_matmul_cases(quant, l2: int) -> list[Case]:
    """Weight-only int8 / int4 (group 128) / fp8 matmul against cuBLAS on the same weights in
    bf16 (what an unquantized model runs); the check is against the kernel's torch twin, since
    the quantization error itself is not the kernel's."""
    from dg_lsp.kernels.quant_format import quantize_weight

    cases = []
    for label, (n, k) in QUANT_SHAPES.items():
        weight = (torch.randn(n, k, device=DEVICE) * k**-0.5).to(torch.bfloat16)
        for fmt in ("int8", "int4", "fp8"):
            payload, scale = quantize_weight(weight, fmt, 128)
            for m in QUANT_ROWS:
                x = torch.randn(m, k, device=DEVICE, dtype=torch.bfloat16)
                nbytes = payload.numel() * payload.element_size() + scale.numel() * 4 + (m * k + m * n) * 2
                twin = quant.quant_matmul_reference(x, payload, scale, fmt)
                cases.append(Case(
                    "quant_matmul", f"{fmt} {label} M={m} N={n} K={k} (baseline: bf16 cuBLAS)", nbytes, 2 * m * n * k,
                    lambda x=x: x @ weight.T,
                    {"autotuned": lambda x=x, payload=payload, scale=scale, fmt=fmt: quant.quant_matmul_triton(x, payload, scale, fmt)},
                    lambda out, _baseline, twin=twin: relative_error(out, twin),
                ))
    return cases


FAMILIES = {"sampler": sampler_cases, "soft_embed": soft_embed_cases, "attention": attention_cases, "moe": moe_cases,
            "quant_matmul": quant_matmul_cases}


# -- report ----------------------------------------------------------------------------------


def print_table(ceil: Ceilings, rows: list[dict[str, Any]]) -> None:
    print(f"\nceilings on this device: copy {ceil.gb_per_s:,.0f} GB/s, bf16 matmul {ceil.tflop_per_s:,.0f} TFLOP/s")
    header = f"{'case':<72} {'best':<16} {'ms':>8} {'GB/s':>7} {'%bw':>5} {'TFLOP/s':>8} {'%mm':>5} {'floor':>7} {'torch':>8} {'x':>6}  check"
    print(header)
    print("-" * len(header))
    for r in rows:
        if r.get("best") is None:
            print(f"{r['case']:<72} all variants failed: {json.dumps(r['variants'])[:200]}")
            continue
        check = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["check"].items())
        print(
            f"{r['case']:<72} {r['best']:<16} {r['kernel_ms']:8.3f} {r['gb_per_s']:7.0f} {100 * r['bandwidth_fraction']:5.1f} "
            f"{r['tflop_per_s']:8.1f} {100 * r['compute_fraction']:5.1f} {r['floor_ms']:7.3f} {r['baseline_ms']:8.3f} "
            f"{r['speedup']:6.2f}  {check}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=sorted(FAMILIES), action="append", help="run only these families (repeatable)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="folder for the JSON record")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/kernels.py needs a CUDA GPU (the kernels' CPU path is the torch reference)")
    attention, moe, quant_matmul, sampling = import_kernels()
    started = dt.datetime.now()
    device = torch.device("cuda")
    torch.manual_seed(0)
    l2 = torch.cuda.get_device_properties(device).L2_cache_size
    modules = {"sampler": sampling, "soft_embed": sampling, "attention": attention, "moe": moe,
               "quant_matmul": quant_matmul}
    ceil = measure_ceilings()
    rows = []
    with torch.inference_mode():
        for family in args.only or list(FAMILIES):
            for case in FAMILIES[family](modules[family], l2):
                rows.append(run_case(case, ceil))
                print(f"done: {case.name}", flush=True)
                del case
            torch.cuda.empty_cache()
    print_table(ceil, rows)
    record = record_header(BENCHMARK, started, device_description(device))
    import triton

    record.update(
        triton=triton.__version__,
        ceilings={"copy_gb_per_s": ceil.gb_per_s, "bf16_matmul_tflop_per_s": ceil.tflop_per_s},
        geometry={"vocab": VOCAB, "hidden": HIDDEN, "heads": HEADS, "canvas": CANVAS,
                  "sliding": [SLIDING_KV_HEADS, SLIDING_HEAD_DIM, WINDOW], "full": [FULL_KV_HEADS, FULL_HEAD_DIM],
                  "experts": [EXPERTS, TOP_K, EXPERT_INTERMEDIATE]},
        cases=rows,
    )
    publish_record(record, args.out, BENCHMARK, "cuda", started)
    return record


if __name__ == "__main__":
    main()
