"""Quality benchmark, through the server: what an editor user gets, diffusion vs autoregressive.

Every request goes through the server's own path (`CompletionService.complete`: the span
planner, the prompt builder, the engine on the model thread, the confidence gate and the
post-processing), with the buffer as an editor holds it. Two engines answer, over the same
weights (`--model`, default the shipped default model) and the same prompts:

- diffusion: the `Engine` (block diffusion; prompt-lookup drafts from the open documents);
- autoregressive: `AutoregressiveEngine`, greedy decoding through the model's causal encoder
  behind the same interface (a token's confidence is its softmax probability).

Sets (`--sets`):

- `heldout`: line holes cut from the held-out corpus (`--heldout`, default
  `/tmp/dg-corpus/heldout.jsonl`; packages the model never trained on), one per document: the
  line's content is removed and the cursor put where it was; an automatic request (the
  server's `dgLsp.steps`, `--min-confidence`, default the server's `dgLsp.minConfidence`).
  `--inside` puts the cursor at a random character inside each line's code instead, as while
  typing (the gate is then `--min-confidence-in-line`, the server's `dgLsp.minConfidenceInLine`).
  Reported: the share of requests answered (something shown), the share of shown completions
  that are right (a non-empty prefix of the line's true rest) and right characters per request
  (a gate that shows only `return` is right often and helps little);
- `single-line`, `multi-line`: HumanEval-Infilling (`../shared/data/humaneval-infilling/`),
  the hole an empty line at the cursor, as a user who opened a line would have it; an invoked
  request (`--steps`, default the server's `dgLsp.invokedSteps`) whose first offered
  completion is the answer (the server's invoked gate, `--min-confidence-invoked`, default
  `dgLsp.minConfidenceInvoked`: the candidate cut where its probability falls below that floor,
  or the whole candidate when nothing is above it; 0: the whole candidate), run with
  the task's tests in the sandbox (3 s): pass@1. Beside it, the passes beyond an empty line:
  the tests of some tasks pass with the hole left empty (27 of the 1,033 single-line tasks),
  so a model that offers nothing passes them too; its passes on the other tasks are what it
  solved. A seeded sample (`--sample-seed`) of `--limit-single`/`--limit-multi` (300 each)
  tasks; `--full` runs every task.

Per set and decoding: those figures and the median milliseconds per request (end to end
through the service; the prompt cache is cleared before each request so both decodings encode
the whole prompt). The decodings take turns on every item (the order swapped every item), so a
shared machine whose speed drifts slows both alike; the sandboxed test runs come after all
requests of a set. Per set, the comparison: the quality difference (points) and the latency
ratio autoregressive / diffusion (> 1: diffusion answers sooner).

The table is printed, and again as markdown for the README; a JSON record is written to
`<out>/quality-<device kind>-<YYYYmmdd-HHMMSS>.json` and printed as one line.

Run from the repository root:

    python benchmarks/quality.py                                  # the default model
    python benchmarks/quality.py --model DIR --limit 10           # smoke run
    python benchmarks/quality.py --model DIR --full --device cuda # every task
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_records import device_description, publish_record, record_header  # noqa: E402

from lsprotocol import types  # noqa: E402

from dg_lsp.context.ring import SnippetRing  # noqa: E402
from dg_lsp.engine.engine import Engine  # noqa: E402
from dg_lsp.errors import InputError, ModelLoadError  # noqa: E402
from dg_lsp.evaluation import heldout, humaneval  # noqa: E402
from dg_lsp.evaluation.autoregressive import AutoregressiveEngine  # noqa: E402
from dg_lsp.server.completions import CompletionService  # noqa: E402
from dg_lsp.server.documents import DocumentStore  # noqa: E402
from dg_lsp.server.model_host import ModelHost  # noqa: E402
from dg_lsp.server.settings import Settings  # noqa: E402
from dg_lsp.server.worker import ModelWorker  # noqa: E402

BENCHMARK = "quality"
DEFAULT_MODEL = REPO / "dg_lsp" / "models" / "default"
DEFAULT_HELDOUT = Path("/tmp/dg-corpus/heldout.jsonl")
SETS = ("heldout", "single-line", "multi-line")
DECODINGS = ("diffusion", "autoregressive")
LANGUAGE_IDS = {"python": "python", "javascript": "javascript", "typescript": "typescript", "rust": "rust",
                "go": "go", "lua": "lua"}


# -- requests through the server --------------------------------------------------------------


@dataclass
class Answer:
    """What the server offered for one request, and how long it took."""

    texts: list[str]  # in order of preference; empty: nothing shown
    total_ms: float
    source: str


class ThroughServer:
    """One engine behind the server's `CompletionService`, with its own document store."""

    def __init__(self, name: str, engine, loop: asyncio.AbstractEventLoop):
        self.name, self.engine, self.loop = name, engine, loop
        self.documents = DocumentStore(SnippetRing())
        host = ModelHost(lambda event: None)
        host.engine, host.state = engine, "ready"
        self.service = CompletionService(self.documents, host, ModelWorker())
        self.requests = 0

    def complete(self, text: str, offset: int, language: str, invoked: bool, settings: Settings) -> Answer:
        self.requests += 1
        uri = f"file:///quality/{self.name}/{self.requests}/buffer.{language}"
        doc = self.documents.open(types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text))
        doc.parsed_tree()  # the server parses an open document while the user reads it, not per request
        self.engine.prompt_cache.clear()  # both decodings encode the whole prompt
        self.service.cache.clear()
        start = time.perf_counter()
        result = self.loop.run_until_complete(
            self.service.complete(uri, self.documents.position(doc, offset), invoked, settings))
        total_ms = (time.perf_counter() - start) * 1e3
        self.documents.close(uri)
        if result.source not in ("model", "cache", "forward"):
            raise RuntimeError(f"the server gave no model answer: {result.source}")
        return Answer(result.texts, total_ms, result.source)


