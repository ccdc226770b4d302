"""Dream-family decoding cost with and without each cache, and what the caches change.

A random model of Open-dCoder-0.5B's geometry (Qwen2.5-Coder-0.5B: hidden 896, 24 layers,
14 heads, 2 KV heads, intermediate 4864, vocabulary 151,936, tied embeddings) fills a gap of
16 or 32 tokens in a ~256-token prompt (`[bos] prefix [mask]*k suffix [eos]`) with 4, 8 or 16
steps, one step per forward pass (no confidence threshold, so each budget is spent):

- "none": every step runs the whole sequence;
- "dual": Fast-dLLM's dual cache, the whole gap one block (one whole pass, then only the gap);
- "dual/8": the dual cache with blocks of 8 tokens (a whole pass per block);
- "memo": a request that starts exactly like the previous one (its first step is reused);
- "dual+memo": both;
- "reuse": a keystroke (three tokens typed at the end of the prefix) whose first step reuses the
  keys of the prefix the previous request shared (approximate; `reuse_prompt_kv`);
- "dual+reuse": both.

On a CPU a whole pass takes seconds, so by default each kind of step is timed (medians of
`--repeats` after a warm-up) and a completion's time is the sum of its steps (the count of
each kind is exact for a given budget); real completions of three modes (gap 16, 4 steps)
check that sum against a real run. `--end-to-end` runs every completion for real.

The agreement of cached with uncached decoding (share of identical tokens, greedy decoding,
several prompts) is measured on tiny random models of the same shape family.

Prints a table and writes benchmarks/results/dream-cache-<device>-<date>.json.

    taskset -c 1 python benchmarks/dream_cache.py                  # one thread, a few minutes
    python benchmarks/dream_cache.py --device cuda --dtype bf16 --end-to-end   # the GPU figures
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_records import device_description, publish_record, record_header  # noqa: E402

from dg_lsp.engine.dream_cache import FirstStepMemo, SpanForward  # noqa: E402
from dg_lsp.engine.dream_sampler import DreamDecoding, SpecialTokens, choose, infill, propose  # noqa: E402
from dg_lsp.model.dream import DreamModel  # noqa: E402
from dg_lsp.model.dream_config import DreamConfig  # noqa: E402

# Qwen2.5-Coder-0.5B's config.json, which Open-dCoder-0.5B keeps (the notes: checkpoints.md).
OPEN_DCODER = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                   num_attention_heads=14, num_key_value_heads=2, head_dim=64, rope_theta=1_000_000.0,
                   rms_norm_eps=1e-6, tie_word_embeddings=True, mask_token_id=151666, pad_token_id=151643,
                   bos_token_id=151643, eos_token_id=151643, max_position_embeddings=32768)
# Qwen2.5-7B's geometry, which Dream-v0 / Dream-Coder-v0 / DiffuCoder-7B keep (GPU runs).
DREAM_7B = dict(OPEN_DCODER, vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                num_attention_heads=28, num_key_value_heads=4, head_dim=128, tie_word_embeddings=False)
GEOMETRIES = {"open-dcoder-0.5b": OPEN_DCODER, "dream-7b": DREAM_7B}
MODES = ("none", "dual", "dual/8", "memo", "dual+memo", "reuse", "dual+reuse")
CHECKED = ("none", "dual", "dual+memo")  # run end to end by default (the first gap and budget)
TYPED = 3  # tokens typed between the two requests of the "reuse" modes
# A random model's distribution is nearly flat, so its top-p nucleus is most of the vocabulary and
# every step would pay a full sort, which a trained model's peaked one avoids: the completions are
# timed without top-p, and `select_top_p_ms` says what it costs on this flat model.
TOP_P = 0.95
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def random_model(geometry: dict, device: str, dtype: torch.dtype, seed: int = 0, scale: float = 0.02) -> DreamModel:
    """Random weights (normal, std `scale`), initialised in place: no second copy, no checkpoint."""
    from dg_lsp.model import ops

    with torch.device("meta"):
        model = DreamModel(DreamConfig(**geometry))
    model = model.to_empty(device=device).to(dtype)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.fill_(1.0)
            else:
                param.normal_(0.0, scale, generator=generator)
    cfg = model.config  # the RoPE frequencies stay float32, as the loader keeps them
    model.inv_freq = ops.rope_inv_freq(cfg.head_dim, cfg.rope_theta, "default", 1.0).to(device)
    return model.eval().requires_grad_(False)


def prompt(vocab: int, tokens: int, seed: int, bos: int, eos: int) -> tuple[list[int], list[int]]:
    """Three quarters prefix, a quarter suffix, random ids below the special tokens."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, min(vocab, 151_000) - 8, (tokens - 2,), generator=g).tolist()
    cut = (tokens - 2) * 3 // 4
    return [bos] + ids[:cut], ids[cut:] + [eos]


