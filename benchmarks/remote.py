"""Remote-engine benchmark: keystroke-to-completion through dg-lsp against the same server called directly.

With `dgLsp.engine = "remote"` the model call goes to an OpenAI-compatible server, and what
dg-lsp adds (the LSP round trip, tree-sitter context, the prompt, the HTTP client, streaming
parse, post-processing) should be small next to the server's own time. This script measures
both in one run, on the same keystrokes and the same request bodies, so the overhead is a ratio:

1. The server: llama-cpp-python's (`python -m llama_cpp.server`, one thread), or with `--server
   llama-server` llama.cpp's own (where one is found, as tests/remote/llama_server.py finds it),
   on the tiny random Qwen2 GGUF with FIM tokens that the tests build (tests/remote/tiny_gguf.py);
   or `--url` an already running server (then `--model-name` and `--family` describe it).
2. The keystrokes: as benchmarks/keystrokes.py does, a function body near the middle of a real
   file (default: the standard library's `_pydecimal.py`, first 5,000 lines) is deleted and its
   first `--keys` characters are typed back, one `didChange` + one automatic
   `textDocument/inlineCompletion` per key, each awaited before the next key (no superseding:
   every request is a full model call, so both halves time the same work).
3. Three passes over the same keystrokes, each on a fresh `python -m dg_lsp serve` (remote
   engine) driven by the bare JSON-RPC client of lsp_wire.py (no client library's own work
   counted):
   a. record: dg-lsp talks to the server through a recording proxy, which keeps each request
      body dg-lsp sends for each keystroke (untimed: the proxy buffers answers);
   b. through dg-lsp (timed): keystroke sent -> completion answered, straight to the server;
   c. direct (timed): the recorded bodies of each keystroke sent to the server by a plain
      keep-alive HTTP client (`http.client`), the streamed answer read to its end.
   The server caches the prompt prefix of its previous request, and each timed pass sends the
   same prompts in the same order, so both see the same cache hits.

Reported: p50 / p95 of each timed pass over the keystrokes whose recorded pass made a model call
(keystrokes answered from dg-lsp's completion cache are counted apart), the ratio dg-lsp / direct
of p50 and of p95, and the per-keystroke difference (dg-lsp - direct) p50 / p95, split with
dg-lsp's own timing of its model call (`dg/status` lastLatencyMs, read after each answer) into
the HTTP side (dg-lsp's client and stream parsing vs the plain client) and the rest (protocol,
document, context, prompt, post-processing). Server, dg-lsp and client share the machine's cores
(under `taskset -c 1`, one core): dg-lsp's work and the server's then take turns, which a server
on another machine would not; the record keeps the affinity. With random weights the
completions are junk (most are dropped by post-processing): latency only.

A table is printed, a JSON record is written to `<out>/remote-cpu-<YYYYmmdd-HHMMSS>.json`, and
the record is printed as one line. Run from the repository root (a minute or two on a 2-core CPU):

    python benchmarks/remote.py
    python benchmarks/remote.py --keys 300 --kind openai-suffix
    python benchmarks/remote.py --server llama-server --kind llamacpp-infill   # llama.cpp's own server
    python benchmarks/remote.py --url http://gpu-box:8000 --model-name qwen2.5-coder --family qwen
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import http.client
import http.server
import json
import math
import os
import platform
import sys
import tempfile
import threading
import time
import urllib.parse
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_records import device_description, latency_stats, publish_record, record_header, package_version  # noqa: E402
from keystrokes import DEFAULT_FILE, Keystroke, keystrokes, load_source, pick_function_body, position_at  # noqa: E402
from lsp_wire import WireClient  # noqa: E402

BENCHMARK = "remote"
READY_TIMEOUT_S = 120.0
COMPLETION_PATHS = ("/v1/completions", "/infill")
RANDOM_NOTE = "random weights: latency only, completions meaningless"


# -- the recording proxy (pass a) --------------------------------------------------------------


class RecordingProxy:
    """A local HTTP proxy in front of the server that keeps every completion request body.

    It buffers each answer before passing it on, which is why the pass through it is not timed."""

    def __init__(self, upstream: str):
        self.upstream = urllib.parse.urlsplit(upstream)
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                self._forward(None)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path in COMPLETION_PATHS:
                    with proxy._lock:
                        proxy.bodies.append((self.path, json.loads(body)))
                self._forward(body)

            def _forward(self, body: bytes | None):
                connection = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
                connection.close()
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.getheader("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "RecordingProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self) -> int:
        with self._lock:
            return len(self.bodies)


# -- the direct client (pass c) ------------------------------------------------------------------


class DirectClient:
    """A plain keep-alive HTTP client: POST a body, read the (streamed) answer to its end."""

    def __init__(self, url: str, api_key: str | None = None):
        parts = urllib.parse.urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"

    def send(self, path: str, body: dict[str, Any]) -> tuple[float, float | None, int]:
        """(total ms, first data chunk ms or None, status) for one request."""
        data = json.dumps(body).encode("utf-8")
        t0 = time.perf_counter()
        try:
            self.connection.request("POST", path, body=data, headers=self.headers)
            answer = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closed the kept-alive connection after its last answer (llama-server does
            # after a stream): a new connection, as any client would open, and the clock restarts.
            self.connection.close()
            t0 = time.perf_counter()
            self.connection.request("POST", path, body=data, headers=self.headers)
            answer = self.connection.getresponse()
        first = None
        while line := answer.readline():
            if first is None and line.startswith(b"data:"):
                first = (time.perf_counter() - t0) * 1e3
        return (time.perf_counter() - t0) * 1e3, first, answer.status

    def close(self) -> None:
        self.connection.close()


# -- dg-lsp over stdio (passes a and b) --------------------------------------------------------


def lsp_settings(url: str, args) -> dict[str, Any]:
    return {"engine": "remote", "maxCanvas": args.max_canvas, "contextTokens": args.context_tokens,
            "remote": {"url": url, "kind": args.kind, "model": args.model_name, "family": args.family,
                       "timeoutMs": 30_000}}


async def start_dg_lsp(settings: dict[str, Any]) -> WireClient:
    client = await WireClient.start(sys.executable, "-m", "dg_lsp", "serve", "--log-level", "WARNING",
                                    cwd=str(REPO))
    await client.request("initialize", {"processId": os.getpid(), "capabilities": {},
                                        "initializationOptions": {"dgLsp": settings}})
    client.notify("initialized", {})
    deadline = time.monotonic() + READY_TIMEOUT_S
    while (status := await client.request("dg/status", None))["state"] != "ready":
        if status["state"] in ("failed", "unreachable") or time.monotonic() > deadline:
            await client.close()
            raise SystemExit(f"dg-lsp with the remote engine did not get ready: {status}")
        await asyncio.sleep(0.1)
    return client


@dataclass
class Typing:
    """One document being retyped in one dg-lsp process."""

    client: WireClient
    uri: str
    version: int = 1

    def change(self, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        self.version += 1
        self.client.notify("textDocument/didChange", {
            "textDocument": {"uri": self.uri, "version": self.version},
            "contentChanges": [{"range": {"start": {"line": start[0], "character": start[1]},
                                          "end": {"line": end[0], "character": end[1]}}, "text": text}]})

    async def complete(self, at: tuple[int, int]) -> Any:
        return await self.client.request("textDocument/inlineCompletion", {
            "textDocument": {"uri": self.uri}, "position": {"line": at[0], "character": at[1]},
            "context": {"triggerKind": 2}})  # Automatic


async def type_through_dg_lsp(url: str, args, text: str, uri: str, cursor0, end0, strokes: list[Keystroke],
                              on_key=None) -> tuple[list[float], list[int], list[float | None], dict[str, Any]]:
    """Retype `strokes` into a fresh dg-lsp; per keystroke the round trip in ms, the items
    answered and the model call's own time inside dg-lsp (dg/status lastLatencyMs, read after
    the answer, None when no call ran). `on_key(i)` runs after each answer, outside the timing."""
    client = await start_dg_lsp(lsp_settings(url, args))
    try:
        typing = Typing(client, uri)
        client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python",
                                                                "version": 1, "text": text}})
        typing.change(cursor0, end0, "")  # delete the region
        for _ in range(args.warmup):  # untimed: the server loads its prompt cache
            await typing.complete(cursor0)
        if on_key is not None:
            on_key(-1)
        times, items, engine_ms = [], [], []
        calls = (await client.request("dg/status", None)).get("requests", 0)
        for i, stroke in enumerate(strokes):
            t0 = time.perf_counter()
            typing.change(stroke.at, stroke.at, stroke.char)
            answer = await typing.complete(stroke.cursor)
            times.append((time.perf_counter() - t0) * 1e3)
            items.append(len(answer.get("items", answer) if isinstance(answer, dict) else answer or []))
            status = await client.request("dg/status", None)
            engine_ms.append(status.get("lastLatencyMs") if status.get("requests", 0) > calls else None)
            calls = status.get("requests", 0)
            if on_key is not None:
                on_key(i)
        status = await client.request("dg/status", None)
    finally:
        await client.close()
    return times, items, engine_ms, status


# -- the server --------------------------------------------------------------------------------


@contextmanager
def tiny_server(workdir: Path, which: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """llama-cpp-python's server, or llama.cpp's llama-server, on the tests' tiny GGUF (built
    here in a few seconds)."""
    from tests.remote.llama_server import (LLAMA_SERVER_ENV, MODEL_ALIAS, find_llama_server,
                                           start_llama_cpp_python_server, start_llama_cpp_server)
    from tests.remote.tiny_gguf import build_tiny_gguf

    print(f"building the tiny GGUF and starting {which} ...", file=sys.stderr)
    gguf_path = build_tiny_gguf(workdir)
    if which == "llama-server":
        binary = find_llama_server()
        if binary is None:
            raise SystemExit(f"no llama-server binary: set {LLAMA_SERVER_ENV} or put llama-server on PATH")
        server_cm, described = start_llama_cpp_server(binary, gguf_path, workdir), f"llama.cpp {binary}, 1 thread"
    else:
        server_cm = start_llama_cpp_python_server(gguf_path, workdir)
        described = f"llama-cpp-python {package_version('llama-cpp-python')} (python -m llama_cpp.server, n_threads 1)"
    with server_cm as server:
        yield server.url, {"source": "tiny random Qwen2 GGUF (tests/remote/tiny_gguf.py)", "random_weights": True,
                           "note": RANDOM_NOTE, "name": MODEL_ALIAS, "path": str(gguf_path),
                           "gguf_bytes": gguf_path.stat().st_size, "server": described}


# -- the run -----------------------------------------------------------------------------------


def group_bodies(marks: list[int], bodies: list) -> list[list]:
    """The request bodies recorded between consecutive marks: those of each keystroke."""
    return [bodies[marks[i]:marks[i + 1]] for i in range(len(marks) - 1)]


def replay_direct(url: str, per_key: list[list[tuple[str, dict]]], warm: list[tuple[str, dict]],
                  api_key: str | None) -> tuple[list[float | None], list[float | None], list[int]]:
    client = DirectClient(url, api_key)
    try:
        for path, body in warm:
            client.send(path, body)
        totals, firsts, statuses = [], [], []
        for requests in per_key:
            if not requests:
                totals.append(None)
                firsts.append(None)
                continue
            total, first = 0.0, None
            for path, body in requests:
                ms, first_ms, status = client.send(path, body)
                first = first if first is not None else (None if first_ms is None else total + first_ms)
                total += ms
                statuses.append(status)
            totals.append(total)
            firsts.append(first)
    finally:
        client.close()
    return totals, firsts, statuses


async def run(args, url: str, text: str, uri: str, cursor0, end0, strokes: list[Keystroke]) -> dict[str, Any]:
    with RecordingProxy(url) as proxy:
        marks: list[int] = []
        await type_through_dg_lsp(proxy.url, args, text, uri, cursor0, end0, strokes,
                                  on_key=lambda i: marks.append(proxy.count()))
        bodies = list(proxy.bodies)
    warm_bodies, per_key = bodies[:marks[0]], group_bodies(marks, bodies)
    print(f"recorded {len(bodies)} requests for {len(strokes)} keystrokes", file=sys.stderr)
    lsp_ms, items, engine_ms, status = await type_through_dg_lsp(url, args, text, uri, cursor0, end0, strokes)
    direct_ms, direct_first_ms, statuses = replay_direct(url, per_key, warm_bodies, api_key=None)
    return {"lsp_ms": lsp_ms, "items": items, "engine_ms": engine_ms, "direct_ms": direct_ms, "direct_first_ms": direct_first_ms,
            "direct_statuses": statuses, "per_key_requests": [len(r) for r in per_key],
            "sample_body": per_key[next((i for i, r in enumerate(per_key) if r), 0)][:1],
            "dg_status_after": status}


def summarize(out: dict[str, Any]) -> dict[str, Any]:
    called = [i for i, n in enumerate(out["per_key_requests"]) if n > 0]
    lsp = [out["lsp_ms"][i] for i in called]
    direct = [out["direct_ms"][i] for i in called]
    uncalled = [out["lsp_ms"][i] for i, n in enumerate(out["per_key_requests"]) if n == 0]
    # The model call as dg-lsp times it (its HTTP client, streaming parse): the rest of the
    # round trip is the LSP side (protocol, document, context, prompt, post-processing).
    timed = [i for i in called if out["engine_ms"][i] is not None]
    lsp_stats, direct_stats = latency_stats(lsp), latency_stats(direct)

    def ratio(key: str) -> float | None:
        a, b = lsp_stats[key], direct_stats[key]
        return None if a is None or not b else a / b

    return {
        "keystrokes": len(out["lsp_ms"]),
        "keystrokes_with_model_call": len(called),
        "requests_per_keystroke_max": max(out["per_key_requests"], default=0),
        "through_dg_lsp": lsp_stats,
        "direct": direct_stats,
        "direct_first_chunk": latency_stats([out["direct_first_ms"][i] for i in called
                                             if out["direct_first_ms"][i] is not None]),
        "ratio_p50": ratio("p50_ms"),
        "ratio_p95": ratio("p95_ms"),
        "overhead_per_keystroke": latency_stats([a - b for a, b in zip(lsp, direct)]),
        "model_call_inside_dg_lsp": latency_stats([out["engine_ms"][i] for i in timed]),
        "model_call_inside_dg_lsp_minus_direct": latency_stats([out["engine_ms"][i] - out["direct_ms"][i]
                                                                for i in timed]),
        "lsp_side_rest": latency_stats([out["lsp_ms"][i] - out["engine_ms"][i] for i in timed]),
        "without_model_call_through_dg_lsp": latency_stats(uncalled),
        "answers_with_items": sum(1 for n in out["items"] if n),
        "direct_http_statuses": sorted(set(out["direct_statuses"])),
    }


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def print_table(record: dict[str, Any]) -> None:
    r = record["results"]
    s = record["settings"]
    print()
    print(f"server: {record['model'].get('server', s['url'])}; model: {record['model']['source']}")
    print(f"kind {s['kind']}, family {s['family'] or '-'}, maxCanvas {s['maxCanvas']}, "
          f"contextTokens {s['contextTokens']}; {r['keystrokes']} keystrokes typed, "
          f"{r['keystrokes_with_model_call']} with a model call")
    load = record["load_average"]
    print(f"cores (server, dg-lsp and client share them): {record['cpu_affinity']}; load average (1 min) "
          f"at start / end: {load['start'][0]:.2f} / {load['end'][0]:.2f}")
    print()
    print(f"{'keystroke -> completion':<44} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}")
    print("-" * 80)
    for name, row in (("through dg-lsp (didChange + inlineCompletion)", r["through_dg_lsp"]),
                      ("direct (same bodies, plain HTTP client)", r["direct"]),
                      ("direct, first streamed chunk", r["direct_first_chunk"]),
                      ("dg-lsp - direct, per keystroke", r["overhead_per_keystroke"]),
                      ("  of which: model call inside dg-lsp - direct", r["model_call_inside_dg_lsp_minus_direct"]),
                      ("  of which: the rest (LSP, context, prompt)", r["lsp_side_rest"]),
                      ("model call as dg-lsp times it", r["model_call_inside_dg_lsp"]),
                      ("through dg-lsp, no model call (its cache)", r["without_model_call_through_dg_lsp"])):
        print(f"{name:<44} {row['n']:>5} {fmt(row['p50_ms']):>9} {fmt(row['p95_ms']):>9} {fmt(row['max_ms']):>9}")
    print()
    print(f"ratio dg-lsp / direct: p50 {fmt(r['ratio_p50'], 2)}x, p95 {fmt(r['ratio_p95'], 2)}x")
    print()



def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=None, help="a running server (default: start one on the tiny GGUF)")
    p.add_argument("--server", default="llama-cpp-python", choices=("llama-cpp-python", "llama-server"),
                   help="the server started without --url (llama-server: $DG_LSP_LLAMA_SERVER or on PATH)")
    p.add_argument("--model-name", default=None, help="dgLsp.remote.model (default: the tiny GGUF's alias)")
    p.add_argument("--kind", default="openai", choices=("openai", "openai-suffix", "llamacpp-infill"),
                   help="dgLsp.remote.kind (default: openai)")
    p.add_argument("--family", default="qwen", help="dgLsp.remote.family (default: qwen)")
    p.add_argument("--file", type=Path, default=DEFAULT_FILE, help="source file to type (default: _pydecimal.py)")
    p.add_argument("--lines", type=int, default=5000, help="cut the file to its first N lines (default: 5000)")
    p.add_argument("--keys", type=int, default=150, help="type this many characters of the body (default: 150)")
    p.add_argument("--max-canvas", type=int, default=16, help="dgLsp.maxCanvas: tokens asked for (default: 16)")
    p.add_argument("--context-tokens", type=int, default=1024, help="dgLsp.contextTokens (default: 1024)")
    p.add_argument("--warmup", type=int, default=3, help="untimed requests before typing (default: 3)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="folder for the JSON record")
    args = p.parse_args(argv)
    if args.keys < 1 or args.warmup < 1:
        p.error("--keys and --warmup must be at least 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    args = parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    load_start = os.getloadavg()
    path = args.file.resolve()
    text, full, line_count = load_source(path, args.lines)
    region = pick_function_body(text, full, line_count)
    before, body = text[:region.start], text[region.start:region.end][:args.keys]
    strokes = keystrokes(before, body)
    cursor0, end0 = position_at(text, region.start), position_at(text, region.end)

    with ExitStack() as stack:
        if args.url:
            url, model = args.url.rstrip("/"), {"source": "given server", "random_weights": None, "url": args.url}
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dg-lsp-remote-")))
            url, model = stack.enter_context(tiny_server(workdir, args.server))
            args.model_name = args.model_name or model["name"]
        args.model_name = args.model_name or ""
        out = asyncio.run(run(args, url, text, path.as_uri(), cursor0, end0, strokes))

    device = device_description(torch.device("cpu"))
    record = {
        **record_header(BENCHMARK, started, device),
        "load_average": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()]},
        # Server, dg-lsp and the direct client share these cores: on one core, dg-lsp's own work
        # and the server's run in turn, which a remote server on another machine would not.
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "httpx2": package_version("httpx2"),
        "model": model,
        "file": {"path": str(path), "lines": line_count, "region": region.name, "first_line": region.first_line,
                 "typed_chars": len(body)},
        "settings": {"url": url, "kind": args.kind, "family": args.family, "model": args.model_name,
                     "maxCanvas": args.max_canvas, "contextTokens": args.context_tokens, "warmup": args.warmup,
                     "client": "bare JSON-RPC (lsp_wire.py); each completion awaited before the next key"},
        "results": {**summarize(out), "sample_request": out["sample_body"], "dg_status_after": out["dg_status_after"],
                    "samples_ms": {"through_dg_lsp": [round(t, 3) for t in out["lsp_ms"]],
                                   "direct": [None if t is None else round(t, 3) for t in out["direct_ms"]],
                                   "model_call_inside_dg_lsp": [None if t is None else round(t, 3)
                                                                for t in out["engine_ms"]],
                                   "requests_per_keystroke": out["per_key_requests"]}},
    }
    print_table(record)
    publish_record(record, args.out, BENCHMARK, "cpu", started)
    return record


if __name__ == "__main__":
    main()
