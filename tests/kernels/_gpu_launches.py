"""Every kernel launch the dispatch makes on a GPU, recorded on a machine without one.

The host wrappers (`*_triton` in dg_lsp.kernels) are called with meta-device tensors of the
DiffusionGemma-26B-A4B geometry (`benchmarks/presets.py`), at the row counts the engine
produces (a one-token autoregressive step, canvases of 16 to 256 tokens, 512-token prompt
chunks and an odd remainder), with each kernel object swapped for a recorder. A recorder
turns the call into what Triton's JIT would compile: the argument types, the
specialization (integers equal to 1 become constants, multiples of 16 and pointers get a
divisibility hint, as `triton.runtime.jit` does), the constexprs and the launch options.
An autotuned launch records every configuration its pruning keeps for the target. So the
tile tables, the host wrappers' tile choices and the pruning are exercised exactly as on the
GPU, and only the compilation is left (`_compile_for_gpu.py`).

Needs triton with its NVIDIA backend, and TRITON_INTERPRET unset (the kernels must be JIT
functions, not interpreted ones).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dg_lsp.kernels.quant_tiles import AMPERE_SHARED_BYTES, HOPPER_SHARED_BYTES

REPO = Path(__file__).resolve().parents[2]

# What the targets allow (shared memory per block, opt-in), and what the dispatch assumes.
TARGETS = {
    90: {"name": "hopper", "shared_bytes": HOPPER_SHARED_BYTES, "sm_count": 132, "fp8": True},   # H100 / H200
    80: {"name": "ampere", "shared_bytes": AMPERE_SHARED_BYTES, "sm_count": 108, "fp8": False},  # A100: no fp8 dots
}
OPTION_NAMES = ("num_warps", "num_stages", "num_ctas", "maxnreg")


@dataclass
class Launch:
    """One compilation: the kernel, how Triton would specialize it, and why it is launched."""

    module: str  # e.g. dg_lsp.kernels._quant_matmul_triton
    kernel: str  # the @triton.jit function's name in that module
    signature: dict[str, str]
    constexprs: dict[str, Any]
    attrs: dict[tuple, list]
    options: dict[str, int]
    family: str  # sampler, soft_embed, attention, moe, quant_matmul
    purpose: str  # "dispatch" (what the engine runs) or "gpu-tests" (what the GPU test run compiles)
    context: dict[str, Any] = field(default_factory=dict)  # format, BLOCK_M, ...: for the checks
    sources: list[str] = field(default_factory=list)  # the scenarios that launch it

    def key(self) -> tuple:
        return (self.module, self.kernel, tuple(sorted(self.signature.items())), _freeze(self.constexprs),
                _freeze(self.attrs), _freeze(self.options))

    def tile_key(self) -> tuple:
        """The key without the specialization of sizes: what fixes shared memory and registers."""
        return (self.module, self.kernel, _freeze({k: v for k, v in self.signature.items() if k.endswith("_ptr")}),
                _freeze(self.meta()), _freeze(self.options))

    def meta(self) -> dict[str, Any]:
        """The kernel's declared constexprs (tiles, formats), without sizes specialized to 1."""
        return {k: v for k, v in self.constexprs.items() if k not in self.ones}

    @property
    def ones(self) -> list[str]:
        return self.context.get("ones", [])

    @property
    def label(self) -> str:
        meta = ",".join(f"{k}={v}" for k, v in self.meta().items())
        opts = ",".join(f"{k[4:] if k.startswith('num_') else k}={v}" for k, v in self.options.items())
        ones = ",".join(name for name in self.ones if not name.startswith("stride"))
        return f"{self.kernel}[{meta}][{opts}]" + (f"[{ones}=1]" if ones else "")


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


# -- specialization, as Triton's JIT computes it --------------------------------------------


def specialize(fn, bound: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any], dict[tuple, list]]:
    """(signature, constexprs, attrs) for `fn` called with `bound` (every argument by name)."""
    signature, constexprs, attrs = {}, {}, {}
    for index, param in enumerate(fn.params):
        name = param.name
        value = bound[name]
        if param.is_constexpr:
            signature[name] = "constexpr"
            constexprs[name] = value
            continue
        kind, divisible = _specialization(value, param.is_const, not param.do_not_specialize,
                                          not param.do_not_specialize_on_alignment)
        if kind == "constexpr":  # an integer equal to 1
            signature[name] = "constexpr"
            constexprs[name] = 1
            continue
        signature[name] = kind
        if divisible:
            attrs[(index,)] = [["tt.divisibility", 16]]
    return signature, constexprs, attrs