def special_of(cfg: DreamConfig) -> SpecialTokens:
    return SpecialTokens(cfg.mask_token_id, cfg.eos_token_id, cfg.expand_token_id)


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int, device) -> float:
    """Median milliseconds of `fn()` after one warm-up call."""
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


@torch.inference_mode()
def step_costs(model, prefix, suffix, canvas: int, repeats: int, device) -> dict[str, float]:
    """ms of each kind of step: a whole pass, a whole pass keeping the dual cache, a window
    pass over the gap reading it, and choosing what to commit from the logits."""
    cfg = model.config
    ids = torch.tensor([prefix + [cfg.mask_token_id] * canvas + suffix], device=device)
    start, end = len(prefix), len(prefix) + canvas
    whole = timed(lambda: SpanForward(model)(ids, start, end), repeats, device)
    keeping = timed(lambda: SpanForward(model, dual_cache=True)(ids, start, end), repeats, device)
    cached = SpanForward(model, dual_cache=True)
    logits = cached(ids, start, end)
    window = timed(lambda: cached(ids, start, end), repeats, device)
    memo = FirstStepMemo()
    older = prefix[:-TYPED]
    SpanForward(model, memo=memo, key="doc", reuse_prompt_kv=True)(
        torch.tensor([older + [cfg.mask_token_id] * canvas + suffix], device=device), len(older), len(older) + canvas)
    entry = memo.entries["doc"]

    def partial():  # the first step of the next keystroke, from the same memo entry each time
        memo.entries["doc"] = entry
        SpanForward(model, memo=memo, key="doc", reuse_prompt_kv=True)(ids, start, end)

    reused = timed(partial, repeats, device)
    generator = torch.Generator(device=device).manual_seed(0)

    def select(top_p):
        settings = DreamDecoding(steps=4, alg="entropy", temperature=0.2, top_p=top_p).validate()
        tokens, prob, score = propose(logits[0], settings, generator)
        choose(prob, score, settings, 4, generator)

    return {"whole_ms": whole, "whole_keeping_kv_ms": keeping, "window_ms": window, "reused_prefix_ms": reused,
            "select_ms": timed(lambda: select(None), repeats, device),
            "select_top_p_ms": timed(lambda: select(TOP_P), repeats, device)}