def interleaved(items: list, paths: list[ThroughServer], ask: Callable, warmup: int, desc: str) -> dict[str, list]:
    """`ask(path, item)` for every item and path, the paths taking turns (the order swapped
    every item); each path warmed up on the first item first."""
    for path in paths:
        for _ in range(warmup):
            ask(path, items[0])
    answers: dict[str, list[Answer]] = {p.name: [] for p in paths}
    for i, item in enumerate(tqdm(items, desc=desc, unit="request", file=sys.stderr)):
        for path in paths if i % 2 == 0 else paths[::-1]:
            answers[path.name].append(ask(path, item))
    return answers


def score_line(shown: list[str], expected: str) -> tuple[bool, bool, int]:
    """(answered, right, right characters) for the first shown completion of a line hole."""
    if not shown:
        return False, False, 0
    text = shown[0]
    right = bool(text.strip()) and expected.startswith(text.rstrip("\n"))
    return True, right, len(text) if right else 0


def latency(answers: list[Answer]) -> dict[str, float]:
    times = sorted(a.total_ms for a in answers)
    return {"ms_per_request_median": statistics.median(times),
            "ms_per_request_p95": times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]}


def run_heldout(holes: list[heldout.Hole], paths: list[ThroughServer], settings: Settings, args) -> dict[str, Any]:
    def ask(path, hole):
        return path.complete(hole.prefix + hole.suffix, len(hole.prefix), LANGUAGE_IDS[hole.language],
                             invoked=False, settings=settings)

    answers = interleaved(holes, paths, ask, args.warmup, "heldout")
    figures = {}
    for path in paths:
        scores = [score_line(a.texts, h.hole) for a, h in zip(answers[path.name], holes)]
        n, answered, right = len(holes), sum(s[0] for s in scores), sum(s[1] for s in scores)
        per_hole = [{"path": h.path, "line": h.line, "answered": s[0], "right": s[1],
                     "total_ms": round(a.total_ms, 2), **({"expected": h.hole, "shown": a.texts[:1]}
                                                          if args.save_completions else {})}
                    for h, a, s in zip(holes, answers[path.name], scores)]
        figures[path.name] = {"n": n, "answered_share": answered / n,
                              "right_share_of_shown": right / answered if answered else None,
                              "right_share_of_requests": right / n,
                              "right_chars_per_request": sum(s[2] for s in scores) / n,
                              **latency(answers[path.name]), "holes": per_hole}
    return figures


