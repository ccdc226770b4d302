"""Kernel benchmark: each Triton kernel against its roofline and its torch baseline, on one GPU.

Geometry: DiffusionGemma 26B-A4B (google/diffusiongemma-26B-A4B-it; the `gemma-26b-a4b` preset
of benchmarks/presets.py): vocabulary 262,144, hidden 2816, 16 query heads, sliding layers 8
KV heads of 256 (window 1024), full layers 2 KV heads of 512, 128 experts of 704, top 8, dense
MLP 2112; a 256-token canvas, batch 1.

In one run, on one device:

1. the ceilings, measured here (benchmarks/ceilings.py): a 1 GiB device-to-device copy (GB/s,
   bytes read plus written) and 8192^3 bf16 and fp8 matmuls on random data (TFLOP/s);
2. for each case, the kernel (each tile configuration of a short sweep; the best is the
   figure) and the torch baseline the model used before (the reference twin: cuBLAS and
   torch's softmax/SDPA): median time, the fewest bytes the operation must move and its
   FLOPs, achieved GB/s and TFLOP/s as a fraction of the ceilings, the roofline floor
   max(bytes / GB/s, FLOPs / TFLOP/s) beside the measurement, and the speed-up over the
   baseline;
3. a correctness check of the kernel against the baseline on the same inputs (relative
   error, or for the sampler: argmax agreement and entropy difference).

Families: sampler, soft_embed, attention, moe (bf16 experts), quant_matmul (dense int8 / int4 /
fp8 projections, untuned default tiles and autotuned), grouped_quant_matmul (the routed experts
quantized: gate/up and down at 1, 256 and 512 tokens), lm_head (the [C, 2816] x [2816, 262,144]
GEMM with and without the float32 logits the model makes of it).

Timing: `triton.testing.do_bench` (CUDA events, warm-up, median). Inputs smaller than a few
L2 caches are rotated over several copies so the cache does not flatter the figures.

The JSON record goes to benchmarks/results/kernels-cuda-<date>.json (or `--out`) after every
case, marked `"complete": false` until the end (a time limit keeps the cases that finished);
the table is printed at the end and the record last, as one line. Run from the repository root
(needs CUDA and Triton):

    python benchmarks/kernels.py               # everything, a few minutes
    python benchmarks/kernels.py --only moe    # one family (repeatable)
    python benchmarks/kernels.py --smoke       # tiny sizes on the CPU, kernels interpreted: the code path only
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
import ceilings  # noqa: E402
from bench_records import device_description, publish_record, record_header, write_record  # noqa: E402

BENCHMARK = "kernels"


@dataclass(frozen=True)
class Geometry:
    vocab: int
    hidden: int
    heads: int
    canvas: int
    sliding: tuple[int, int, int]  # KV heads, head size, window
    full: tuple[int, int]  # KV heads, head size
    full_cached: tuple[int, ...]  # cached prompt lengths timed on full layers
    experts: tuple[int, int, int]  # count, top k, width
    dense_intermediate: int
    prompt_chunk: int
    softcap: float = 30.0


GEOMETRIES = {
    "26b-a4b": Geometry(262_144, 2816, 16, 256, (8, 256, 1024), (2, 512), (4096, 32768), (128, 8, 704), 2112, 512),
    # The code path on a CPU through the interpreter: every case, sizes of no consequence.
    "smoke": Geometry(512, 64, 4, 16, (2, 32, 24), (1, 64), (40,), (4, 2, 32), 96, 32),
}


@dataclass
class Run:
    """Where and at what sizes the cases run."""

    geo: Geometry
    device: str = "cuda"
    dtype: torch.dtype = torch.bfloat16
    l2: int = 50 * 2**20


def import_kernels():
    """The kernel modules (dg_lsp maps kernels/ as `dg_lsp.kernels` in a checkout that was not
    pip-installed, e.g. on a bare GPU machine)."""
    from dg_lsp.kernels import attention, moe, quant_matmul, sampling

    return attention, moe, quant_matmul, sampling


# -- measuring -----------------------------------------------------------------------------


def median_ms(fn: Callable[[], Any], device: str = "cuda") -> float:
    if device != "cuda":
        return ceilings.median_ms(fn, torch.device(device), repeats=1, warmup=0)
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=25, rep=200, return_mode="median"))


@contextlib.contextmanager
def autotune_off() -> Iterator[None]:
    """DG_LSP_AUTOTUNE=0 for the duration: the quantized matmul's untuned default tiles."""
    saved = os.environ.get("DG_LSP_AUTOTUNE")
    os.environ["DG_LSP_AUTOTUNE"] = "0"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["DG_LSP_AUTOTUNE"]
        else:
            os.environ["DG_LSP_AUTOTUNE"] = saved