def step_counts(mode: str, steps: int, canvas: int) -> dict[str, int]:
    """How many steps of each kind a completion of `steps` steps takes in `mode`."""
    blocks = -(-canvas // 8) if mode == "dual/8" else 1
    steps = max(steps, blocks)  # at least one step per block
    if mode == "none":
        return {"whole_ms": steps}
    if mode in ("dual", "dual/8"):
        return {"whole_keeping_kv_ms": blocks, "window_ms": steps - blocks}
    if mode == "memo":
        return {"whole_ms": steps - 1}
    if mode == "dual+memo":
        return {"window_ms": steps - 1}
    if mode == "reuse":
        return {"reused_prefix_ms": 1, "whole_ms": steps - 1}
    return {"reused_prefix_ms": 1, "window_ms": steps - 1}  # dual+reuse


def settings_for(mode: str, steps: int) -> tuple[DreamDecoding, dict]:
    decoding = DreamDecoding(steps=steps, alg="entropy", temperature=0.2, top_p=None, threshold=None,
                             block_length=8 if mode == "dual/8" else None, dual_cache="dual" in mode)
    return decoding, {"dual_cache": "dual" in mode, "reuse_prompt_kv": "reuse" in mode}


@torch.inference_mode()
def end_to_end(model, prefix, suffix, canvas: int, steps: int, mode: str, device) -> dict[str, float]:
    """One real completion (the memo modes: the second of two identical requests)."""
    special = special_of(model.config)
    decoding, options = settings_for(mode, steps)
    memo = FirstStepMemo() if "memo" in mode or "reuse" in mode else None

    def once(before):
        forward = SpanForward(model, memo=memo, key="doc", **options)
        gap = torch.full((1, canvas), special.mask)
        generator = torch.Generator(device=device).manual_seed(0)
        return infill(forward, before, suffix, gap, decoding, special, generator)

    if memo is not None:  # the previous keystroke's request, which fills the memo
        once(prefix[:-TYPED] if "reuse" in mode else prefix)
    sync(device)
    start = time.perf_counter()
    result = once(prefix)
    sync(device)
    return {"ms": (time.perf_counter() - start) * 1e3, "nfe": result.nfe}


@torch.inference_mode()
def agreement(layers: int, prompts: int, canvas: int, steps: int, scale: float) -> dict[str, float]:
    """Share of tokens identical to uncached greedy decoding with the same blocks, per cache mode,
    on tiny random models (one per prompt, weights of std `scale`)."""
    geometry = dict(OPEN_DCODER, vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                    num_attention_heads=4, num_key_value_heads=2, head_dim=16, mask_token_id=2,
                    pad_token_id=0, bos_token_id=1, eos_token_id=0)
    modes = {  # name: (block length, SpanForward options)
        "dual": (None, dict(dual_cache=True)),
        "dual/8": (8, dict(dual_cache=True)),
        "dual, refreshed every step": (None, dict(dual_cache=True, refresh_every=1)),
        "memo": (None, dict(key="doc")),
        "reuse": (None, dict(key="doc", reuse_prompt_kv=True)),
    }
    same, total = dict.fromkeys(modes, 0), 0
    for seed in range(prompts):
        model = random_model(geometry, "cpu", torch.float32, seed=seed, scale=scale)
        prefix, suffix = prompt(512, 60 + 5 * seed, seed, 1, 0)
        special = special_of(model.config)
        memo = None

        def run(block, before=prefix, **options):
            decoding = DreamDecoding(steps=steps, alg="entropy", temperature=0.0, top_p=None, block_length=block)
            gap = torch.full((1, canvas), special.mask)
            forward = SpanForward(model, memo=memo if "key" in options else None, **options)
            return infill(forward, before, suffix, gap, decoding, special).tokens[0]

        for name, (block, options) in modes.items():
            if "key" in options:  # the previous request, which fills the memo (a keystroke earlier for "reuse")
                memo = FirstStepMemo()
                run(None, prefix[:-TYPED] if name == "reuse" else prefix, key="doc", reuse_prompt_kv=True)
            cached, plain = run(block, **options), run(block)
            same[name] += sum(a == b for a, b in zip(cached, plain))
        total += canvas
    return {name: same[name] / total for name in modes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompt-tokens", type=int, default=256)
    parser.add_argument("--canvases", default="16,32")
    parser.add_argument("--steps", default="4,8,16")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="fp32")
    parser.add_argument("--geometry", choices=tuple(GEOMETRIES), default="open-dcoder-0.5b",
                        help="dream-7b (Dream-Coder / DiffuCoder) needs a GPU: ~15 GB in bf16")
    parser.add_argument("--layers", type=int, default=None,
                        help="fewer layers for a quick smoke run (the record says so)")
    parser.add_argument("--end-to-end", action="store_true", help="run every completion for real")
    parser.add_argument("--agreement-prompts", type=int, default=8)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = dt.datetime.now(dt.timezone.utc)
    canvases = [int(c) for c in args.canvases.split(",")]
    step_budgets = [int(s) for s in args.steps.split(",")]
    base = GEOMETRIES[args.geometry]
    geometry = dict(base, num_hidden_layers=args.layers or base["num_hidden_layers"])

    model = random_model(geometry, args.device, DTYPES[args.dtype])
    cfg = model.config
    prefix, suffix = prompt(cfg.vocab_size, args.prompt_tokens, 0, cfg.bos_token_id, cfg.eos_token_id)
    rows, costs_by_canvas, checks = [], {}, []
    for canvas in canvases:
        costs = step_costs(model, prefix, suffix, canvas, args.repeats, args.device)
        costs_by_canvas[canvas] = costs
        print(f"gap {canvas}: " + ", ".join(f"{k} {v:.1f}" for k, v in costs.items()), file=sys.stderr)
        for steps in step_budgets:
            for mode in MODES:
                counts = step_counts(mode, steps, canvas)
                forward_ms = sum(costs[kind] * n for kind, n in counts.items())
                completion_ms = forward_ms + costs["select_ms"] * max(steps, sum(counts.values()))
                row = {"canvas": canvas, "steps": steps, "mode": mode, "steps_by_kind": counts,
                       "ms_per_step": completion_ms / max(steps, 1), "ms_per_completion": completion_ms,
                       "derived": True}
                if args.end_to_end or (canvas == canvases[0] and steps == step_budgets[0] and mode in CHECKED):
                    measured = end_to_end(model, prefix, suffix, canvas, steps, mode, args.device)
                    row.update(measured_ms_per_completion=measured["ms"], measured_nfe=measured["nfe"])
                    checks.append(measured["ms"] / completion_ms)
                rows.append(row)
    # std 0.02 is transformers' initialisation (a nearly uniform model); 0.3 a model that commits.
    shares = {f"{layers} layers, std {scale}": agreement(layers, args.agreement_prompts, 16, 8, scale)
              for layers in (2, 4) for scale in (0.02, 0.3)}

    print(f"\n{'gap':>4} {'steps':>5} {'mode':>10} {'ms/step':>9} {'ms/completion':>14} {'measured':>9}")
    for r in rows:
        measured = f"{r['measured_ms_per_completion']:.0f}" if "measured_ms_per_completion" in r else ""
        print(f"{r['canvas']:>4} {r['steps']:>5} {r['mode']:>10} {r['ms_per_step']:>9.1f} "
              f"{r['ms_per_completion']:>14.0f} {measured:>9}")
    print("\nagreement with uncached decoding (share of identical tokens, greedy, gap 16, 8 steps):")
    for model_name, by_mode in shares.items():
        print(f"  {model_name}: " + ", ".join(f"{m} {s:.1%}" for m, s in by_mode.items()))

    record = record_header("dream-cache", started, device_description(torch.device(args.device)))
    record.update(
        geometry=geometry, dtype=args.dtype, threads=args.threads, prompt_tokens=len(prefix) + len(suffix),
        repeats=args.repeats, step_costs_ms={str(k): v for k, v in costs_by_canvas.items()}, completions=rows,
        measured_over_derived=checks, agreement=shares,
        notes=("derived completion times sum the medians of each kind of step; measured ones are single real "
               "runs; the CPU may be shared with other work, see the device block"),
    )
    publish_record(record, args.out, "dream-cache", torch.device(args.device).type, started)


if __name__ == "__main__":
    main()