def run_humaneval(name: str, tasks: list[humaneval.Task], paths: list[ThroughServer], settings: Settings,
                  args) -> dict[str, Any]:
    def ask(path, task):  # the hole is an empty line at the cursor
        return path.complete(task.prompt + "\n" + task.suffix, len(task.prompt), "python", invoked=True,
                             settings=settings)

    answers = interleaved(tasks, paths, ask, args.warmup, name)
    # Tasks an empty line passes: a model that offers nothing passes them as well.
    empty = humaneval.passing_empty(tasks, timeout_s=args.timeout, workers=args.workers, desc=name)
    figures = {}
    for path in paths:
        # The line the completion fills keeps its line break; nothing offered leaves it empty.
        middles = [(a.texts[0] if a.texts else "") + "\n" for a in answers[path.name]]
        results = humaneval.check_all(tasks, middles, timeout_s=args.timeout, workers=args.workers,
                                      desc=f"{name} {path.name}")
        per_task = [{"task_id": o.task_id, "status": o.status, "total_ms": round(a.total_ms, 2),
                     **({"completion": o.completion} if args.save_completions else {})}
                    for o, a in zip(results.outcomes, answers[path.name])]
        beyond_empty = sum(o.passed and o.task_id not in empty for o in results.outcomes)
        figures[path.name] = {"n": results.n, "passed": results.passed, "pass_at_1": results.pass_at_1,
                              "empty_line_passes": len(empty), "passed_beyond_empty": beyond_empty,
                              "answered_share": sum(bool(a.texts) for a in answers[path.name]) / results.n,
                              "status_counts": results.status_counts(), **latency(answers[path.name]),
                              "tasks": per_task}
    return figures


def quality_of(figures: dict[str, Any]) -> float:
    return figures["pass_at_1"] if "pass_at_1" in figures else figures["right_share_of_requests"]


def compare(diffusion: dict[str, Any], autoregressive: dict[str, Any]) -> dict[str, Any]:
    return {
        "quality_gap_points": (quality_of(diffusion) - quality_of(autoregressive)) * 100,
        "latency_ratio": _ratio(autoregressive["ms_per_request_median"], diffusion["ms_per_request_median"]),
    }


def _ratio(a: float, b: float) -> float:
    return a / b if b and b > 0 and not math.isnan(b) else float("nan")


# -- environment (as benchmarks/engine.py) --------------------------------------------------------


def model_summary(engine: Engine) -> dict[str, Any]:
    cfg = engine.loaded.config
    parameters = sum(p.numel() for p in engine.model.parameters())
    embedding = engine.model.embed_tokens.weight.numel()
    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "head_dim", "sliding_window", "num_experts", "top_k_experts",
            "moe_intermediate_size", "tie_word_embeddings", "canvas_length")
    fmt = engine.prompt_format
    return {
        "directory": str(engine.loaded.directory),
        "parameters": parameters,
        "non_embedding_parameters": parameters - embedding,
        "dtype": str(engine.loaded.dtype).removeprefix("torch."),
        "config": {k: getattr(cfg, k) for k in keys},
        "layer_types": [spec.kind for spec in cfg.layers],
        "prompt_format": {"kind": fmt.kind, "fim_order": fmt.fim_order if fmt.kind == "fim" else None},
        "sampler_defaults": {k: v for k, v in asdict(engine.loaded.sampler_defaults).items() if k != "extra"},
    }


# -- reporting ----------------------------------------------------------------------------------


def table_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for name, per_set in results.items():
        for decoding in DECODINGS:
            if decoding not in per_set:
                continue
            f = per_set[decoding]
            if "pass_at_1" in f:
                metric, right, chars = f"{f['pass_at_1'] * 100:.1f}% pass@1", "-", "-"
                if "passed_beyond_empty" in f:  # older records lack it
                    metric += f" ({f['passed_beyond_empty']} beyond an empty line's {f['empty_line_passes']})"
            else:
                shown = f["right_share_of_shown"]
                metric = f"{f['right_share_of_requests'] * 100:.1f}% right"
                right = "-" if shown is None else f"{shown * 100:.1f}%"
                chars = f"{f['right_chars_per_request']:.2f}"
            rows.append((name, decoding, str(f["n"]), metric, f"{f['answered_share'] * 100:.1f}%", right, chars,
                         f"{f['ms_per_request_median']:.1f}"))
    return rows


HEADER = ("set", "decoding", "n", "quality", "answered", "right of shown", "right chars/request",
          "ms/request (median)")


def comparison_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for name, per_set in results.items():
        c = per_set.get("comparison")
        if c is not None:
            rows.append((name, f"{c['quality_gap_points']:+.1f}", f"{c['latency_ratio']:.2f}x"))
    return rows


COMPARISON_HEADER = ("set", "diffusion - AR (points)", "latency ratio (AR / diffusion)")


