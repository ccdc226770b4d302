"""Latency of an automatic completion at a new position: cold prompt cache, after a block opener.

The situation of a user who moves to another place in a real file and opens a block: the
cursor sits on a new, indented line after a `def`/`if`/`for`/... line, and nothing of this
prompt is in the prompt cache. Each trial is one automatic request through the server's own
path (`CompletionService.complete`: planner, prompt builder, engine on the model thread, gate,
post-processing; the server's default settings), with the prompt cache cleared first, at one
of `--trials` block openers spread over the file (default: the standard library's
`_pydecimal.py`).

Both decodings of the same weights answer each position, taking turns (the order swapped
every trial): block diffusion (`Engine`) and greedy autoregressive decoding through the
model's causal encoder (`AutoregressiveEngine`), so the ratio of their medians compares them
on one machine in one run. Torch uses the server's thread count (cores - 1). Prints a table
and writes a JSON record to benchmarks/results/new-position-<device>-<date>.json. Target
(issue 12): diffusion p50 <= 100 ms on a 2-core CPU with the default model.

    python benchmarks/new_position.py
    python benchmarks/new_position.py --model DIR --file path/to/big.py --trials 60
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import sys
import sysconfig
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_records import device_description, latency_stats, publish_record, record_header  # noqa: E402
from quality import ThroughServer  # noqa: E402

from dg_lsp.engine.engine import Engine  # noqa: E402
from dg_lsp.evaluation.autoregressive import AutoregressiveEngine  # noqa: E402
from dg_lsp.server.settings import Settings  # noqa: E402

BENCHMARK = "new-position"
DEFAULT_MODEL_DIR = REPO / "dg_lsp" / "models" / "default"
DEFAULT_FILE = Path(sysconfig.get_paths()["stdlib"]) / "_pydecimal.py"
OPENER = re.compile(r"^( *)(def |if |for |while |with |elif |else:|try:|class ).*:\n", re.M)


def opener_positions(text: str, trials: int) -> list[tuple[str, int]]:
    """`trials` buffers, each with a new indented line opened after a block opener (spread evenly
    over the file), and the cursor's offset at the end of its indentation."""
    openers = list(OPENER.finditer(text))
    if not openers:
        raise SystemExit("the file has no block opener")
    step = max(1, len(openers) // trials)
    buffers = []
    for match in openers[::step][:trials]:
        indent = match.group(1) + "    "
        buffer = text[: match.end()] + indent + "\n" + text[match.end():]
        buffers.append((buffer, match.end() + len(indent)))
    return buffers


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--file", type=Path, default=DEFAULT_FILE)
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))  # as the server runs
    engine = Engine.from_directory(args.model, progress=False)
    loop = asyncio.new_event_loop()
    paths = [ThroughServer("diffusion", engine, loop), ThroughServer("autoregressive", AutoregressiveEngine(engine), loop)]
    settings = Settings()
    buffers = opener_positions(args.file.read_text(encoding="utf-8"), args.trials)
    for path in paths:
        for buffer, offset in buffers[: args.warmup]:
            path.complete(buffer, offset, "python", invoked=False, settings=settings)
    times = {path.name: [] for path in paths}
    answered = {path.name: 0 for path in paths}
    for i, (buffer, offset) in enumerate(buffers):
        for path in paths if i % 2 == 0 else paths[::-1]:
            answer = path.complete(buffer, offset, "python", invoked=False, settings=settings)
            times[path.name].append(answer.total_ms)
            answered[path.name] += bool(answer.texts)
    loop.close()
    results = {name: {**latency_stats(ms), "answered_share": answered[name] / len(buffers)} for name, ms in times.items()}
    ratio = results["autoregressive"]["p50_ms"] / results["diffusion"]["p50_ms"]
    record = {
        **record_header(BENCHMARK, started, device_description(torch.device("cpu"))),
        "model": str(args.model),
        "settings": {"file": str(args.file), "trials": len(buffers), "warmup": args.warmup,
                     "steps": settings.steps, "max_canvas": settings.maxCanvas, "min_confidence": settings.minConfidence,
                     "torch_threads": torch.get_num_threads(),
                     "path": "CompletionService.complete, automatic trigger, prompt cache cleared before each request"},
        "results": {**results, "latency_ratio_autoregressive_over_diffusion": ratio},
    }
    print(f"{len(buffers)} new positions after block openers in {args.file.name}, cold prompt cache, "
          f"{settings.steps} steps at most")
    print(f"{'decoding':>15} {'p50 ms':>8} {'p95 ms':>8} {'answered':>9}")
    for name, r in results.items():
        print(f"{name:>15} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['answered_share']:>9.1%}")
    print(f"latency ratio autoregressive / diffusion: {ratio:.2f}x (> 1: diffusion answers sooner)")
    publish_record(record, args.out, BENCHMARK, "cpu", started)
    return record


if __name__ == "__main__":
    main()
