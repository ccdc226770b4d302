"""Per-request latency of the context layer on a generated 5,000-line Python file (not a test).

    python -m tests.context.measure_latency

Simulates typing: each keystroke is an LSP change, then a completion request runs
`plan_infill` and `clean_completion`. The incremental re-parse after the edit is timed
apart (it belongs to the change, and tree-sitter's cost there is out of our hands). Tokens
are counted with a BPE tokenizer trained on the file, as a stand-in for the model's.
"""

from __future__ import annotations

import json
import statistics
import time

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from dg_lsp.context.document import Document
from dg_lsp.context.plan import plan_infill
from dg_lsp.context.postprocess import clean_completion
from dg_lsp.context.ring import SnippetRing


def generate_python(lines: int) -> str:
    out = ["import os", "import sys", "from dataclasses import dataclass", "from typing import Any", ""]
    i = 0
    while len(out) < lines:
        out += [
            f"class Service{i}:", f'    """Handles batch {i} of requests."""', "",
            f"    def __init__(self, name: str, limit: int = {i}):", "        self.name = name",
            "        self.limit = limit", "        self.items: list[Any] = []", "",
            "    def process(self, value: int) -> int:", "        total = 0", "        for k in range(self.limit):",
            "            if k % 3 == 0:", "                total += k * value", "            else:",
            "                total -= 1", "        return total", "",
            "    def describe(self) -> str:", '        return f"{self.name}: {len(self.items)} items"', "", "",
            f"def helper_{i}(a, b):", "    result = []", "    for x in a:", "        result.append(x + b)",
            "    return result", "", "",
        ]
        i += 1
    return "\n".join(out[:lines]) + "\n"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    text = generate_python(5000)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.train_from_iterator([text], trainers.BpeTrainer(vocab_size=4000, show_progress=False))
    count_tokens = lambda s: len(tokenizer.encode(s).ids)  # noqa: E731

    doc = Document("file:///work/big.py", "python", text)
    ring = SnippetRing()
    ring.add("file:///work/util.py", generate_python(200), 40)
    doc.tree  # the open's parse
    request_ms, reparse_ms, edit_ms, counts = [], [], [], {"line": 0, "block": 0}
    typed = "value = self.process(total) + 1"
    for start_line in (1200, 2500, 3700, 4800):
        # A fresh line right after a method's signature: the first request on the empty
        # line is a block-mode one, then typing goes through line mode.
        line = start_line
        while not doc.line_text(line).startswith("    def process("):
            line += 1
        line += 1
        doc.apply_change(((line, 0), (line, 0)), "        \n")
        for i, ch in enumerate(["", *typed]):
            if ch:
                t0 = time.perf_counter()
                doc.apply_change(((line, 8 + i - 1), (line, 8 + i - 1)), ch)
                ring.add(doc.uri, doc.text, line)
                edit_ms.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            doc.tree
            t1 = time.perf_counter()
            offset = doc.offset_at(line, 8 + max(0, i))
            plan = plan_infill(doc, offset, count_tokens, snippets=ring.snippets(doc.uri, 2048))
            completion = "x = compute(value)\n        return x" if plan.mode == "block" else " * 2)"
            clean_completion(doc, plan, completion)
            t2 = time.perf_counter()
            reparse_ms.append((t1 - t0) * 1e3)
            request_ms.append((t2 - t1) * 1e3)
            counts[plan.mode] += 1
    record = {
        "lines": doc.line_count, "bytes": len(doc.text.encode()), "requests": len(request_ms), "modes": counts,
        "plan_and_clean_ms": {"p50": round(statistics.median(request_ms), 3), "p95": round(percentile(request_ms, 0.95), 3),
                              "max": round(max(request_ms), 3)},
        "edit_and_ring_ms": {"p50": round(statistics.median(edit_ms), 3), "p95": round(percentile(edit_ms, 0.95), 3)},
        "incremental_reparse_ms": {"p50": round(statistics.median(reparse_ms), 3),
                                   "p95": round(percentile(reparse_ms, 0.95), 3)},
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