def untuned(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run():
        with autotune_off():
            return fn()

    return run


def rotating(make: Callable[[int], Any], bytes_per_set: int, l2_bytes: int) -> Callable[[], Any]:
    """Cycle over enough input sets that together they overflow L2 three times."""
    sets = [make(i) for i in range(max(1, min(16, math.ceil(3 * l2_bytes / max(bytes_per_set, 1)))))]
    state = {"i": 0}

    def next_set():
        state["i"] = (state["i"] + 1) % len(sets)
        return sets[state["i"]]

    return next_set


@dataclass
class Case:
    family: str
    name: str
    bytes: int  # the fewest bytes the operation must move through device memory
    flops: int
    baseline: Callable[[], Any]
    variants: dict[str, Callable[[], Any]]  # kernel tile configurations
    check: Callable[[Any, Any], dict[str, float]]
    fp8: bool = False  # compute-bound against the fp8 matmul ceiling
    results: dict[str, Any] = field(default_factory=dict)


def run_case(case: Case, ceil: ceilings.Ceilings, device: str) -> dict[str, Any]:
    baseline_out = case.baseline()
    baseline_ms = median_ms(case.baseline, device)
    variants = {}
    for label, fn in case.variants.items():
        try:
            out = fn()
            if device == "cuda":
                torch.cuda.synchronize()
            variants[label] = {"ms": median_ms(fn, device), "check": case.check(out, baseline_out)}
        except Exception as exc:  # a tile configuration out of shared memory, say
            variants[label] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    timed = {k: v for k, v in variants.items() if "ms" in v}
    best = min(timed, key=lambda k: timed[k]["ms"]) if timed else None
    tflops = (ceil.fp8_tflop_per_s or ceil.bf16_tflop_per_s) if case.fp8 else ceil.bf16_tflop_per_s
    floor_ms = max(case.bytes / ceil.gb_per_s / 1e6, case.flops / tflops / 1e9)
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
            compute_fraction=case.flops / ms / 1e9 / tflops,
            floor_fraction=floor_ms / ms,
            speedup=baseline_ms / ms,
            check=timed[best]["check"],
        )
    return row


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    out, ref = out.double(), ref.double()
    return {"rel_err": float((out - ref).norm() / ref.norm().clamp_min(1e-30)), "nan": bool(out.isnan().any())}


def _randn(run: Run, *shape: int, scale: float = 1.0, dtype: torch.dtype | None = None, generator=None) -> torch.Tensor:
    return (torch.randn(*shape, device=run.device, generator=generator) * scale).to(dtype or run.dtype)


# -- cases -----------------------------------------------------------------------------------


def sampler_cases(sampling, run: Run) -> list[Case]:
    from dg_lsp.engine.sampler import sample_tokens, token_entropy

    g = run.geo
    rows = g.canvas
    logits = torch.randn(rows, g.vocab, device=run.device) * 4  # the model's logits are float32
    seed = torch.tensor([1], device=run.device)
    gen = torch.Generator(device=run.device).manual_seed(0)

    def baseline():
        # The denoising step's chain before the kernel: softmax, inverse-CDF draw, entropy, argmax.
        probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
        return sample_tokens(probs, gen, "fast"), logits.argmax(-1), token_entropy(logits)

    def check(out, ref):
        return {"argmax_agree": float((out[1] == ref[1]).float().mean()),
                "entropy_max_abs": float((out[2] - ref[2]).abs().max())}

    blocks = (1024, 2048, 4096) if run.device == "cuda" else (128,)
    variants = {
        f"block{block}": (lambda block=block: sampling.fused_sample_triton(logits, 1.0, seed, block=block))
        for block in blocks
    }
    return [Case("sampler", f"fused_sample rows={rows} V={g.vocab} fp32", rows * g.vocab * 4, 0, baseline, variants, check)]