def print_tables(results: dict[str, Any]) -> None:
    for header, rows in ((HEADER, table_rows(results)), (COMPARISON_HEADER, comparison_rows(results))):
        if not rows:
            continue
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        print()
        print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        print("-" * (sum(widths) + 2 * (len(widths) - 1)))
        for row in rows:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths)))
    print()
    print("markdown:")
    print()
    for header, rows in ((HEADER, table_rows(results)), (COMPARISON_HEADER, comparison_rows(results))):
        if not rows:
            continue
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(" --- " for _ in header) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        print()


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model directory (default: the shipped default model)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {', '.join(SETS)} (default: all)")
    p.add_argument("--decodings", default=",".join(DECODINGS), help="comma-separated, of diffusion, autoregressive")
    p.add_argument("--limit", type=int, default=None, help="at most N tasks/holes in every set (overrides the per-set limits)")
    p.add_argument("--limit-single", type=int, default=300, help="single-line tasks (default: 300 of 1,033)")
    p.add_argument("--limit-multi", type=int, default=300, help="multi-line tasks (default: 300 of 5,815)")
    p.add_argument("--limit-heldout", type=int, default=300, help="held-out holes (default: 300)")
    p.add_argument("--full", action="store_true", help="every task and hole (no limits)")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the subset sample (default: 0)")
    p.add_argument("--first", action="store_true", help="take the first N tasks instead of a seeded sample")
    defaults = Settings()
    p.add_argument("--steps", type=int, default=defaults.invokedSteps,
                   help=f"most denoising steps of an invoked request (HumanEval; default: {defaults.invokedSteps})")
    p.add_argument("--auto-steps", type=int, default=defaults.steps,
                   help=f"most denoising steps of an automatic request (held-out lines; default: {defaults.steps})")
    p.add_argument("--min-confidence", type=float, default=defaults.minConfidence,
                   help=f"the gate of automatic requests at a line's start (default: {defaults.minConfidence})")
    p.add_argument("--min-confidence-in-line", type=float, default=defaults.minConfidenceInLine,
                   help=f"the gate with the cursor inside a line's code (--inside; default: {defaults.minConfidenceInLine})")
    p.add_argument("--min-confidence-invoked", type=float, default=defaults.minConfidenceInvoked,
                   help=f"the floor of invoked requests (HumanEval; 0: the whole candidate; "
                        f"default: {defaults.minConfidenceInvoked})")
    p.add_argument("--drafts", action=argparse.BooleanOptionalAction, default=True,
                   help="prompt-lookup drafts from the open documents (default: on, as the server)")
    p.add_argument("--heal", action=argparse.BooleanOptionalAction, default=True,
                   help="token healing of the prompt's last prefix token (default: on, as the server)")
    p.add_argument("--seed", type=int, default=0, help="diffusion sampling seed (default: 0)")
    p.add_argument("--heldout", type=Path, default=None,
                   help=f"held-out corpus JSON lines (default: {DEFAULT_HELDOUT} if it exists)")
    p.add_argument("--heldout-seed", type=int, default=0, help="seed of the hole positions (default: 0)")
    p.add_argument("--inside", action="store_true",
                   help="held-out cursors at a random character inside each line's code, not after its indentation")
    p.add_argument("--data", type=Path, default=None,
                   help="HumanEval-Infilling folder (default: ../shared/data/humaneval-infilling)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds per sandboxed test run (default: 3)")
    p.add_argument("--workers", type=int, default=2, help="sandboxed test runs at once (default: 2)")
    p.add_argument("--warmup", type=int, default=1, help="untimed completions per decoding before each set (default: 1)")
    p.add_argument("--save-completions", action="store_true", help="keep every completion's text in the JSON record")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="folder for the JSON record")
    args = p.parse_args(argv)
    args.sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    args.decodings = [d.strip() for d in args.decodings.split(",") if d.strip()]
    if not args.sets or set(args.sets) - set(SETS):
        p.error(f"--sets takes some of {', '.join(SETS)}")
    if not args.decodings or set(args.decodings) - set(DECODINGS):
        p.error(f"--decodings takes some of {', '.join(DECODINGS)}")
    if min(args.steps, args.auto_steps, args.workers) < 1 or args.warmup < 0:
        p.error("--steps, --auto-steps and --workers must be positive, --warmup >= 0")
    if not all(0.0 <= v <= 1.0 for v in (args.min_confidence, args.min_confidence_in_line,
                                         args.min_confidence_invoked)):
        p.error("--min-confidence, --min-confidence-in-line and --min-confidence-invoked must be between 0 and 1")
    if args.timeout <= 0:
        p.error("--timeout must be positive")
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be positive")
    if args.full:
        args.limit_single = args.limit_multi = args.limit_heldout = None
    elif args.limit is not None:
        args.limit_single = args.limit_multi = args.limit_heldout = args.limit
    if not (args.model / "config.json").is_file():
        hint = ("the default model has not been shipped yet (or was not installed with the package); "
                "pass --model DIR" if args.model == DEFAULT_MODEL else "pass a Hugging Face model directory")
        p.exit(2, f"{p.prog}: error: no model at {args.model} (no config.json): {hint}\n")
    return args


