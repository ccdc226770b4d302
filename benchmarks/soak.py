"""Soak benchmark: thousands of edits and completions over several documents, watching memory.

`dg-lsp serve` (the default model, CPU) is driven by a bare JSON-RPC client (`lsp_wire.py`)
through a seeded random session over `--documents` real source files from the standard
library: documents are opened, typed into (a line typed character by character, then
deleted again, so the texts do not grow), closed and reopened. Each keystroke is a
`didChange`; every keystroke is followed by a `textDocument/inlineCompletion` (trigger kind
Automatic), sent in bursts of `--burst` keystrokes without waiting, as a fast typist's editor
does, so the server's latest-wins path (superseded and cancelled requests) is soaked too;
then every request of the burst is awaited. Every `--sample-every` requests the server's
resident memory (VmRSS of its process) and `dg/status` are read.

Reported: requests sent and answered (every one must be: a result, or a RequestCancelled
error for a superseded one), errors, and resident memory after warm-up (`--warmup`
requests) against its later samples: the largest drift must stay within 5%. A JSON record
goes to `benchmarks/results/soak-cpu-<date>.json`.

    python benchmarks/soak.py                       # 10,000 requests over 5 documents
    python benchmarks/soak.py --requests 2000       # a shorter run
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_records import device_description, latency_stats, publish_record, record_header  # noqa: E402
from lsp_wire import WireClient, WireError  # noqa: E402

BENCHMARK = "soak"
DEFAULT_MODEL_DIR = REPO / "dg_lsp" / "models" / "default"
STDLIB = Path(sysconfig.get_paths()["stdlib"])
SOURCES = ("_pydecimal.py", "argparse.py", "inspect.py", "typing.py", "logging/__init__.py",
           "subprocess.py", "tarfile.py", "pathlib.py")
MAX_LINES = 2000
TYPED_LINES = ("result = self.compute(value, limit=10)", "for item in items:", "return None",
               "if not isinstance(other, type(self)):", "raise ValueError(f'bad value: {value!r}')")
TARGET_DRIFT = 0.05
CANCELLED_CODES = (-32800, -32802)


def resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc status")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class Doc:
    """A document as the client sees it: its text, version and whether it is open."""

    def __init__(self, path: Path):
        self.uri = path.as_uri()
        self.text = "".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:MAX_LINES])
        self.version = 0
        self.open = False

    def line_end(self, line: int) -> tuple[int, int]:
        return line, utf16_len(self.text.split("\n")[line])


class Soak:
    def __init__(self, client: WireClient, docs: list[Doc], rng: random.Random, burst: int):
        self.client, self.docs, self.rng, self.burst = client, docs, rng, burst
        self.sent = self.answered = self.cancelled = self.errors = self.items = 0
        self.error_samples: list[str] = []
        self.latencies: list[float] = []

    def open(self, doc: Doc) -> None:
        doc.version += 1
        self.client.notify("textDocument/didOpen", {"textDocument": {
            "uri": doc.uri, "languageId": "python", "version": doc.version, "text": doc.text}})
        doc.open = True

    def close(self, doc: Doc) -> None:
        self.client.notify("textDocument/didClose", {"textDocument": {"uri": doc.uri}})
        doc.open = False

    def change(self, doc: Doc, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        doc.version += 1
        self.client.notify("textDocument/didChange", {
            "textDocument": {"uri": doc.uri, "version": doc.version},
            "contentChanges": [{"range": {"start": {"line": start[0], "character": start[1]},
                                          "end": {"line": end[0], "character": end[1]}}, "text": text}]})
        lines = doc.text.split("\n")
        offset = lambda p: sum(len(x) + 1 for x in lines[: p[0]]) + p[1]  # noqa: E731 (ASCII lines only)
        doc.text = doc.text[: offset(start)] + text + doc.text[offset(end) :]

    async def complete(self, doc: Doc, at: tuple[int, int]) -> None:
        self.sent += 1
        start = time.perf_counter()
        try:
            result = await self.client.request("textDocument/inlineCompletion", {
                "textDocument": {"uri": doc.uri}, "position": {"line": at[0], "character": at[1]},
                "context": {"triggerKind": 2}})
            self.answered += 1
            self.items += bool(result and result.get("items"))
        except WireError as err:
            self.answered += 1
            if any(str(code) in str(err) for code in CANCELLED_CODES) or "cancel" in str(err).lower():
                self.cancelled += 1
            else:
                self.errors += 1
                if len(self.error_samples) < 10:
                    self.error_samples.append(str(err))
        self.latencies.append((time.perf_counter() - start) * 1e3)

    async def type_line(self, doc: Doc, budget: int) -> int:
        """Type one line at the end of a random line, completing after each burst of keystrokes,
        then delete it again; returns the requests sent."""
        line = self.rng.randrange(10, doc.text.count("\n") - 1)
        row, col = doc.line_end(line)
        indent = " " * (len(doc.text.split("\n")[line]) - len(doc.text.split("\n")[line].lstrip()))
        self.change(doc, (row, col), (row, col), "\n" + indent)
        typed = self.rng.choice(TYPED_LINES)
        row, col = row + 1, len(indent)
        sent, pending = 0, []
        for i, ch in enumerate(typed):
            if sent >= budget:
                break
            self.change(doc, (row, col + i), (row, col + i), ch)
            pending.append(asyncio.create_task(self.complete(doc, (row, col + i + 1))))
            sent += 1
            if len(pending) >= self.burst:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        # Delete the typed line again, so the documents keep their size over the run.
        self.change(doc, (row - 1, utf16_len(doc.text.split("\n")[row - 1])), self._end_of(doc, row), "")
        return sent

    def _end_of(self, doc: Doc, row: int) -> tuple[int, int]:
        return row, utf16_len(doc.text.split("\n")[row])

    async def run(self, total: int, sample_every: int, server_pid: int, bar) -> list[dict[str, Any]]:
        samples, next_sample = [], 0
        while self.sent < total:
            if self.sent >= next_sample:
                status = await self.client.request("dg/status", None)
                samples.append({"requests": self.sent, "rss_bytes": resident_bytes(server_pid),
                                "encoded_tokens": status.get("encodedTokens"),
                                "cached_prompts": status.get("cachedPrompts"), "open": sum(d.open for d in self.docs)})
                next_sample += sample_every
            doc = self.rng.choice(self.docs)
            if not doc.open:
                self.open(doc)
            before = self.sent
            await self.type_line(doc, min(total - self.sent, next_sample - self.sent))
            bar.update(self.sent - before)
            if self.rng.random() < 0.15:  # close now and then; the next visit reopens it
                self.close(doc)
        samples.append({"requests": self.sent, "rss_bytes": resident_bytes(server_pid),
                        "open": sum(d.open for d in self.docs)})
        return samples


def drift(samples: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    after = [s for s in samples if s["requests"] >= warmup]
    if not after:
        return {"baseline_bytes": None, "max_drift": None, "met": False}
    base = after[0]["rss_bytes"]
    worst = max(abs(s["rss_bytes"] - base) / base for s in after)
    return {"baseline_bytes": base, "baseline_at_requests": after[0]["requests"],
            "max_bytes": max(s["rss_bytes"] for s in after), "min_bytes": min(s["rss_bytes"] for s in after),
            "max_drift": worst, "target": TARGET_DRIFT, "met": worst <= TARGET_DRIFT}


async def main_async(args) -> dict[str, Any]:
    docs = [Doc(STDLIB / name) for name in SOURCES[: args.documents]]
    command = [sys.executable, "-m", "dg_lsp", "serve", "--model", str(args.model), "--device", "cpu",
               "--log-level", "ERROR"]
    client = await WireClient.start(*command, cwd=str(REPO))
    try:
        await client.request("initialize", {"processId": os.getpid(), "capabilities": {},
                                            "initializationOptions": {"dgLsp": {"steps": args.steps}}})
        client.notify("initialized", {})
        deadline = time.monotonic() + 300
        while (status := await client.request("dg/status", None))["state"] != "ready":
            if status["state"] == "failed" or time.monotonic() > deadline:
                raise SystemExit(f"the model did not load: {status.get('error')}")
            await asyncio.sleep(0.2)
        soak = Soak(client, docs, random.Random(args.seed), args.burst)
        started = time.perf_counter()
        with tqdm(total=args.requests, desc="soak", unit="req", file=sys.stderr) as bar:
            samples = await soak.run(args.requests, args.sample_every, client.process.pid, bar)
        elapsed = time.perf_counter() - started
        final_status = await client.request("dg/status", None)
        alive = client.process.returncode is None
    finally:
        await client.close()
    return {"soak": soak, "samples": samples, "elapsed_s": elapsed, "final_status": final_status,
            "server_alive_at_end": alive}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--documents", type=int, default=5, choices=range(1, len(SOURCES) + 1))
    p.add_argument("--burst", type=int, default=8, help="keystrokes sent before their completions are awaited")
    p.add_argument("--sample-every", type=int, default=500)
    p.add_argument("--warmup", type=int, default=1000, help="requests before the memory baseline")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    out = asyncio.run(main_async(args))
    soak = out["soak"]
    memory = drift(out["samples"], args.warmup)
    record = {
        **record_header(BENCHMARK, started, device_description(__import__("torch").device("cpu"))),
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "settings": {"requests": args.requests, "documents": [d.uri.rsplit("/", 2)[-1] for d in out["soak"].docs],
                     "burst": args.burst, "sample_every": args.sample_every, "warmup": args.warmup,
                     "steps": args.steps, "seed": args.seed, "model": str(args.model)},
        "results": {
            "elapsed_s": out["elapsed_s"], "sent": soak.sent, "answered": soak.answered,
            "with_items": soak.items, "cancelled": soak.cancelled, "errors": soak.errors,
            "error_samples": soak.error_samples, "all_answered": soak.answered == soak.sent,
            "server_alive_at_end": out["server_alive_at_end"], "latency_ms": latency_stats(soak.latencies),
            "memory": memory, "samples": out["samples"], "final_status": out["final_status"],
        },
    }
    mib = lambda b: f"{b / 2**20:.1f} MiB" if b else "-"  # noqa: E731
    print(f"{soak.sent} requests in {out['elapsed_s']:.0f} s: {soak.answered} answered "
          f"({soak.items} with items, {soak.cancelled} cancelled), {soak.errors} errors")
    print(f"resident memory after {args.warmup} requests {mib(memory['baseline_bytes'])}, later "
          f"{mib(memory.get('min_bytes'))} .. {mib(memory.get('max_bytes'))}: drift "
          f"{(memory['max_drift'] or 0) * 100:.2f}% (target <= {TARGET_DRIFT * 100:.0f}%: "
          f"{'met' if memory['met'] else 'NOT met'})")
    publish_record(record, args.out, BENCHMARK, "cpu", started)
    return record


if __name__ == "__main__":
    main()