def _specialization(value: Any, is_const: bool, specialize: bool, align: bool) -> tuple[str, bool]:
    """(type, divisible by 16) as Triton's JIT decides them; its own function where it has one."""
    try:
        from triton.backends.nvidia.compiler import CUDABackend
        from triton.runtime.jit import native_specialize_impl
    except ImportError:  # older Triton: the same rules, written out
        if isinstance(value, bool):
            return "u1", False
        if isinstance(value, float):
            return "fp32", False
        if isinstance(value, int):
            if specialize and value == 1:
                return "constexpr", False
            kind = "i32" if -2**31 <= value < 2**31 else ("u64" if value >= 2**63 else "i64")
            return kind, specialize and align and value % 16 == 0
        from triton.runtime.jit import mangle_type

        return mangle_type(value), align and value.data_ptr() % 16 == 0
    kind, attr = native_specialize_impl(CUDABackend, value, is_const, specialize, align)
    return kind, attr == "D"


class Recorder:
    """Stands in for a @triton.jit kernel: `kernel[grid](*args, **kwargs)` records a Launch."""

    def __init__(self, fn, module: str, sink: Callable[[Launch], None], describe: Callable[[dict], dict]):
        self.fn, self.module, self.sink, self.describe = fn, module, sink, describe

    def __getitem__(self, grid):
        return self.record

    def record(self, *args, **kwargs):
        options = {k: kwargs.pop(k) for k in OPTION_NAMES if k in kwargs}
        options.setdefault("num_warps", 4)
        options.setdefault("num_stages", 3)
        self.emit(dict(zip(self.fn.arg_names, args)) | kwargs, options)

    def emit(self, bound: dict[str, Any], options: dict[str, int]) -> None:
        signature, constexprs, attrs = specialize(self.fn, bound)
        ones = [p.name for p in self.fn.params if not p.is_constexpr and signature[p.name] == "constexpr"]
        self.sink(Launch(self.module, self.fn.__name__, signature, constexprs, attrs, options, "", "",
                         {**self.describe(bound), "ones": ones}))


class AutotuneRecorder(Recorder):
    """Stands in for a `triton.autotune`d kernel: records one Launch per configuration the
    autotuner's pruning keeps (each is compiled and timed on first use)."""

    def __init__(self, tuner, module: str, sink, describe):
        super().__init__(tuner.fn, module, sink, describe)
        self.tuner = tuner

    def record(self, *args, **kwargs):
        named = dict(zip(self.fn.arg_names, args))
        prune = self.tuner.early_config_prune
        configs = prune(self.tuner.configs, named, **kwargs) if prune else self.tuner.configs
        for config in configs:
            options = {"num_warps": config.num_warps, "num_stages": config.num_stages}
            self.emit(named | kwargs | config.kwargs, options)


# -- the geometry -----------------------------------------------------------------------------


