"""Latency of a completion at a new position: cold prompt cache, after a block opener.

The situation of a user who moves to another place in a real file and opens a block: the
cursor sits on a new, indented line after a `def`/`if`/`for`/... line, and nothing of this
prompt is in the prompt cache. Each trial is one automatic request through the server's own
path (`CompletionService.complete`: planner, prompt builder, engine on the model thread, gate,
post-processing; the server's default settings) on the file held open in the server's document
store: a new indented line is opened after one of `--trials` block openers spread over the
file (default: the standard library's `_pydecimal.py`) with an incremental change, the prompt
cache is cleared, the completion is asked for at the line's end, and the line is taken out again.

`--invoked` asks as a user who invokes completion there does instead: the server's invoked
request with its default settings (`invokedSteps` denoising steps at most, `candidates`
candidates, the canvas seeded with the encoder's greedy line, the `minConfidenceInvoked` floor).

Both decodings of the same weights answer each position, taking turns (the order swapped
every trial): block diffusion (`Engine`) and greedy autoregressive decoding through the
model's causal encoder (`AutoregressiveEngine`), so the ratio of their medians compares them
on one machine in one run. Torch uses the server's thread count (cores - 1). Prints a table
and writes a JSON record to benchmarks/results/new-position-<device>-<date>.json. Target
(issue 12): diffusion p50 <= 100 ms on a 2-core CPU with the default model.

    python benchmarks/new_position.py
    python benchmarks/new_position.py --invoked
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
import time
from pathlib import Path

import torch
from lsprotocol import types

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


def opener_lines(text: str, trials: int) -> list[tuple[int, str]]:
    """`trials` block openers spread evenly over the file: (0-based line number, the indentation
    of the line a user opens after it)."""
    openers = list(OPENER.finditer(text))
    if not openers:
        raise SystemExit("the file has no block opener")
    step = max(1, len(openers) // trials)
    return [(text.count("\n", 0, m.start()), m.group(1) + "    ") for m in openers[::step][:trials]]


class OneBuffer:
    """The file open once in the server's document store, as an editor holds it; each trial
    opens a new indented line after an opener (an incremental change), asks for the completion
    there, and takes the line out again."""

    def __init__(self, path: ThroughServer, text: str, uri: str):
        self.path, self.uri, self.version = path, uri, 1
        self.doc = path.documents.open(types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text))
        self.doc.parsed_tree()

    def _change(self, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        self.version += 1
        change = types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(*start), types.Position(*end)), text=text)
        self.path.documents.change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=self.uri, version=self.version),
            content_changes=[change]))

    def complete_after(self, line: int, indent: str, settings: Settings, invoked: bool = False) -> tuple[float, bool]:
        end_of_opener = (line, len(self.doc.line_text(line)))
        self._change(end_of_opener, end_of_opener, "\n" + indent)
        self.path.engine.prompt_cache.clear()  # a new position: nothing of this prompt is cached
        self.path.service.cache.clear()
        start = time.perf_counter()
        result = self.path.loop.run_until_complete(
            self.path.service.complete(self.uri, types.Position(line + 1, len(indent)), invoked, settings))
        elapsed_ms = (time.perf_counter() - start) * 1e3
        if result.source != "model":
            raise RuntimeError(f"the server gave no model answer: {result.source}")
        self._change(end_of_opener, (line + 1, len(indent)), "")
        return elapsed_ms, bool(result.texts)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--file", type=Path, default=DEFAULT_FILE)
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--invoked", action="store_true", help="the user invokes completion (default: an automatic trigger)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))  # as the server runs
    engine = Engine.from_directory(args.model, progress=False)
    loop = asyncio.new_event_loop()
    paths = [ThroughServer("diffusion", engine, loop), ThroughServer("autoregressive", AutoregressiveEngine(engine), loop)]
    settings = Settings()
    text = args.file.read_text(encoding="utf-8")
    openers = opener_lines(text, args.trials)
    buffers = {path.name: OneBuffer(path, text, f"file:///bench/{path.name}/{args.file.name}") for path in paths}
    for path in paths:
        for line, indent in openers[: args.warmup]:
            buffers[path.name].complete_after(line, indent, settings, args.invoked)
    times = {path.name: [] for path in paths}
    answered = {path.name: 0 for path in paths}
    for i, (line, indent) in enumerate(openers):
        for path in paths if i % 2 == 0 else paths[::-1]:
            elapsed_ms, shown = buffers[path.name].complete_after(line, indent, settings, args.invoked)
            times[path.name].append(elapsed_ms)
            answered[path.name] += shown
    loop.close()
    results = {name: {**latency_stats(ms), "answered_share": answered[name] / len(openers)} for name, ms in times.items()}
    ratio = results["autoregressive"]["p50_ms"] / results["diffusion"]["p50_ms"]
    trigger = "invoked" if args.invoked else "automatic"
    record = {
        **record_header(BENCHMARK, started, device_description(torch.device("cpu"))),
        "model": str(args.model),
        "settings": {"file": str(args.file), "trials": len(openers), "warmup": args.warmup,
                     "trigger": trigger, "max_canvas": settings.maxCanvas,
                     **({"steps": settings.invokedSteps, "candidates": settings.candidates,
                         "min_confidence_invoked": settings.minConfidenceInvoked} if args.invoked else
                        {"steps": settings.steps, "min_confidence": settings.minConfidence}),
                     "torch_threads": torch.get_num_threads(),
                     "path": "the file open once; per trial a new indented line after an opener (didChange), "
                             f"CompletionService.complete there ({trigger} trigger, prompt cache cleared), the line removed"},
        "results": {**results, "latency_ratio_autoregressive_over_diffusion": ratio},
    }
    steps = settings.invokedSteps if args.invoked else settings.steps
    print(f"{len(openers)} new positions after block openers in {args.file.name}, cold prompt cache, {trigger} "
          f"requests, {steps} steps at most" + (f", {settings.candidates} candidates" if args.invoked else ""))
    print(f"{'decoding':>15} {'p50 ms':>8} {'p95 ms':>8} {'answered':>9}")
    for name, r in results.items():
        print(f"{name:>15} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['answered_share']:>9.1%}")
    print(f"latency ratio autoregressive / diffusion: {ratio:.2f}x (> 1: diffusion answers sooner)")
    publish_record(record, args.out, BENCHMARK + ("-invoked" if args.invoked else ""), "cpu", started)
    return record


if __name__ == "__main__":
    main()
