"""Latency of one single-line completion with a long prompt and the prompt cache warm.

The situation of a user typing in the middle of a big file: the prompt (prefix and suffix
of the buffer, `--prompt-tokens` in all, 1,024 by default) was encoded for the previous
keystroke, and the new one only adds the typed character to the end of the prompt (the
shipped model uses SPM order, so the prefix ends the prompt). Each trial types one more
character of a real line and asks the engine for a single-line completion (canvas 24, the
server's line canvas) with `--steps` denoising steps at most, timing `Engine.infill` from
text in to text out: tokenization, the encoder over the tokens not in the cache, the
denoising steps and decoding.

In the same run, as the baseline, the same completions with the prompt cache cleared
first (the whole prompt encoded): the ratio is what the cache buys.

Torch uses the server's thread count (cores - 1). Prints a table and writes a JSON record
to benchmarks/results/completion-latency-<device>-<date>.json. Target (issue 4): p50 <=
100 ms on a 2-core CPU for the default model.

    python benchmarks/completion_latency.py
    python benchmarks/completion_latency.py --model ~/models/dg --steps 1,4,12 --trials 40
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import sysconfig
import time
from pathlib import Path

import torch
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_records import device_description, latency_stats, publish_record, record_header  # noqa: E402

from dg_lsp.engine.engine import Engine  # noqa: E402

BENCHMARK = "completion-latency"
DEFAULT_MODEL_DIR = REPO / "dg_lsp" / "models" / "default"
SOURCE = Path(sysconfig.get_paths()["stdlib"]) / "_pydecimal.py"
LINE_CANVAS = 24  # dg_lsp.context.plan.LINE_CANVAS: the canvas of a single-line completion
TARGET_P50_MS = 100.0
SUFFIX_SHARE = 4  # a quarter of the prompt is suffix, as the planner's budget split gives


def split_source(engine: Engine, prompt_tokens: int, trials: int) -> tuple[str, str, str]:
    """(prefix, typed line, suffix): the cursor at the start of a line in the middle of the
    file with `prompt_tokens` tokens around it, and the line's text to type."""
    text = SOURCE.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    middle = len(lines) // 2
    while len(lines[middle].strip()) < trials:  # a line long enough to type `trials` characters of
        middle += 1
    encode = engine.prompts.encode
    want_suffix = prompt_tokens // SUFFIX_SHARE
    prefix_lines, suffix_lines = [], []
    i = middle - 1
    while i >= 0 and len(encode("".join(prefix_lines))) < prompt_tokens - want_suffix:
        prefix_lines.insert(0, lines[i])
        i -= 1
    j = middle + 1
    while j < len(lines) and len(encode("".join(suffix_lines))) < want_suffix:
        suffix_lines.append(lines[j])
        j += 1
    typed = lines[middle]
    indent = typed[: len(typed) - len(typed.lstrip())]
    return "".join(prefix_lines) + indent, typed[len(indent):].rstrip("\n"), "\n" + "".join(suffix_lines)


def time_completions(engine: Engine, prefix: str, typed: str, suffix: str, steps: int, trials: int,
                     warm: bool) -> dict:
    times, encoded, nfe, prompt = [], [], [], []
    engine.infill(prefix, suffix, canvas_length=LINE_CANVAS, max_new_tokens=LINE_CANVAS, max_steps=steps, seed=0)
    for i in tqdm(range(1, trials + 1), desc=f"{'warm' if warm else 'cold'} cache, {steps} steps", unit="key",
                  file=sys.stderr):
        if not warm:
            engine.prompt_cache.clear()
        t0 = time.perf_counter()
        result = engine.infill(prefix + typed[:i], suffix, canvas_length=LINE_CANVAS, max_new_tokens=LINE_CANVAS,
                               max_steps=steps, seed=i)
        times.append((time.perf_counter() - t0) * 1e3)
        encoded.append(result.encoded_tokens)
        nfe.append(result.nfe)
        prompt.append(result.prompt_tokens)
    return {**latency_stats(times), "encoded_tokens_median": statistics.median(encoded),
            "prompt_tokens_median": statistics.median(prompt), "nfe_median": statistics.median(nfe),
            "samples_ms": [round(t, 3) for t in times]}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--device", default="cpu")
    p.add_argument("--prompt-tokens", type=int, default=1024)
    p.add_argument("--steps", default="1,4,12", help="comma-separated denoising step limits (default: 1,4,12; 1 is dgLsp.steps)")
    p.add_argument("--trials", type=int, default=30, help="keystrokes timed per setting (default: 30)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    load_start = os.getloadavg()
    if args.device == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))  # as the server does
    engine = Engine.from_directory(args.model, device=args.device, context_tokens=args.prompt_tokens + 64)
    # The prompt length, even beyond what the model was trained on (the cost, not the quality).
    engine.context_tokens = args.prompt_tokens + 64
    prefix, typed, suffix = split_source(engine, args.prompt_tokens, args.trials)
    runs = []
    for steps in (int(s) for s in args.steps.split(",")):
        warm = time_completions(engine, prefix, typed, suffix, steps, args.trials, warm=True)
        cold = time_completions(engine, prefix, typed, suffix, steps, args.trials, warm=False)
        runs.append({"max_steps": steps, "warm_cache": warm, "cold_cache": cold,
                     "cold_over_warm_p50": cold["p50_ms"] / warm["p50_ms"]})
    record = {
        **record_header(BENCHMARK, started, device_description(engine.device)),
        "load_average": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()]},
        "model": str(args.model), "source": f"{SOURCE.name} around line {len(prefix.splitlines())}",
        "settings": {"prompt_tokens": args.prompt_tokens, "canvas_length": LINE_CANVAS, "trials": args.trials},
        "runs": runs,
        "target": {"p50_ms": TARGET_P50_MS, "what": "warm cache, 1,024-token prompt, default model, 2-core CPU",
                   "met_at_steps": [r["max_steps"] for r in runs if r["warm_cache"]["p50_ms"] <= TARGET_P50_MS]},
    }
    print(f"\n{'steps':>5} {'cache':>5} {'prompt':>6} {'encoded':>7} {'nfe':>4} {'p50 ms':>8} {'p95 ms':>8}")
    for run in runs:
        for name in ("warm_cache", "cold_cache"):
            r = run[name]
            print(f"{run['max_steps']:>5} {name[:4]:>5} {r['prompt_tokens_median']:>6.0f} "
                  f"{r['encoded_tokens_median']:>7.0f} {r['nfe_median']:>4.0f} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f}")
    print(f"load average at start / end: {load_start[0]:.2f} / {os.getloadavg()[0]:.2f}")
    publish_record(record, args.out, BENCHMARK, engine.device.type, started)
    return record


if __name__ == "__main__":
    main()