def geometry():
    """The 26B-A4B text config as dg_lsp parses it (benchmarks/presets.py holds the numbers)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from presets import text_config_for

    from dg_lsp.model.config import parse_config

    return parse_config({"model_type": "diffusion_gemma_text", **text_config_for("gemma-26b-a4b", None)})


def quantized_shapes(cfg) -> tuple[list[tuple[int, int]], list[tuple[int, int, int]]]:
    """(N, K) of every quantized linear layer and (E, N, K) of every quantized expert tensor,
    from the model itself (built on the meta device)."""
    from dg_lsp.model.diffusion_gemma import DiffusionGemma
    from dg_lsp.model.quant_modules import QUANTIZED_EXPERTS, QUANTIZED_LINEAR

    with torch.device("meta"):
        model = DiffusionGemma(cfg)
    linear, experts = set(), set()
    for name, tensor in model.named_parameters():
        if QUANTIZED_LINEAR.match(name):
            linear.add(tuple(tensor.shape))
        elif QUANTIZED_EXPERTS.match(name):
            experts.add(tuple(tensor.shape))
    return sorted(linear), sorted(experts)


def meta(*shape: int, dtype=torch.bfloat16) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta")


# Row counts the engine produces: one autoregressive token, canvases (MIN_CANVAS 16 to
# MAX_CANVAS 256, the infill default 96), full 512-token prompt chunks and an odd remainder.
CANVAS_ROWS = (16, 32, 96, 256)
PROMPT_ROWS = (512, 300)
AR_ROWS = (1,)


# -- scenarios: the host wrappers, called as the model and the engine call them -------------


def sampler_scenarios(cfg) -> Iterator[tuple[str, Callable[[], Any]]]:
    from dg_lsp.kernels import sampling

    v = cfg.vocab_size
    seed = meta(1, dtype=torch.int64)
    for rows in (*AR_ROWS, *CANVAS_ROWS):  # the model's logits are float32
        yield f"fused_sample rows={rows}", lambda rows=rows: sampling.fused_sample_triton(
            meta(rows, v, dtype=torch.float32), 1.0, seed)
    for canvas in (16, 256):
        yield f"soft_embeddings C={canvas}", lambda canvas=canvas: sampling.soft_embeddings_triton(
            meta(1, canvas, v, dtype=torch.float32), meta(v, cfg.hidden_size), torch.tensor(8.0, dtype=torch.bfloat16))


def attention_scenarios(cfg) -> Iterator[tuple[str, Callable[[], Any]]]:
    from dg_lsp.kernels import attention

    kinds = {}
    for spec in cfg.layers:
        kinds.setdefault(spec.kind, spec)
    for kind, spec in kinds.items():
        d, hkv, h = spec.head_dim, spec.num_kv_heads, cfg.num_attention_heads
        window = cfg.sliding_window if spec.is_sliding else None
        for canvas in (16, 256):
            for cached in ((window - 1,) if window else (300, 4096)):
                def run(canvas=canvas, cached=cached, d=d, hkv=hkv, h=h):
                    kv = lambda n: meta(1, hkv, n, d)  # noqa: E731
                    return attention.canvas_attention_triton(meta(1, h, canvas, d), kv(cached), kv(cached),
                                                             kv(canvas), kv(canvas))
                yield f"canvas_attention {kind} D={d} C={canvas} S={cached}", run


def moe_scenarios(cfg) -> Iterator[tuple[str, Callable[[], Any]]]:
    from dg_lsp.kernels import moe

    e, k, h, i = cfg.num_experts, cfg.top_k_experts, cfg.hidden_size, cfg.moe_intermediate_size
    for tokens in (*AR_ROWS, *CANVAS_ROWS, *PROMPT_ROWS):
        yield f"moe_experts N={tokens}", lambda tokens=tokens: moe.moe_experts_triton(
            meta(tokens, h), meta(tokens, k, dtype=torch.float32), meta(tokens, k, dtype=torch.int64),
            meta(e, 2 * i, h), meta(e, h, i))


def _quant_weight(shape: tuple[int, ...], fmt: str, group: int):
    from dg_lsp.kernels.quant_format import int4_group_size, payload_dtype

    *lead, n, k = shape
    if fmt == "int4":
        g = int4_group_size(k, group)
        return meta(*lead, n, k // 2, dtype=payload_dtype(fmt)), meta(*lead, n, k // g, dtype=torch.float32)
    return meta(*lead, n, k, dtype=payload_dtype(fmt)), meta(*lead, n, dtype=torch.float32)


def quant_scenarios(cfg, formats: tuple[str, ...], group: int = 128) -> Iterator[tuple[str, Callable[[], Any]]]:
    from dg_lsp.kernels import quant_matmul as qm

    linear, experts = quantized_shapes(cfg)
    for fmt in formats:
        for n, k in linear:
            q, s = _quant_weight((n, k), fmt, group)
            for rows in (*CANVAS_ROWS, *PROMPT_ROWS, *AR_ROWS):
                yield f"quant_matmul {fmt} N={n} K={k} M={rows}", lambda q=q, s=s, k=k, rows=rows, fmt=fmt: (
                    qm.quant_matmul_triton(meta(rows, k), q, s, fmt))
        for e, n, k in experts:
            q, s = _quant_weight((e, n, k), fmt, group)
            # gate_up reads each token's row for its top-k experts; down reads one row per pair
            fanout = cfg.top_k_experts if k == cfg.hidden_size else 1
            for tokens in (*CANVAS_ROWS, *PROMPT_ROWS, *AR_ROWS):
                pairs = tokens * cfg.top_k_experts
                yield f"grouped_quant_matmul {fmt} E={e} N={n} K={k} tokens={tokens}", (
                    lambda q=q, s=s, k=k, pairs=pairs, fanout=fanout, fmt=fmt: qm.grouped_quant_matmul_triton(
                        meta(pairs // fanout, k), q, s, fmt, meta(pairs, dtype=torch.int64), fanout))


def small_quant_scenarios(formats: tuple[str, ...]) -> Iterator[tuple[str, Callable[[], Any]]]:
    """Groups no listed BLOCK_K divides (a small model's, and the GPU tests'): the fallback tiles."""
    from dg_lsp.kernels import quant_matmul as qm
    from dg_lsp.kernels.quant_tiles import min_block_k

    for fmt in formats:
        for k, group in ((96, 32), (48, 16), (64, 32)):
            if fmt != "int8" and (k if fmt == "fp8" else group) % min_block_k(fmt):
                continue  # the dispatch keeps these on the reference (kernels_usable)
            q, s = _quant_weight((72, k), fmt, group)
            yield f"quant_matmul {fmt} K={k} group={group}", lambda q=q, s=s, k=k, fmt=fmt: qm.quant_matmul_triton(
                meta(37, k), q, s, fmt)


def gpu_test_scenarios() -> Iterator[tuple[str, Callable[[], Any]]]:
    """The fixed tiles and float32 inputs of tests/kernels, which run compiled on a GPU machine."""
    from dg_lsp.kernels import attention, moe, sampling

    f32 = torch.float32
    for d in (16, 40, 64, 512):
        yield f"test canvas_attention fp32 D={d}", lambda d=d: attention.canvas_attention_triton(
            meta(2, 4, 5, d, dtype=f32), *(meta(b, 2, n, d, dtype=f32) for b, n in ((1, 7), (1, 7), (2, 5), (2, 5))),
            config=attention.AttentionConfig(16, 16, 4, 1))
    for block_m in (16, 32):
        yield f"test moe fp32 block_m={block_m}", lambda block_m=block_m: moe.moe_experts_triton(
            meta(13, 33, dtype=f32), meta(13, 3, dtype=f32), meta(13, 3, dtype=torch.int64), meta(8, 40, 33, dtype=f32),
            meta(8, 33, 20, dtype=f32), config=moe.MoEConfig(block_m, 16, 16, 4, 1))
    for dtype in (f32, torch.bfloat16):
        yield f"test soft_embeddings {dtype}", lambda dtype=dtype: sampling.soft_embeddings_triton(
            meta(5, 300, dtype=f32), meta(300, 40, dtype=dtype), torch.tensor(2.0, dtype=dtype),
            block_m=16, block_n=32, block_k=64, splits=3)
    for block in (16, 128):
        yield f"test fused_sample block={block}", lambda block=block: sampling.fused_sample_triton(
            meta(5, 777, dtype=f32), 1.3, meta(1, dtype=torch.int64), meta(5, 777, dtype=f32), block=block, splits=3)


# -- recording ----------------------------------------------------------------------------------


def _describe_quant(bound: dict) -> dict:
    fmt = {0: "int8", 1: "int4", 2: "fp8"}[bound["FORMAT"]]
    # Rows of weight bytes 16-byte aligned: then nothing excuses narrow loads.
    return {"format": fmt, "grouped": bool(bound["GROUPED"]), "weight_rows_aligned": int(bound["stride_wn"]) % 16 == 0}


@contextlib.contextmanager
def recording(arch: int, autotune: bool, sink: Callable[[Launch], None]):
    """Kernel objects replaced by recorders, and the host wrappers told they run on `arch`."""
    from dg_lsp.kernels import _attention_triton, _moe_triton, _quant_matmul_triton, _runtime, _sampling_triton
    from dg_lsp.kernels import quant_matmul, quant_tiles, sampling
    from triton.runtime.autotuner import Autotuner
    from triton.runtime.jit import JITFunction

    target = TARGETS[arch]
    patches: list[tuple[Any, str, Any]] = [
        (sampling, "_sm_count", lambda device: target["sm_count"]),
        (_runtime, "device_capability", lambda device: (arch // 10, arch % 10)),
        (quant_matmul, "autotuning", lambda x: autotune),
        (quant_matmul, "device_shared_limit", lambda device: target["shared_bytes"]),
        (quant_tiles, "device_shared_limit", lambda device: target["shared_bytes"]),
    ]
    for module in (_sampling_triton, _attention_triton, _moe_triton, _quant_matmul_triton):
        describe = _describe_quant if module is _quant_matmul_triton else (lambda bound: {})
        for name, value in vars(module).items():
            if isinstance(value, Autotuner):
                patches.append((module, name, AutotuneRecorder(value, module.__name__, sink, describe)))
            elif isinstance(value, JITFunction) and name.endswith("_kernel"):  # not the @jit helpers
                patches.append((module, name, Recorder(value, module.__name__, sink, describe)))
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)


FAMILY = {"_sample_partials_kernel": "sampler", "_sample_combine_kernel": "sampler", "_row_logsumexp_kernel": "soft_embed",
          "_soft_embed_kernel": "soft_embed", "_canvas_attention_kernel": "attention", "_moe_gate_up_kernel": "moe",
          "_moe_down_kernel": "moe", "_quant_matmul_kernel": "quant_matmul"}


def launches_for(arch: int, full: bool = False) -> list[Launch]:
    """Every distinct launch for `arch` when `full`. Otherwise (the CI check, a few minutes on
    two cores) the quantized matmul, whose tile table times formats times row regimes makes
    most of the launches, is cut to what decides the outcome:

    - sm_90, the target: every tile configuration the dispatch can choose, each compiled once
      (at the first size specialization met: shared memory, registers and the instructions
      chosen depend on the tiles, not on whether a size is 1 or a multiple of 16), and every
      specialization of the untuned default tiles;
    - sm_80 (A100-class, a fallback target): the default tiles, once each, and the other
      kernels' dispatch (the GPU tests run on Hopper). The autotuner skips a candidate that
      runs out of resources; `--full` compiles everything for both targets.

    The other kernels are few and always compiled in full."""
    cfg = geometry()
    formats = ("int8", "int4", "fp8") if TARGETS[arch]["fp8"] else ("int8", "int4")
    groups = [
        ("dispatch", False, [*quant_scenarios(cfg, formats), *small_quant_scenarios(formats)]),  # DG_LSP_AUTOTUNE=0
        ("dispatch", True, [*sampler_scenarios(cfg), *attention_scenarios(cfg), *moe_scenarios(cfg),
                            *quant_scenarios(cfg, formats), *small_quant_scenarios(formats)]),
        ("gpu-tests", True, list(gpu_test_scenarios())),
    ]
    found: dict[tuple, Launch] = {}
    for purpose, autotune, scenarios in groups:
        for source, run in scenarios:
            recorded: list[Launch] = []
            with recording(arch, autotune, recorded.append):
                run()
            for launch in recorded:
                launch.family, launch.purpose = FAMILY[launch.kernel], purpose
                kept = found.setdefault(launch.key(), launch)
                kept.context["default_tiles"] = kept.context.get("default_tiles", False) or not autotune
                if source not in kept.sources:
                    kept.sources.append(source)
    launches = list(found.values())
    if full:
        return launches
    primary = arch == max(TARGETS)
    kept, tiles_seen = [], set()
    for launch in launches:
        new_tile = launch.tile_key() not in tiles_seen
        if launch.family != "quant_matmul":
            wanted = primary or launch.purpose == "dispatch"
        elif primary:
            wanted = new_tile or launch.context["default_tiles"]
        else:
            wanted = new_tile and launch.context["default_tiles"]
        if wanted:
            kept.append(launch)
            tiles_seen.add(launch.tile_key())
    return kept


def summary(launches: list[Launch]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for launch in launches:
        counts[launch.family] = counts.get(launch.family, 0) + 1
    return counts


if __name__ == "__main__":  # list them: python tests/kernels/_gpu_launches.py [-v]
    for arch in TARGETS:
        found = launches_for(arch)
        every = len(launches_for(arch, full=True))
        print(f"sm_{arch}: {len(found)} launches {summary(found)}; {every} with every specialization")
        if "-v" in sys.argv:
            for launch in found:
                print("  ", launch.purpose, launch.label, launch.sources[:2])