def select_sets(args) -> tuple[dict[str, list], dict[str, str]]:
    """The tasks / holes of each chosen set, and notes on those skipped."""
    seed = None if args.first else args.sample_seed
    chosen: dict[str, list] = {}
    notes: dict[str, str] = {}
    limits = {"single-line": args.limit_single, "multi-line": args.limit_multi}
    for name in ("single-line", "multi-line"):
        if name in args.sets:
            chosen[name] = humaneval.subset(humaneval.load_tasks(name, args.data), limits[name], seed)
    if "heldout" in args.sets:
        path = args.heldout or DEFAULT_HELDOUT
        if not path.is_file():
            notes["heldout"] = f"skipped: no held-out corpus at {path} (write it with dg_lsp.train.corpus, or pass --heldout)"
        else:
            docs = [d for d in heldout.read_documents(path) if d.get("language") in LANGUAGE_IDS]
            holes = heldout.cut_holes(docs, seed=args.heldout_seed, inside=args.inside)
            if holes:
                chosen["heldout"] = humaneval.subset(holes, args.limit_heldout, seed)
            else:
                notes["heldout"] = f"skipped: {path} has no line to cut a hole from"
    return chosen, notes


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    device = torch.device(args.device)
    try:
        chosen, notes = select_sets(args)
        print(f"loading {args.model} ...", file=sys.stderr)
        load_start = time.perf_counter()
        engine = Engine.from_directory(args.model, device=args.device, progress=False)
    except (FileNotFoundError, ModelLoadError, InputError, ValueError) as err:
        print(f"quality.py: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    load_s = time.perf_counter() - load_start
    engine.heal_tokens = args.heal
    for note in notes.values():
        print(f"note: heldout {note}", file=sys.stderr)

    loop = asyncio.new_event_loop()
    available = {"diffusion": lambda: engine, "autoregressive": lambda: AutoregressiveEngine(engine)}
    paths = [ThroughServer(name, available[name](), loop) for name in args.decodings]
    for path in paths:
        path.service.use_drafts = args.drafts
    automatic = Settings(steps=args.auto_steps, seed=args.seed, minConfidence=args.min_confidence,
                         minConfidenceInLine=args.min_confidence_in_line)
    # An empty line at column 0: the invoked floor is the gate (it is below minConfidence's default).
    invoked = Settings(invokedSteps=args.steps, candidates=1, seed=args.seed, minConfidenceInvoked=args.min_confidence_invoked)
    results: dict[str, Any] = {}
    for name, items in chosen.items():
        if name == "heldout":
            per_set = run_heldout(items, paths, automatic, args)
        else:
            per_set = run_humaneval(name, items, paths, invoked, args)
        if len(per_set) == 2:
            per_set["comparison"] = compare(per_set["diffusion"], per_set["autoregressive"])
        results[name] = per_set
    loop.close()

    print_tables(results)
    for note in notes.values():
        print(f"heldout: {note}")
    record = {
        **record_header(BENCHMARK, started, device_description(device)),
        "model": model_summary(engine),
        "model_load_s": load_s,
        "settings": {
            "sets": list(chosen), "decodings": args.decodings, "seed": args.seed, "token_healing": args.heal,
            "path": "CompletionService.complete: planner, prompt builder, engine, gate, post-processing",
            "heldout_request": {"trigger": "automatic", "steps": args.auto_steps,
                                "min_confidence": args.min_confidence,
                                "min_confidence_in_line": args.min_confidence_in_line, "drafts": args.drafts},
            "humaneval_request": {"trigger": "invoked", "steps": args.steps, "candidates": 1,
                                  "min_confidence_invoked": args.min_confidence_invoked,
                                  "answer": "the first offered completion; the hole an empty line at the cursor"},
            "limits": {"single-line": args.limit_single, "multi-line": args.limit_multi, "heldout": args.limit_heldout},
            "subset": "first" if args.first else f"sample(seed={args.sample_seed})",
            "heldout_path": str(args.heldout or DEFAULT_HELDOUT), "heldout_seed": args.heldout_seed,
            "heldout_cursor": "inside the line" if args.inside else "after the indentation",
            "timeout_s": args.timeout, "workers": args.workers, "warmup": args.warmup,
            "prompt_cache": "cleared before every request",
        },
        "notes": notes,
        "results": results,
    }
    publish_record(record, args.out, BENCHMARK, device.type, started)
    return record


if __name__ == "__main__":
    main()