def soft_embed_cases(sampling, run: Run) -> list[Case]:
    g = run.geo
    rows = g.canvas
    logits = torch.randn(rows, g.vocab, device=run.device) * 4  # float32, as the model passes them
    weight = _randn(run, g.vocab, g.hidden, scale=0.03)
    scale = torch.tensor(math.sqrt(g.hidden), dtype=run.dtype)
    nbytes = logits.numel() * 4 + weight.numel() * weight.element_size() + rows * g.hidden * 2
    variants = {}
    for bm, bn, bk, warps, stages in [(64, 128, 64, 4, 3), (128, 128, 64, 8, 3), (64, 256, 64, 8, 3), (32, 128, 128, 4, 3)]:
        variants[f"m{bm}n{bn}k{bk}w{warps}s{stages}"] = (
            lambda bm=bm, bn=bn, bk=bk, warps=warps, stages=stages: sampling.soft_embeddings_triton(
                logits, weight, scale, block_m=bm, block_n=bn, block_k=bk, num_warps=warps, num_stages=stages)
        )
    return [Case(
        "soft_embed", f"soft_embeddings rows={rows} V={g.vocab} H={g.hidden}", nbytes, 2 * rows * g.vocab * g.hidden,
        lambda: sampling.soft_embeddings_reference(logits, weight, scale), variants, relative_error,
    )]


def attention_cases(attention, run: Run) -> list[Case]:
    g = run.geo
    cases = []
    geometries = [("sliding", g.sliding[0], g.sliding[1], g.sliding[2] - 1)]
    geometries += [("full", g.full[0], g.full[1], s) for s in g.full_cached]
    for kind, hkv, d, s in geometries:
        def make(i, hkv=hkv, d=d, s=s):
            gen = torch.Generator(device=run.device).manual_seed(i)

            def r(*shape):
                return _randn(run, *shape, generator=gen)

            return r(1, g.heads, g.canvas, d), r(1, hkv, s, d), r(1, hkv, s, d), r(1, hkv, g.canvas, d), r(1, hkv, g.canvas, d)

        elems = g.heads * g.canvas * d * 2 + hkv * (s + g.canvas) * d * 2  # q + out, keys + values
        next_set = rotating(make, elems * 2, run.l2)
        fixed = make(0)
        configs = [(64, 64, 8, 2), (128, 64, 8, 2), (64, 32, 4, 2), (32, 64, 4, 3)] if d <= 256 else [
            (32, 32, 8, 2), (64, 32, 8, 1), (32, 64, 8, 2), (16, 64, 4, 2)]
        variants = {
            f"m{bm}n{bn}w{w}s{st}": (lambda cfg=attention.AttentionConfig(bm, bn, w, st): attention.canvas_attention_triton(
                *next_set(), config=cfg))
            for bm, bn, w, st in configs
        }
        variants["default"] = lambda: attention.canvas_attention_triton(*next_set())
        # Timed calls rotate over input sets, so the check compares kernel and baseline on set 0.
        cases.append(Case(
            "attention", f"canvas_attention {kind} Hkv={hkv} D={d} S={s} C={g.canvas}", elems * 2,
            4 * g.heads * g.canvas * (s + g.canvas) * d,
            lambda next_set=next_set: attention.canvas_attention_reference(*next_set()), variants,
            lambda out, ref, fixed=fixed: relative_error(
                attention.canvas_attention_triton(*fixed), attention.canvas_attention_reference(*fixed)),
        ))
    return cases


