"""Engine benchmark: dg_lsp's DiffusionGemma against the Hugging Face reference, same weights.

A random-weight checkpoint of the chosen geometry (`--preset`) is written with transformers
into a temporary directory, then loaded twice from the same files: by `dg_lsp.model.loader`
("ours") and by `transformers.DiffusionGemmaForBlockDiffusion` with SDPA attention
("reference"). Both are timed in the same process, after warm-up, under `torch.no_grad()`,
with `torch.cuda.synchronize()` around every timed call on CUDA. Each figure is the median
over `--repeats` runs. The two implementations' runs alternate (ours, reference, reference,
ours, ...) so a shared machine whose speed drifts slows both alike; the raw samples go into
the JSON record too.

Figures, for both implementations:

- encode: the causal encoder over a random prompt of `--prompt-tokens` tokens, writing a
  fresh KV cache each run (the cache is created untimed; its storage is allocated inside the
  timed call, as the reference's DynamicCache does);
- denoise step: one decoder forward over a `--canvas`-token canvas after that prompt, with
  self-conditioning logits given (every step but the first), reading the cache only;
- generation: one canvas end to end, prompt encoding included (the reference's `generate`
  always encodes its prompt), with the stopping rule made unreachable (stability 1, confidence
  threshold 1e-9) so exactly `--steps` denoising steps run. Reported: wall time, NFE (ours:
  `GenerateResult.nfe`; reference: calls of its decoder, counted by a forward pre-hook) and
  tokens/s = canvas tokens / generation seconds. Ours samples with its default "fast"
  inverse-CDF draw; the reference with torch.multinomial;
- speed-up = reference time / our time for each (> 1: ours is faster; for tokens/s the same
  number, ours / reference).

For ours only, the prompt cache: `PromptCache.prepare(prompt)` cold (a new PromptCache per
run), then `prepare(prompt + 4 new tokens)` warm (the base prompt prepared untimed first):
milliseconds, tokens encoded, and the speed-up cold / warm.

As a sanity check the two decoders' logits for the same canvas, cache and self-conditioning
input are compared (largest absolute difference), so a misread checkpoint is not timed as if
it were the same model.

The table is printed, a JSON record is written to
`<out>/engine-<device kind>-<YYYYmmdd-HHMMSS>.json`, and the record is printed as one line.

Run from the repository root:

    python benchmarks/engine.py --preset small            # CPU default, a few minutes at most
    python benchmarks/engine.py --preset tiny --repeats 2 --warmup 1   # smoke run
    python benchmarks/engine.py --preset gemma-26b-a4b --layers 4      # GPU only
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from tqdm import tqdm
from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion
from transformers.cache_utils import DynamicCache

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_records import device_description, publish_record, record_header  # noqa: E402
from presets import PRESETS, VISION_CONFIG, default_dtype, text_config_for  # noqa: E402,F401

from dg_lsp.engine.prompt_cache import PromptCache  # noqa: E402
from dg_lsp.engine.sampler import DenoiseSettings, generate  # noqa: E402
from dg_lsp.model.loader import load_model  # noqa: E402

BENCHMARK = "engine"
PROMPT_EXTENSION = 4  # tokens "typed" after the prompt for the warm prompt-cache figure
# Prompt tokens are drawn below the multimodal special ids (boi 255999, image 258880, ...),
# so the reference never takes a random prompt for an image prompt.
MAX_PROMPT_TOKEN_ID = 255_000


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# -- setup -------------------------------------------------------------------------------


def build_checkpoint(text_config: dict[str, Any], canvas: int, dtype: torch.dtype, directory: Path, seed: int) -> None:
    """Write a random-weight DiffusionGemma checkpoint (config.json + safetensors) to `directory`."""
    torch.manual_seed(seed)
    cfg = DiffusionGemmaConfig(text_config=dict(text_config), vision_config=dict(VISION_CONFIG), canvas_length=canvas)
    with default_dtype(dtype):
        model = DiffusionGemmaForBlockDiffusion(cfg)
    model.save_pretrained(directory)
    del model


def load_both(directory: Path, device: torch.device, dtype: torch.dtype, canvas: int):
    """(our DiffusionGemma, the reference DiffusionGemmaForBlockDiffusion), from the same files."""
    ours = load_model(directory, device=device, dtype=dtype, with_tokenizer=False, progress=False).model
    ref = DiffusionGemmaForBlockDiffusion.from_pretrained(directory, dtype=dtype, attn_implementation="sdpa")
    ref = ref.to(device).eval()
    ref.config.canvas_length = canvas
    return ours, ref


def reference_cache(ref) -> DynamicCache:
    return DynamicCache(config=ref.config.get_text_config(decoder=True))


# -- timing ------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once_ms(fn: Callable[..., Any], device: torch.device, setup: Callable[[], Any] | None = None) -> float:
    """Wall time of one `fn()` in milliseconds; with `setup`, of `fn(setup())`, setup untimed."""
    arg = setup() if setup is not None else None
    _sync(device)
    start = time.perf_counter()
    fn(arg) if setup is not None else fn()
    _sync(device)
    return (time.perf_counter() - start) * 1e3


def median_ms(
    fn: Callable[..., Any],
    repeats: int,
    warmup: int,
    device: torch.device,
    setup: Callable[[], Any] | None = None,
    bar: tqdm | None = None,
    samples: list[float] | None = None,
) -> float:
    """Median wall time of `fn()` in milliseconds over `repeats` runs, after `warmup` untimed ones.
    With `setup`, `fn(setup())` is timed and `setup()` (fresh caches and the like) is not.
    The timed runs are appended to `samples` when given."""
    times = []
    for i in range(warmup + repeats):
        elapsed = time_once_ms(fn, device, setup)
        if i >= warmup:
            times.append(elapsed)
        if bar is not None:
            bar.update(1)
    if samples is not None:
        samples.extend(times)
    return statistics.median(times)


@dataclass
class Case:
    fn: Callable[..., Any]
    setup: Callable[[], Any] | None = None


def paired_median_ms(ours: Case, reference: Case, args, device: torch.device, bar: tqdm) -> dict[str, Any]:
    """Both implementations timed in alternation (each run of one is followed by a run of the
    other, the order swapped every round) so that both see the same machine: a shared CPU's
    speed can drift several-fold within seconds. Each is warmed up first; medians and the
    raw samples (ms) are returned."""
    for case in (ours, reference):
        for _ in range(args.warmup):
            time_once_ms(case.fn, device, case.setup)
            bar.update(1)
    samples: dict[str, list[float]] = {"ours": [], "reference": []}
    for round_ in range(args.repeats):
        order = [("ours", ours), ("reference", reference)]
        for name, case in order if round_ % 2 == 0 else order[::-1]:
            median_ms(case.fn, 1, 0, device, case.setup, bar, samples[name])
    ours_ms, ref_ms = (statistics.median(samples[k]) for k in ("ours", "reference"))
    return {"ours_ms": ours_ms, "reference_ms": ref_ms, "speedup": speedup(ref_ms, ours_ms),
            "ours_samples_ms": samples["ours"], "reference_samples_ms": samples["reference"]}


def speedup(reference: float, ours: float) -> float:
    return reference / ours if ours > 0 else float("nan")


# -- the figures ---------------------------------------------------------------------------


def measure_encode(ours, ref, prompt: torch.Tensor, args, device, bar) -> dict[str, Any]:
    """Prompt encoding into a fresh cache each run."""
    capacity = prompt.shape[1] + args.canvas
    bar.set_description("encode")
    return paired_median_ms(
        Case(lambda cache: ours.encode(prompt, cache), lambda: ours.new_cache(batch_size=1, capacity=capacity)),
        Case(lambda cache: ref.model.encoder(input_ids=prompt, past_key_values=cache), lambda: reference_cache(ref)),
        args, device, bar,
    )


def encoded_caches(ours, ref, prompt: torch.Tensor, canvas: int):
    """Both caches holding the prompt (untimed), for the decoder figures."""
    ours_cache = ours.new_cache(batch_size=1, capacity=prompt.shape[1] + canvas)
    ours.encode(prompt, ours_cache)
    ref_cache = reference_cache(ref)
    ref.model.encoder(input_ids=prompt, past_key_values=ref_cache)
    return ours_cache, ref_cache


def measure_denoise_step(ours, ref, prompt: torch.Tensor, args, device, dtype, bar) -> dict[str, Any]:
    """One decoder forward over the canvas with self-conditioning logits, cache read-only."""
    ours_cache, ref_cache = encoded_caches(ours, ref, prompt, args.canvas)
    vocab = ours.config.vocab_size
    gen = torch.Generator(device="cpu").manual_seed(args.seed + 1)
    canvas = torch.randint(0, vocab, (1, args.canvas), generator=gen).to(device)
    # The sampler hands the decoder temperature-scaled logits cast to the embedding dtype.
    self_cond = (torch.randn(1, args.canvas, vocab, generator=gen) * 4).to(device=device, dtype=dtype)

    def ours_step():
        return ours.denoise(canvas, ours_cache, self_cond)

    def ref_step():
        return ref(decoder_input_ids=canvas, past_key_values=ref_cache, self_conditioning_logits=self_cond).logits

    ref_length = ref_cache.get_seq_length()
    max_diff = (ours_step().float() - ref_step().float()).abs().max().item()
    if ref_cache.get_seq_length() != ref_length or ours_cache.length != prompt.shape[1]:
        raise RuntimeError("a decoder call changed its KV cache: the step timings would be wrong")

    bar.set_description("denoise step")
    return {**paired_median_ms(Case(ours_step), Case(ref_step), args, device, bar), "logits_max_abs_diff": max_diff}


# Stopping made unreachable (random weights never reach a mean entropy of 1e-9), so every
# generation runs exactly max_denoising_steps steps.
STABILITY_THRESHOLD = 1
CONFIDENCE_THRESHOLD = 1e-9


def measure_generation(ours, ref, prompt: torch.Tensor, args, device, bar) -> dict[str, Any]:
    """One canvas end to end: encode the prompt, then denoise for --steps steps."""
    c = args.canvas
    settings = DenoiseSettings(canvas_length=c, max_new_tokens=c, max_denoising_steps=args.steps,
                               stability_threshold=STABILITY_THRESHOLD, confidence_threshold=CONFIDENCE_THRESHOLD)
    capacity = prompt.shape[1] + c
    seen: dict[str, Any] = {}
    decoder_calls = [0]

    def ours_run(generator: torch.Generator) -> None:
        cache = ours.new_cache(batch_size=1, capacity=capacity)
        ours.encode(prompt, cache)
        result = generate(ours, cache, settings, generator)
        seen["ours_nfe"], seen["ours_tokens"] = result.nfe, result.tokens.shape[1]

    def ref_setup() -> None:
        torch.manual_seed(args.seed)  # the reference samples from the global generator
        decoder_calls[0] = 0

    def ref_run(_: None) -> None:
        out = ref.generate(prompt, max_new_tokens=c, max_denoising_steps=args.steps, eos_token_id=None,
                           pad_token_id=0, stability_threshold=STABILITY_THRESHOLD,
                           confidence_threshold=CONFIDENCE_THRESHOLD)
        seen["ref_nfe"], seen["ref_tokens"] = decoder_calls[0], out.sequences.shape[1] - prompt.shape[1]

    def count_decoder_call(module, args_, kwargs_) -> None:
        decoder_calls[0] += 1

    bar.set_description("generation")
    hook = ref.model.decoder.register_forward_pre_hook(count_decoder_call, with_kwargs=True)
    try:
        timed = paired_median_ms(
            Case(ours_run, lambda: torch.Generator(device=device).manual_seed(args.seed)),
            Case(ref_run, ref_setup),
            args, device, bar,
        )
    finally:
        hook.remove()
    return {
        **timed,
        "ours_sampling": settings.sampling,  # "fast": inverse-CDF draws instead of torch.multinomial
        "ours_nfe": seen["ours_nfe"], "reference_nfe": seen["ref_nfe"],
        "ours_tokens": seen["ours_tokens"], "reference_tokens": seen["ref_tokens"],
        "ours_tokens_per_s": seen["ours_tokens"] / (timed["ours_ms"] / 1e3),
        "reference_tokens_per_s": seen["ref_tokens"] / (timed["reference_ms"] / 1e3),
    }


def measure_prompt_cache(ours, prompt_ids: list[int], args, device, bar) -> dict[str, Any]:
    """PromptCache.prepare: a cold prompt, then the same prompt with a few tokens typed after it."""
    gen = torch.Generator(device="cpu").manual_seed(args.seed + 2)
    extension = torch.randint(0, min(ours.config.vocab_size, MAX_PROMPT_TOKEN_ID), (PROMPT_EXTENSION,), generator=gen)
    extended = prompt_ids + extension.tolist()
    encoded: dict[str, int] = {}

    def cold(cache: PromptCache) -> None:
        encoded["cold"] = cache.prepare(prompt_ids)[1]

    def warm_setup() -> PromptCache:
        cache = PromptCache(ours)
        cache.prepare(prompt_ids)
        return cache

    def warm(cache: PromptCache) -> None:
        encoded["warm"] = cache.prepare(extended)[1]

    cold_samples: list[float] = []
    warm_samples: list[float] = []
    bar.set_description("prompt cache cold")
    cold_ms = median_ms(cold, args.repeats, args.warmup, device, lambda: PromptCache(ours), bar, cold_samples)
    bar.set_description("prompt cache warm")
    warm_ms = median_ms(warm, args.repeats, args.warmup, device, warm_setup, bar, warm_samples)
    return {"cold_ms": cold_ms, "cold_tokens_encoded": encoded["cold"],
            "warm_ms": warm_ms, "warm_tokens_encoded": encoded["warm"],
            "warm_prompt_tokens": len(extended), "speedup": speedup(cold_ms, warm_ms),
            "cold_samples_ms": cold_samples, "warm_samples_ms": warm_samples}


# -- reporting -----------------------------------------------------------------------------


def print_table(results: dict[str, Any], args) -> None:
    enc, step, gen, pc = results["encode"], results["denoise_step"], results["generation"], results["prompt_cache"]
    rows = [
        (f"encode {args.prompt_tokens} prompt tokens (ms)", enc["ours_ms"], enc["reference_ms"], enc["speedup"]),
        (f"denoise step, canvas {args.canvas} (ms)", step["ours_ms"], step["reference_ms"], step["speedup"]),
        (f"generation, {args.steps} steps, incl. encode (ms)", gen["ours_ms"], gen["reference_ms"], gen["speedup"]),
        ("generation NFE", gen["ours_nfe"], gen["reference_nfe"], None),
        ("generation tokens/s", gen["ours_tokens_per_s"], gen["reference_tokens_per_s"],
         gen["ours_tokens_per_s"] / gen["reference_tokens_per_s"]),
    ]
    print()
    print(f"{'figure':<46} {'ours':>11} {'reference':>11} {'speed-up':>9}")
    print("-" * 80)
    for name, ours, ref, ratio in rows:
        print(f"{name:<46} {ours:>11.2f} {ref:>11.2f} {'' if ratio is None else f'{ratio:.2f}x':>9}")
    print()
    print("prompt cache (ours):")
    print(f"  cold prepare: {pc['cold_ms']:9.2f} ms, {pc['cold_tokens_encoded']} tokens encoded")
    print(f"  warm prepare: {pc['warm_ms']:9.2f} ms, {pc['warm_tokens_encoded']} tokens encoded "
          f"(prompt + {PROMPT_EXTENSION} new tokens)")
    print(f"  speed-up:     {pc['speedup']:9.2f}x")
    print(f"decoder logits, ours vs reference: max |diff| = {step['logits_max_abs_diff']:.3g}")
    print()


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="small", help="model geometry (default: small)")
    p.add_argument("--layers", type=int, default=None, help="override the preset's number of layers (5:1 sliding:full)")
    p.add_argument("--prompt-tokens", type=int, default=512, help="prompt length (default: 512)")
    p.add_argument("--canvas", type=int, default=64, help="canvas length in tokens (default: 64)")
    p.add_argument("--steps", type=int, default=12, help="denoising steps of a generation (default: 12)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per figure; the median is reported (default: 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs before each figure (default: 2)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                   help="default: float32 on cpu, bfloat16 on cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="folder for the JSON record")
    args = p.parse_args(argv)
    if min(args.prompt_tokens, args.canvas, args.steps, args.repeats) < 1 or args.warmup < 0:
        p.error("--prompt-tokens, --canvas, --steps and --repeats must be positive, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    transformers.logging.set_verbosity_error()
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype] if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    text_config = text_config_for(args.preset, args.layers)
    started = dt.datetime.now(dt.timezone.utc)

    with tempfile.TemporaryDirectory(prefix="dg-lsp-bench-") as tmp, torch.no_grad():
        print(f"building a random {args.preset} checkpoint in {tmp} ...", file=sys.stderr)
        build_checkpoint(text_config, args.canvas, dtype, Path(tmp), args.seed)
        ours, ref = load_both(Path(tmp), device, dtype, args.canvas)

        gen = torch.Generator(device="cpu").manual_seed(args.seed)
        high = min(text_config["vocab_size"], MAX_PROMPT_TOKEN_ID)
        prompt_ids = torch.randint(3, high, (args.prompt_tokens,), generator=gen).tolist()
        prompt = torch.tensor([prompt_ids], device=device)

        bar = tqdm(total=8 * (args.warmup + args.repeats), unit="run", file=sys.stderr)
        results = {
            "encode": measure_encode(ours, ref, prompt, args, device, bar),
            "denoise_step": measure_denoise_step(ours, ref, prompt, args, device, dtype, bar),
            "generation": measure_generation(ours, ref, prompt, args, device, bar),
            "prompt_cache": measure_prompt_cache(ours, prompt_ids, args, device, bar),
        }
        bar.close()

    print_table(results, args)
    record = {
        **record_header(BENCHMARK, started, device_description(device)),
        "transformers": transformers.__version__,
        "preset": args.preset,
        "dtype": str(dtype).removeprefix("torch."),
        "config": {"text_config": text_config, "canvas_length": args.canvas},
        "settings": {"prompt_tokens": args.prompt_tokens, "canvas": args.canvas, "steps": args.steps,
                     "repeats": args.repeats, "warmup": args.warmup, "seed": args.seed,
                     "stability_threshold": STABILITY_THRESHOLD, "confidence_threshold": CONFIDENCE_THRESHOLD,
                     "prompt_extension_tokens": PROMPT_EXTENSION},
        "results": results,
    }
    publish_record(record, args.out, BENCHMARK, device.type, started)
    return record


if __name__ == "__main__":
    main()
