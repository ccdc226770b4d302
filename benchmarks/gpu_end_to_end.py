"""GPU end-to-end benchmark: quantized DiffusionGemma-26B-A4B decoding at batch 1.

The model has the published geometry of google/diffusiongemma-26B-A4B-it (`PRESETS` in
benchmarks/presets.py: hidden 2816, 30 layers 5:1 sliding/full, 16 heads, 8 KV heads (2 on
full layers, head 512), 128 experts top-8 of width 704, dense MLP 2112, vocab 262,144, window
1024; checked against several copies of its config.json) with random weights: speed does not
depend on their values. Weights are made directly on the device (the model is built on the
meta device, quantized modules swapped in, then `to_empty` and filled in place): nothing the
size of the model is ever allocated on the host.

First the device's ceilings, measured in this run (benchmarks/ceilings.py: a 1 GiB copy, bf16
and fp8 8192^3 matmuls); every roofline below divides by them (the datasheet's is given too).
Then for each format (`--formats`, default fp8, int4, int8, bf16; `none` for only the
reference), one model at a time (they do not fit together), after warm-up, with
torch.cuda.synchronize around every timed call, medians of `--repeats`:

- step_ms: one decoder forward (a denoising step with self-conditioning) over a `--canvas`
  token canvas after a `--prompt-tokens` prompt, replayed from a CUDA graph (`GraphedDenoiser`);
  beside it the roofline max(bytes / bandwidth, FLOPs / peak), the bytes being every weight
  read once (routed experts by the share a canvas hits) plus the embedding's second read, and
  the logits' float32 traffic (`logits_bytes`, ~2 GB at canvas 256) as its own term;
- generation at 16 and 48 steps (`--steps`): one canvas with the stopping rule made
  unreachable, so exactly that many steps run: ms, tokens/s (canvas tokens / time), and the
  steps' roofline;
- autoregressive decoding of `--ar-tokens` tokens with the KV cache (greedy), twice: eager
  (the model's encode per token: launch-bound, a host sync per token) and replayed from CUDA
  graphs (benchmarks/graphed_ar.py: GPU-bound), each with its roofline (per token: the
  weights a token reads, i.e. the top-k experts of each layer, plus the KV cache); diffusion
  tokens/s over each (`over_autoregressive` is over the graphed one: the meaningful ratio);
- peak GPU memory (weights, KV cache, activations) and the weights' bytes.

Then transformers' DiffusionGemmaForBlockDiffusion (bf16, SDPA), built on the device the same
way, in the same run: step_ms and generation at the same step counts. transformers is imported
only then, so `--no-reference` runs where it lacks DiffusionGemma.

The JSON record (benchmarks/results/gpu_end_to_end-<device>-<date>.json, or `--out`) is
written after every format, marked `"complete": false` until the end: a run cut short by a
time limit keeps what it measured.

On an H100 (about 10 minutes):

    python benchmarks/gpu_end_to_end.py

Quick checks: `--layers 6` (a slice of the depth), `--formats int4 --no-reference`;
`--geometry tiny --device cpu` runs everything on a CPU in seconds (the test does).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
import ceilings  # noqa: E402
from bench_records import device_description, publish_record, record_header, write_record  # noqa: E402
from graphed_ar import GraphedAutoregressive, rerun  # noqa: E402
from presets import VISION_CONFIG, default_dtype, text_config_for  # noqa: E402

from dg_lsp.engine.cuda_graph import GraphedDenoiser  # noqa: E402
from dg_lsp.engine.sampler import DenoiseSettings, generate  # noqa: E402
from dg_lsp.kernels.quant_format import int4_group_size  # noqa: E402
from dg_lsp.model import ops  # noqa: E402
from dg_lsp.model.config import parse_config  # noqa: E402
from dg_lsp.model.diffusion_gemma import DiffusionGemma  # noqa: E402
from dg_lsp.model.quant_modules import QUANTIZED_EXPERTS, QUANTIZED_LINEAR, swap_quantized_modules  # noqa: E402

BENCHMARK = "gpu_end_to_end"
GEOMETRIES = {"26b-a4b": "gemma-26b-a4b", "tiny": "tiny"}
GROUP_SIZE = 128
NEVER_STOP = dict(stability_threshold=10_000, confidence_threshold=1e-9)
# Dense peaks (no sparsity) and HBM bandwidth from NVIDIA's data sheets, reported beside the
# measured ceilings (which the rooflines use); --peak-* override the measured ones.
PEAKS = {  # name fragment: (bytes/s, bf16 FLOP/s, fp8 FLOP/s)
    "H100 PCIe": (2.0e12, 756e12, 1513e12),
    "H100": (3.35e12, 989e12, 1979e12),
    "H200": (4.8e12, 989e12, 1979e12),
}


# -- building models on the device ---------------------------------------------------------


def our_config(geometry: str, layers: int | None, canvas: int):
    text = text_config_for(GEOMETRIES[geometry], layers)
    return parse_config({"model_type": "diffusion_gemma_text", **text, "canvas_length": canvas})


def quantizable_modules(model: DiffusionGemma) -> dict[str, str]:
    found = {}
    for name, _ in model.named_parameters():
        if QUANTIZED_LINEAR.match(name):
            found[name.rsplit(".", 1)[0]] = "linear"
        elif QUANTIZED_EXPERTS.match(name):
            found[name.rsplit(".", 1)[0]] = "experts"
    return found


def _scale_shapes(model: DiffusionGemma, modules: dict[str, str]) -> dict[str, tuple]:
    """int4 scale shapes (group counts) as the checkpoint writer would produce them."""
    shapes = {}
    for name, kind in modules.items():
        module = model.get_submodule(name)
        tensors = {"weight": module.weight} if kind == "linear" else {
            "gate_up_proj": module.gate_up_proj, "down_proj": module.down_proj}
        for part, tensor in tensors.items():
            k = tensor.shape[-1]
            shapes[f"{name}.{part}_scale"] = (*tensor.shape[:-1], k // int4_group_size(k, GROUP_SIZE))
    return shapes


# Weight values of std ~0.02 from each payload's spread (uniform int8 / int4 codes, normal fp8).
SCALE_FOR_STD = {"int8": 0.02 / 73.3, "int4": 0.02 / 4.6, "fp8": 0.02}


@torch.no_grad()
def build_ours(cfg, fmt: str, device: torch.device, dtype: torch.dtype, seed: int) -> DiffusionGemma:
    with torch.device("meta"), default_dtype(dtype):  # float tensors in `dtype`, payloads and scales as stored
        model = DiffusionGemma(cfg)
        if fmt != "bf16":
            modules = quantizable_modules(model)
            swap_quantized_modules(model, modules, fmt, _scale_shapes(model, modules))
    model.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        _fill(name, tensor, generator, fmt)
    for kind in {spec.kind for spec in cfg.layers}:  # computed buffers, lost by to_empty
        spec = next(s for s in cfg.layers if s.kind == kind)
        inv = ops.rope_inv_freq(spec.head_dim, spec.rope_theta, spec.rope_type, spec.partial_rotary_factor)
        model.register_buffer(f"{kind}_inv_freq", inv.to(device), persistent=False)
    return model.eval().requires_grad_(False)


def _fill(name: str, tensor: torch.Tensor, generator: torch.Generator, fmt: str) -> None:
    """Random values of the right kind, in place, on the device."""
    if tensor.dtype == torch.int8:
        tensor.copy_(torch.randint(-127, 128, tensor.shape, generator=generator, device=tensor.device))
    elif tensor.dtype == torch.uint8:
        tensor.copy_(torch.randint(0, 256, tensor.shape, generator=generator, device=tensor.device))
    elif tensor.dtype == torch.float8_e4m3fn:
        for rows in tensor.view(-1, tensor.shape[-1]).split(4096):  # bounded float32 temporaries
            rows.copy_(torch.randn(rows.shape, generator=generator, device=rows.device).to(rows.dtype))
    elif name.endswith(("weight_scale", "proj_scale")):
        tensor.fill_(SCALE_FOR_STD[fmt])
    elif "norm" in name or "scale" in name or "scalar" in name:  # norms, router scales, layer scalars
        tensor.fill_(1.0)
    elif tensor.is_floating_point():
        tensor.normal_(0.0, 0.02, generator=generator)


@torch.no_grad()
def build_reference(geometry: str, layers: int | None, canvas: int, device: torch.device, dtype: torch.dtype):
    from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion

    text = text_config_for(GEOMETRIES[geometry], layers)
    cfg = DiffusionGemmaConfig(text_config=text, vision_config=dict(VISION_CONFIG), canvas_length=canvas)
    with torch.device(device), default_dtype(dtype):  # initialised on the device: nothing on the host
        ref = DiffusionGemmaForBlockDiffusion._from_config(cfg, attn_implementation="sdpa")
    return ref.eval()


def weight_bytes(model: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


# -- timing ----------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int) -> float:
    times = []
    for i in range(warmup + repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def random_ids(n: int, vocab: int, device, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, min(vocab, 255_000), (1, n), generator=g).to(device)


@torch.inference_mode()
def measure_ours(model: DiffusionGemma, args, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    cfg = model.config
    prompt = random_ids(args.prompt_tokens, cfg.vocab_size, device, args.seed)
    capacity = args.prompt_tokens + args.canvas + args.ar_tokens
    graphed = GraphedDenoiser(model, enabled=device.type == "cuda" and not args.no_graph)
    cache = model.new_cache(capacity=capacity)
    model.encode(prompt, cache)
    canvas = random_ids(args.canvas, cfg.vocab_size, device, args.seed + 1)
    cond = torch.randn(1, args.canvas, cfg.vocab_size, device=device).to(dtype)
    out: dict[str, Any] = {
        "step_ms": median_ms(lambda: graphed.denoise(canvas, cache, cond), device, args.repeats, args.warmup + 2),
        "graph_captures": graphed.captures,
    }
    for steps in args.steps:
        settings = DenoiseSettings(canvas_length=args.canvas, max_new_tokens=args.canvas, max_denoising_steps=steps,
                                   **NEVER_STOP)

        def run() -> None:
            cache.truncate(args.prompt_tokens)
            generate(graphed, cache, settings, torch.Generator(device=device).manual_seed(args.seed))

        ms = median_ms(run, device, args.repeats, args.warmup)
        out[f"generate_{steps}"] = {"ms": ms, "ms_per_step": ms / steps, "tokens_per_s": args.canvas / (ms / 1e3)}

    first = prompt[:, -1:]

    def autoregressive_eager() -> torch.Tensor:
        cache.truncate(args.prompt_tokens)
        token, tokens = first, []
        for _ in range(args.ar_tokens):
            hidden = model.encode(token, cache)
            token = model.logits(hidden[:, -1:]).argmax(dim=-1)
            tokens.append(token)
        return torch.cat(tokens, dim=1)[0]

    eager_ms = median_ms(autoregressive_eager, device, args.repeats, args.warmup)
    out["autoregressive_eager"] = {"tokens": args.ar_tokens, "ms": eager_ms,
                                   "tokens_per_s": args.ar_tokens / (eager_ms / 1e3)}
    # The same decoding replayed from CUDA graphs (emulated by re-running off CUDA).
    cache.truncate(args.prompt_tokens)
    graphs = device.type == "cuda" and not args.no_graph
    ar = GraphedAutoregressive(model, cache, args.ar_tokens, capture=None if graphs else rerun)
    ar.capture_all(first)
    graphed_ms = median_ms(lambda: ar.decode(first), device, args.repeats, args.warmup)
    agree = float((ar.decode(first) == autoregressive_eager()).float().mean())
    out["autoregressive"] = {"tokens": args.ar_tokens, "ms": graphed_ms, "tokens_per_s": args.ar_tokens / (graphed_ms / 1e3),
                             "cuda_graphs": graphs, "tokens_equal_to_eager": agree}
    cache.truncate(args.prompt_tokens)
    for steps in args.steps:
        gen = out[f"generate_{steps}"]
        gen["over_autoregressive"] = gen["tokens_per_s"] / out["autoregressive"]["tokens_per_s"]
        gen["over_autoregressive_eager"] = gen["tokens_per_s"] / out["autoregressive_eager"]["tokens_per_s"]
    return out


@torch.inference_mode()
def measure_reference(ref, args, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    from transformers.cache_utils import DynamicCache

    vocab = ref.config.get_text_config(decoder=True).vocab_size
    prompt = random_ids(args.prompt_tokens, vocab, device, args.seed)
    cache = DynamicCache(config=ref.config.get_text_config(decoder=True))
    ref.model.encoder(input_ids=prompt, past_key_values=cache)
    canvas = random_ids(args.canvas, vocab, device, args.seed + 1)
    cond = torch.randn(1, args.canvas, vocab, device=device).to(dtype)
    out: dict[str, Any] = {"step_ms": median_ms(
        lambda: ref(decoder_input_ids=canvas, past_key_values=cache, self_conditioning_logits=cond).logits,
        device, args.repeats, args.warmup)}
    for steps in args.steps:
        def run() -> None:
            ref.generate(prompt, max_new_tokens=args.canvas, max_denoising_steps=steps, eos_token_id=None,
                         pad_token_id=0, **NEVER_STOP)

        ms = median_ms(run, device, args.repeats, args.warmup)
        out[f"generate_{steps}"] = {"ms": ms, "ms_per_step": ms / steps, "tokens_per_s": args.canvas / (ms / 1e3)}
    return out


# -- roofline --------------------------------------------------------------------------------


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def roofline_ms(model: DiffusionGemma, fmt: str, canvas: int, prompt: int, peaks: tuple[float, float, float | None]) -> dict:
    """max(bytes / bandwidth, FLOPs / peak) for one denoising step at batch 1.

    Bytes: every weight once, routed experts scaled by the share expected to be hit by
    canvas * top_k uniform draws, plus a second read of the embedding (the soft embeddings
    of self-conditioning; the first is the tied LM head). FLOPs: 2 per active weight per
    canvas token, the LM head and soft embeddings (2 x 2 C V H), attention over prompt + canvas.
    Apart, `logits_bytes`: the float32 logits [C, V] cross memory about eight times a step (the
    LM head's bf16 output, its float32 copy, the softcap, the temperature, the sampler, and the
    next step's log-sum-exp and soft embeddings), ~2 GB at canvas 256, which a sampler reading
    bf16 logits with the softcap and temperature folded in would avoid."""
    cfg = model.config
    bandwidth, bf16_peak, fp8_peak = peaks
    tensors = dict([*model.named_parameters(), *model.named_buffers()])
    expert_bytes = _bytes(t for n, t in tensors.items() if ".experts." in n)
    hit = 1.0
    if cfg.is_moe:
        hit = 1 - (1 - cfg.top_k_experts / cfg.num_experts) ** canvas
    embed = model.embed_tokens.weight
    total = weight_bytes(model)
    bytes_read = total - expert_bytes + expert_bytes * hit + embed.numel() * embed.element_size()
    h, v = cfg.hidden_size, cfg.vocab_size
    active = 0
    for spec in cfg.layers:
        heads, d = cfg.num_attention_heads, spec.head_dim
        active += h * heads * d * 2 + h * spec.num_kv_heads * d * (2 if spec.has_v_proj else 1)
        active += 3 * h * cfg.intermediate_size
        if cfg.is_moe:
            active += cfg.top_k_experts * 3 * h * cfg.moe_intermediate_size
    active += 3 * h * cfg.intermediate_size  # self-conditioning MLP
    attn = sum(4 * canvas * (prompt + canvas) * cfg.num_attention_heads * s.head_dim for s in cfg.layers)
    flops = 2 * canvas * active + 4 * canvas * v * h + attn
    peak = (fp8_peak or bf16_peak) if fmt == "fp8" else bf16_peak
    memory_ms, compute_ms = bytes_read / bandwidth * 1e3, flops / peak * 1e3
    logits_bytes = 8 * canvas * v * 4
    return {"bytes_read": bytes_read, "flops": flops, "memory_ms": memory_ms, "compute_ms": compute_ms,
            "roofline_ms": max(memory_ms, compute_ms), "logits_bytes": logits_bytes,
            "roofline_with_logits_ms": max((bytes_read + logits_bytes) / bandwidth * 1e3, compute_ms)}


def ar_roofline_ms(model: DiffusionGemma, prompt: int, tokens: int, bandwidth: float) -> dict:
    """Bytes per greedy token at batch 1 over bandwidth (its FLOPs are negligible): every weight
    the causal encoder and the LM head read (the top-k experts of each layer, not all of them;
    not the self-conditioning MLP) plus the KV cache it attends to (sliding layers: the window),
    at the average context length of the run."""
    cfg = model.config
    tensors = dict([*model.named_parameters(), *model.named_buffers()])
    expert_bytes = _bytes(t for n, t in tensors.items() if ".experts." in n)
    self_cond = _bytes(t for n, t in tensors.items() if n.startswith("self_conditioning."))
    share = cfg.top_k_experts / cfg.num_experts if cfg.is_moe else 1.0
    weights = weight_bytes(model) - self_cond - expert_bytes + expert_bytes * share
    context = prompt + tokens / 2
    element = model.embed_tokens.weight.element_size()
    kv = sum(2 * s.num_kv_heads * s.head_dim * element * (min(context, cfg.sliding_window) if s.is_sliding else context)
             for s in cfg.layers)
    per_token_ms = (weights + kv) / bandwidth * 1e3
    return {"bytes_per_token": weights + kv, "ms_per_token": per_token_ms, "tokens_per_s": 1e3 / per_token_ms}


def datasheet_peaks(device: torch.device) -> tuple[float, float, float]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    return next((p for k, p in PEAKS.items() if k in name), PEAKS["H100"])


def measured_peaks(ceil: ceilings.Ceilings, args) -> tuple[float, float, float | None]:
    """(bytes/s, bf16 FLOP/s, fp8 FLOP/s) measured in this run, unless --peak-* say otherwise."""
    fp8 = ceil.fp8_tflop_per_s * 1e12 if ceil.fp8_tflop_per_s else None
    return (args.peak_bandwidth or ceil.gb_per_s * 1e9,
            args.peak_tflops_bf16 * 1e12 if args.peak_tflops_bf16 else ceil.bf16_tflop_per_s * 1e12,
            args.peak_tflops_fp8 * 1e12 if args.peak_tflops_fp8 else fp8)


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--geometry", choices=sorted(GEOMETRIES), default="26b-a4b")
    p.add_argument("--layers", type=int, default=None, help="run only the first N layers (memory or time short)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--formats", default="fp8,int4,int8,bf16",
                   help="comma-separated: fp8, int8, int4, bf16; 'none' for the reference alone")
    p.add_argument("--steps", default="16,48", help="denoising step counts to time")
    p.add_argument("--canvas", type=int, default=256)
    p.add_argument("--prompt-tokens", type=int, default=512)
    p.add_argument("--ar-tokens", type=int, default=64, help="tokens decoded autoregressively")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-reference", action="store_true", help="skip transformers' reference")
    p.add_argument("--no-graph", action="store_true", help="eager denoising steps (no CUDA graph)")
    p.add_argument("--peak-bandwidth", type=float, default=None, help="bytes/s (default: measured)")
    p.add_argument("--peak-tflops-bf16", type=float, default=None)
    p.add_argument("--peak-tflops-fp8", type=float, default=None)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)
    args.formats = [f.strip() for f in args.formats.split(",") if f.strip() and f.strip() != "none"]
    unknown = set(args.formats) - {"fp8", "int8", "int4", "bf16"}
    if unknown:
        p.error(f"unknown formats {sorted(unknown)}")
    args.steps = [int(s) for s in args.steps.split(",")]
    return args


def _reset_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: use --geometry tiny --device cpu for a smoke run")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    started = dt.datetime.now()
    cfg = our_config(args.geometry, args.layers, args.canvas)
    measured = ceilings.measure(device)
    peaks = measured_peaks(measured, args)
    sheet = datasheet_peaks(device)
    results: dict[str, Any] = {}
    record = {
        **record_header(BENCHMARK, started, device_description(device)),
        "complete": False,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "geometry": {"name": args.geometry, "layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size,
                     "experts": cfg.num_experts, "top_k": cfg.top_k_experts, "vocab": cfg.vocab_size},
        "ceilings": measured.as_dict(),
        "peaks": {"bytes_per_s": peaks[0], "bf16_flops": peaks[1], "fp8_flops": peaks[2], "source": "measured"},
        "datasheet_peaks": {"bytes_per_s": sheet[0], "bf16_flops": sheet[1], "fp8_flops": sheet[2]},
        "results": results,
    }
    print(f"ceilings: copy {measured.gb_per_s:,.0f} GB/s, bf16 matmul {measured.bf16_tflop_per_s:,.0f} TFLOP/s, "
          f"fp8 matmul {measured.fp8_tflop_per_s or 0:,.0f} TFLOP/s", flush=True)
    for fmt in args.formats:
        _reset_memory(device)
        model = build_ours(cfg, fmt, device, dtype, args.seed)
        figures = measure_ours(model, args, device, dtype)
        figures["weights_gb"] = weight_bytes(model) / 1e9
        figures["peak_memory_gb"] = _peak_gb(device)
        figures["roofline"] = roofline_ms(model, fmt, args.canvas, args.prompt_tokens, peaks)
        figures["datasheet_roofline_ms"] = roofline_ms(model, fmt, args.canvas, args.prompt_tokens, sheet)["roofline_ms"]
        figures["step_over_roofline"] = figures["step_ms"] / figures["roofline"]["roofline_ms"]
        for steps in args.steps:
            figures[f"generate_{steps}"]["roofline_ms"] = steps * figures["roofline"]["roofline_ms"]
        ar_floor = ar_roofline_ms(model, args.prompt_tokens, args.ar_tokens, peaks[0])
        for kind in ("autoregressive", "autoregressive_eager"):
            figures[kind]["roofline"] = ar_floor
            figures[kind]["over_roofline"] = (figures[kind]["ms"] / args.ar_tokens) / ar_floor["ms_per_token"]
        results[fmt] = figures
        del model
        write_record(record, args.out, BENCHMARK, device.type, started)  # a time limit keeps what is done
        print(f"{fmt:>5}: step {figures['step_ms']:.2f} ms (roofline {figures['roofline']['roofline_ms']:.2f}), "
              + ", ".join(f"{s} steps {figures[f'generate_{s}']['tokens_per_s']:.0f} tok/s" for s in args.steps)
              + f", AR {figures['autoregressive']['tokens_per_s']:.1f} tok/s graphed "
              f"(roofline {ar_floor['tokens_per_s']:.0f}), {figures['autoregressive_eager']['tokens_per_s']:.1f} eager, "
              f"peak {figures['peak_memory_gb']} GB", flush=True)
    if not args.no_reference:
        _reset_memory(device)
        ref = build_reference(args.geometry, args.layers, args.canvas, device, dtype)
        results["reference_bf16"] = measure_reference(ref, args, device, dtype)
        results["reference_bf16"]["peak_memory_gb"] = _peak_gb(device)
        del ref
        print("  ref: step {:.2f} ms, ".format(results["reference_bf16"]["step_ms"])
              + ", ".join(f"{s} steps {results['reference_bf16'][f'generate_{s}']['tokens_per_s']:.0f} tok/s"
                          for s in args.steps), flush=True)
    record["complete"] = True
    publish_record(record, args.out, BENCHMARK, device.type, started)
    return record


if __name__ == "__main__":
    main()