def _routing(run: Run, tokens: int, experts: int, top_k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator(device=run.device).manual_seed(seed)
    probs = torch.softmax(torch.randn(tokens, experts, device=run.device, generator=gen), dim=-1)
    weights, index = torch.topk(probs, top_k, dim=-1)
    return weights / weights.sum(-1, keepdim=True), index


def moe_cases(moe, run: Run) -> list[Case]:
    g = run.geo
    e, top_k, inter = g.experts
    cases = []
    gate_up = _randn(run, e, 2 * inter, g.hidden, scale=g.hidden**-0.5)
    down = _randn(run, e, g.hidden, inter, scale=inter**-0.5)
    per_expert_bytes = 3 * inter * g.hidden * gate_up.element_size()
    for tokens in (g.canvas, 8 * g.canvas):
        x = _randn(run, tokens, g.hidden)
        weights, index = _routing(run, tokens, e, top_k)
        hit = int(torch.unique(index).numel())
        nbytes = hit * per_expert_bytes + 2 * x.numel() * x.element_size()
        flops = 2 * tokens * top_k * 3 * inter * g.hidden
        variants = {}
        for bm, bn, bk, w, st in [(16, 64, 64, 4, 3), (32, 64, 64, 4, 3), (16, 128, 64, 4, 4), (64, 128, 64, 8, 3)]:
            cfg = moe.MoEConfig(bm, bn, bk, w, st)
            variants[f"m{bm}n{bn}k{bk}w{w}s{st}"] = (
                lambda cfg=cfg, x=x, weights=weights, index=index: moe.moe_experts_triton(
                    x, weights, index, gate_up, down, config=cfg)
            )
        variants["default"] = lambda x=x, weights=weights, index=index: moe.moe_experts_triton(x, weights, index, gate_up, down)
        cases.append(Case(
            "moe", f"moe_experts N={tokens} E={e} top{top_k} H={g.hidden} I={inter} ({hit} experts hit)",
            nbytes, flops,
            lambda x=x, weights=weights, index=index: moe.moe_experts_reference(x, weights, index, gate_up, down),
            variants, relative_error,
        ))
    return cases


def quant_shapes(g: Geometry) -> dict[str, tuple[int, int]]:
    """Projections of a layer that `dg-lsp quantize` stores quantized: q_proj (heads x head
    size), the dense MLP's up projection and its down projection, the full layers' o_proj."""
    return {"q_proj": (g.heads * g.sliding[1], g.hidden), "mlp.up_proj": (g.dense_intermediate, g.hidden),
            "mlp.down_proj": (g.hidden, g.dense_intermediate), "o_proj full": (g.hidden, g.heads * g.full[1])}


def quant_matmul_cases(quant, run: Run) -> list[Case]:
    """Weight-only int8 / int4 (group 128) / fp8 matmul against cuBLAS on the same weights in
    bf16 (what an unquantized model runs); the check is against the kernel's torch twin, since
    the quantization error itself is not the kernel's. Rows: an AR token, canvases, a prompt chunk."""
    from dg_lsp.kernels.quant_format import quantize_weight

    g = run.geo
    cases = []
    for label, (n, k) in quant_shapes(g).items():
        weight = _randn(run, n, k, scale=k**-0.5)
        for fmt in ("int8", "int4", "fp8"):
            payload, scale = quantize_weight(weight, fmt, 128)
            for m in (1, g.canvas, g.prompt_chunk):  # the three row regimes: a token, a canvas, a prompt
                x = _randn(run, m, k)
                nbytes = payload.numel() * payload.element_size() + scale.numel() * 4 + (m * k + m * n) * 2
                twin = quant.quant_matmul_reference(x, payload, scale, fmt)

                def kernel(x=x, payload=payload, scale=scale, fmt=fmt):
                    return quant.quant_matmul_triton(x, payload, scale, fmt)

                cases.append(Case(
                    "quant_matmul", f"{fmt} {label} M={m} N={n} K={k} (baseline: bf16 cuBLAS)", nbytes, 2 * m * n * k,
                    lambda x=x, weight=weight: x @ weight.T, {"default tiles": untuned(kernel), "autotuned": kernel},
                    lambda out, _baseline, twin=twin: relative_error(out, twin), fp8=fmt == "fp8",
                ))
    return cases


def grouped_quant_matmul_cases(quant, run: Run) -> list[Case]:
    """The routed experts quantized, as the model runs them: gate/up (each token's row read for
    its top-k experts) and down (one row per pair), at one token, a canvas and a prompt chunk.
    Bytes: the experts the routing hits (payload and scales) and the rows in and out. Baseline:
    the same expert matmuls in bf16, one cuBLAS call per hit expert (the model's loop)."""
    from dg_lsp.kernels.quant_format import quantize_weight

    g = run.geo
    e, top_k, inter = g.experts
    cases = []
    for part, (n, k), fanout in (("gate_up", (2 * inter, g.hidden), top_k), ("down", (g.hidden, inter), 1)):
        weight = _randn(run, e, n, k, scale=k**-0.5)
        for fmt in ("int8", "int4", "fp8"):
            payload, scale = quantize_weight(weight, fmt, 128)
            for tokens in (1, g.canvas, g.prompt_chunk):
                _, index = _routing(run, tokens, e, top_k, seed=tokens)
                pair_expert = index.reshape(-1)
                pairs = pair_expert.numel()
                x = _randn(run, pairs // fanout, k)
                hit = torch.unique(pair_expert)
                per_expert = (payload[0].numel() * payload.element_size() + scale[0].numel() * 4)
                nbytes = int(hit.numel()) * per_expert + x.numel() * 2 + pairs * n * 2
                twin = quant.grouped_quant_matmul_reference(x, payload, scale, fmt, pair_expert, fanout)
                rows = torch.arange(pairs, device=run.device) // fanout
                groups = [(int(ex), torch.where(pair_expert == ex)[0]) for ex in hit.tolist()]

                def baseline(x=x, weight=weight, rows=rows, groups=groups, n=n, pairs=pairs):
                    out = torch.empty(pairs, n, device=x.device, dtype=x.dtype)
                    for ex, sel in groups:
                        out[sel] = x[rows[sel]] @ weight[ex].T
                    return out

                def kernel(x=x, payload=payload, scale=scale, fmt=fmt, pair_expert=pair_expert, fanout=fanout):
                    return quant.grouped_quant_matmul_triton(x, payload, scale, fmt, pair_expert, fanout)

                cases.append(Case(
                    "grouped_quant_matmul",
                    f"{fmt} experts.{part} tokens={tokens} E={e} N={n} K={k} ({hit.numel()} hit; baseline: bf16 per expert)",
                    nbytes, 2 * pairs * n * k, baseline, {"default tiles": untuned(kernel), "autotuned": kernel},
                    lambda out, _baseline, twin=twin: relative_error(out, twin), fp8=fmt == "fp8",
                ))
    return cases


def lm_head_cases(_, run: Run) -> list[Case]:
    """The tied LM head, [C, H] x [H, V]: cuBLAS in bf16 (its own figure against the roofline,
    which counts the bf16 logits written once), and as the model uses it: float32 logits and
    the softcap, i.e. the float32 traffic a fused sampler reading bf16 logits would save."""
    from dg_lsp.model import ops

    g = run.geo
    weight = _randn(run, g.vocab, g.hidden, scale=0.03)
    cases = []
    for rows in (1, g.canvas):
        hidden = _randn(run, rows, g.hidden)
        nbytes = weight.numel() * weight.element_size() + hidden.numel() * 2 + rows * g.vocab * 2

        def model_logits(hidden=hidden):
            return ops.softcap(torch.nn.functional.linear(hidden, weight).float(), g.softcap)

        cases.append(Case(
            "lm_head", f"lm_head rows={rows} V={g.vocab} H={g.hidden} (baseline: bf16 linear, float32, softcap)",
            nbytes, 2 * rows * g.vocab * g.hidden, model_logits,
            {"bf16 logits": lambda hidden=hidden: torch.nn.functional.linear(hidden, weight)},
            lambda out, ref: {"rel_err_before_softcap": relative_error(
                ops.softcap(out.float(), g.softcap), ref)["rel_err"]},
        ))
    return cases


# In order of what they decide (a time limit cuts the last): the quantized experts are most of
# the bytes a 26B-A4B step reads.
FAMILIES = {"grouped_quant_matmul": grouped_quant_matmul_cases, "quant_matmul": quant_matmul_cases,
            "lm_head": lm_head_cases, "moe": moe_cases, "attention": attention_cases, "soft_embed": soft_embed_cases,
            "sampler": sampler_cases}


# -- report ----------------------------------------------------------------------------------


def print_table(ceil: ceilings.Ceilings, rows: list[dict[str, Any]]) -> None:
    print(f"\nceilings on this device: copy {ceil.gb_per_s:,.0f} GB/s, bf16 matmul {ceil.bf16_tflop_per_s:,.0f} TFLOP/s, "
          f"fp8 matmul {ceil.fp8_tflop_per_s or 0:,.0f} TFLOP/s")
    header = (f"{'case':<80} {'best':<16} {'ms':>8} {'floor':>7} {'%floor':>6} {'GB/s':>7} {'%bw':>5} {'TFLOP/s':>8} "
              f"{'%mm':>5} {'torch':>8} {'x':>6}  check")
    print(header)
    print("-" * len(header))
    for r in rows:
        if r.get("best") is None:
            print(f"{r['case']:<80} all variants failed: {json.dumps(r['variants'])[:200]}")
            continue
        check = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["check"].items())
        print(
            f"{r['case']:<80} {r['best']:<16} {r['kernel_ms']:8.3f} {r['floor_ms']:7.3f} {100 * r['floor_fraction']:6.1f} "
            f"{r['gb_per_s']:7.0f} {100 * r['bandwidth_fraction']:5.1f} {r['tflop_per_s']:8.1f} "
            f"{100 * r['compute_fraction']:5.1f} {r['baseline_ms']:8.3f} {r['speedup']:6.2f}  {check}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=sorted(FAMILIES), action="append", help="run only these families (repeatable)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU through the Triton interpreter")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="folder for the JSON record")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.smoke:
        # Read when the kernels' Triton halves are imported, at their first launch below.
        os.environ.setdefault("TRITON_INTERPRET", "1")
        run = Run(GEOMETRIES["smoke"], device="cpu", dtype=torch.float32, l2=2**20)
    elif not torch.cuda.is_available():
        raise SystemExit("benchmarks/kernels.py needs a CUDA GPU (the kernels' CPU path is the torch reference); "
                         "--smoke runs the code path on a CPU")
    else:
        run = Run(GEOMETRIES["26b-a4b"], l2=torch.cuda.get_device_properties(0).L2_cache_size)
    attention, moe, quant_matmul, sampling = import_kernels()
    started = dt.datetime.now()
    device = torch.device(run.device)
    torch.manual_seed(0)
    modules = {"sampler": sampling, "soft_embed": sampling, "attention": attention, "moe": moe,
               "quant_matmul": quant_matmul, "grouped_quant_matmul": quant_matmul, "lm_head": None}
    ceil = ceilings.measure(device)
    rows: list[dict[str, Any]] = []
    record = record_header(BENCHMARK, started, device_description(device))
    import triton

    record.update(complete=False, triton=triton.__version__, ceilings=ceil.as_dict(), geometry=asdict(run.geo), cases=rows)
    with torch.inference_mode():
        for family in args.only or list(FAMILIES):
            for case in FAMILIES[family](modules[family], run):
                rows.append(run_case(case, ceil, run.device))
                write_record(record, args.out, BENCHMARK, device.type, started)  # a time limit keeps what is done
                print(f"done: {case.name}", flush=True)
                del case
            if run.device == "cuda":
                torch.cuda.empty_cache()
    print_table(ceil, rows)
    record["complete"] = True
    publish_record(record, args.out, BENCHMARK, device.type, started)
    return record


if __name__ == "__main__":
    main()
