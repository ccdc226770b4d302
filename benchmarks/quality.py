"""Quality benchmark: HumanEval-Infilling pass@1 and held-out exact match, diffusion vs autoregressive.

One model directory (`--model`, default the shipped default model `dg_lsp/models/default`),
decoded two ways from the same weights and the same prompts:

- diffusion: `Engine.infill`, block diffusion with at most `--steps` denoising steps (default
  12, the server's automatic-completion setting) and the sampling seed `--seed`;
- autoregressive: greedy decoding through the model's causal encoder
  (`dg_lsp.evaluation.autoregressive`), one token per forward pass with a KV cache.

Both stop at the model's stop tokens or after the same token budget: single-line holes
(HumanEval single-line, held-out lines) a canvas of `--canvas-single` (32) and as many tokens;
multi-line holes a canvas of `--canvas-multi` (64) and at most `--max-tokens-multi` (128)
tokens, i.e. up to two canvases.

Sets (`--sets`):

- `single-line`, `multi-line`: HumanEval-Infilling from `../shared/data/humaneval-infilling/`,
  pass@1 (one completion per task, run with its tests in the sandbox, 3 s). By default a
  seeded sample (`--sample-seed`, 0) of `--limit-single` (200) and `--limit-multi` (100)
  tasks, kept in file order: the files list each problem's holes together, so their first N
  would cover only a few problems (`--first` takes the first N anyway); `--full` runs every
  task, `--limit N` caps every set at N;
- `heldout`: exact match (and difflib edit similarity) on line holes cut from the held-out
  corpus (`--heldout`, default `/tmp/dg-corpus/heldout.jsonl`; skipped with a note when
  absent), one hole per document, `--limit-heldout` (200) of them.

Post-processing, the same for both decodings and kept minimal: a single-line HumanEval
completion is cut after its first line break (the expected middle is exactly one line with
its line break; one is added when the completion has none); a held-out completion is cut at
its first line break (the hole is the line's content, the suffix starts with the break; the
comparison strips blanks); a multi-line completion is used as it is.

Speed, for each decoding: generated tokens (up to the stop token, before post-processing)
over decode time, summed over the set: tokens/s. Decode time is the time after the prompt
is encoded: the denoising steps (and any further canvases) for diffusion, the token loop for
autoregressive decoding. Also the median milliseconds per completion end to end (prompt
tokenization and encoding included; the engine's prompt cache is cleared before every
diffusion completion, so both encode the whole prompt every time) and, for diffusion, the
mean number of decoder passes (nfe). Each decoding is warmed up (`--warmup` untimed
completions) before each set; then the two take turns on every task (the order swapped every
task), so that a shared machine whose speed drifts slows both alike; the sandboxed test runs
come after all completions of a set, so nothing runs beside the timed model calls.

Comparison, per set: the quality gap diffusion - autoregressive in points and relative to the
autoregressive figure, and the speed ratio diffusion / autoregressive (tokens/s; > 1: diffusion
generates faster) and latency ratio autoregressive / diffusion (ms per completion; > 1:
diffusion answers sooner).

The table is printed, and again as markdown for the README; a JSON record is written to
`<out>/quality-<device kind>-<YYYYmmdd-HHMMSS>.json` and printed as one line.

Run from the repository root:

    python benchmarks/quality.py                                  # the default model
    python benchmarks/quality.py --model DIR --limit 10           # smoke run
    python benchmarks/quality.py --model DIR --full --device cuda # every task
"""

from __future__ import annotations

import argparse
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

from dg_lsp.engine.engine import Engine  # noqa: E402
from dg_lsp.errors import InputError, ModelLoadError  # noqa: E402
from dg_lsp.evaluation import heldout, humaneval  # noqa: E402
from dg_lsp.evaluation.autoregressive import generate_autoregressive  # noqa: E402

BENCHMARK = "quality"
DEFAULT_MODEL = REPO / "dg_lsp" / "models" / "default"
DEFAULT_HELDOUT = Path("/tmp/dg-corpus/heldout.jsonl")
SETS = ("single-line", "multi-line", "heldout")
DECODINGS = ("diffusion", "autoregressive")


# -- the two decodings -----------------------------------------------------------------------


@dataclass
class Sample:
    """One raw completion (before post-processing) and what it cost."""

    text: str
    tokens: int  # generated, up to the stop token
    decode_ms: float  # after the prompt is encoded
    encode_ms: float
    total_ms: float
    nfe: int | None = None  # decoder passes (diffusion)


@dataclass
class Budget:
    canvas: int
    max_new_tokens: int


class Diffusion:
    name = "diffusion"

    def __init__(self, engine: Engine, steps: int, seed: int):
        self.engine, self.steps, self.seed = engine, steps, seed

    def complete(self, prefix: str, suffix: str, budget: Budget) -> Sample:
        # A cold prompt every time, as for the autoregressive decoder (and HumanEval's holes of
        # one problem share long prefixes, which the cache would otherwise serve).
        self.engine.prompt_cache.clear()
        c = self.engine.infill(prefix, suffix, canvas_length=budget.canvas, max_new_tokens=budget.max_new_tokens,
                               max_steps=self.steps, seed=self.seed)
        t = c.timings_ms
        return Sample(c.text, len(c.token_ids), t["denoise"], t["encode"], t["total"], c.nfe)


class Autoregressive:
    name = "autoregressive"

    def __init__(self, engine: Engine):
        self.engine = engine

    def complete(self, prefix: str, suffix: str, budget: Budget) -> Sample:
        r = generate_autoregressive(self.engine, prefix, suffix, budget.max_new_tokens)
        t = r.timings_ms
        return Sample(r.text, len(r.token_ids), t["decode"], t["encode"], t["total"])


# -- post-processing (identical for both decodings) -------------------------------------------


def first_line_with_break(text: str) -> str:
    """HumanEval single-line: the middle is one whole line, line break included."""
    return text.split("\n", 1)[0] + "\n"


def first_line(text: str) -> str:
    """Held-out lines: the hole is the line's content; the suffix starts with the break."""
    return text.split("\n", 1)[0]


def as_is(text: str) -> str:
    return text


POSTPROCESS: dict[str, Callable[[str], str]] = {
    "single-line": first_line_with_break, "multi-line": as_is, "heldout": first_line,
}


# -- running a set ------------------------------------------------------------------------------


def speed_figures(samples: list[Sample]) -> dict[str, Any]:
    tokens = sum(s.tokens for s in samples)
    decode_s = sum(s.decode_ms for s in samples) / 1e3
    figures = {
        "tokens": tokens,
        "tokens_mean": tokens / len(samples),
        "decode_s": decode_s,
        "tokens_per_s": tokens / decode_s if decode_s > 0 else float("nan"),
        "ms_per_completion_median": statistics.median(s.total_ms for s in samples),
        "decode_ms_median": statistics.median(s.decode_ms for s in samples),
        "encode_ms_median": statistics.median(s.encode_ms for s in samples),
    }
    if samples[0].nfe is not None:
        figures["nfe_mean"] = statistics.mean(s.nfe for s in samples)
    return figures


def complete_interleaved(pairs: list[tuple[str, str]], decoders: list, budget: Budget, warmup: int,
                         desc: str) -> dict[str, list[Sample]]:
    """Every (prefix, suffix) completed by every decoder, the decoders taking turns on each item
    (the order swapped every item) so that a shared machine whose speed drifts slows them alike.
    Each decoder is warmed up on the first item first."""
    for decoder in decoders:
        for _ in range(warmup):
            decoder.complete(*pairs[0], budget)
    samples: dict[str, list[Sample]] = {d.name: [] for d in decoders}
    for i, (prefix, suffix) in enumerate(tqdm(pairs, desc=f"{desc}: complete", unit="item", file=sys.stderr)):
        for decoder in decoders if i % 2 == 0 else decoders[::-1]:
            samples[decoder.name].append(decoder.complete(prefix, suffix, budget))
    return samples


def run_humaneval(name: str, tasks: list[humaneval.Task], decoders: list, budget: Budget, args) -> dict[str, Any]:
    samples = complete_interleaved([(t.prompt, t.suffix) for t in tasks], decoders, budget, args.warmup, name)
    figures = {}
    for decoder in decoders:
        completions = [POSTPROCESS[name](s.text) for s in samples[decoder.name]]
        results = humaneval.check_all(tasks, completions, timeout_s=args.timeout, workers=args.workers,
                                      desc=f"{name} {decoder.name}")
        per_task = []
        for outcome, sample in zip(results.outcomes, samples[decoder.name]):
            entry = {"task_id": outcome.task_id, "status": outcome.status, "tokens": sample.tokens,
                     "total_ms": round(sample.total_ms, 2)}
            if args.save_completions:
                entry["completion"] = outcome.completion
            per_task.append(entry)
        figures[decoder.name] = {"n": results.n, "passed": results.passed, "pass_at_1": results.pass_at_1,
                                 "status_counts": results.status_counts(), **speed_figures(samples[decoder.name]),
                                 "tasks": per_task}
    return figures


def run_heldout(holes: list[heldout.Hole], decoders: list, budget: Budget, args) -> dict[str, Any]:
    samples = complete_interleaved([(h.prefix, h.suffix) for h in holes], decoders, budget, args.warmup, "heldout")
    figures = {}
    for decoder in decoders:
        results = heldout.score_all(holes, [POSTPROCESS["heldout"](s.text) for s in samples[decoder.name]])
        per_hole = []
        for outcome, sample in zip(results.outcomes, samples[decoder.name]):
            entry = {"path": outcome.path, "line": outcome.line, "exact": outcome.exact,
                     "similarity": round(outcome.similarity, 4), "tokens": sample.tokens,
                     "total_ms": round(sample.total_ms, 2)}
            if args.save_completions:
                entry.update(expected=outcome.expected, completion=outcome.completion)
            per_hole.append(entry)
        figures[decoder.name] = {"n": results.n, "exact_match": results.exact_match,
                                 "edit_similarity": results.edit_similarity, **speed_figures(samples[decoder.name]),
                                 "holes": per_hole}
    return figures


def quality_of(figures: dict[str, Any]) -> float:
    return figures["pass_at_1"] if "pass_at_1" in figures else figures["exact_match"]


def compare(diffusion: dict[str, Any], autoregressive: dict[str, Any]) -> dict[str, Any]:
    d, a = quality_of(diffusion), quality_of(autoregressive)
    return {
        "quality_gap_points": (d - a) * 100,
        "relative_quality_gap": (d - a) / a if a > 0 else None,  # None: the autoregressive figure is 0
        "speed_ratio_tokens_per_s": _ratio(diffusion["tokens_per_s"], autoregressive["tokens_per_s"]),
        "latency_ratio": _ratio(autoregressive["ms_per_completion_median"], diffusion["ms_per_completion_median"]),
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
            metric = f"{f['pass_at_1'] * 100:.1f}% pass@1" if "pass_at_1" in f else (
                f"{f['exact_match'] * 100:.1f}% EM, {f['edit_similarity']:.2f} sim")
            nfe = f"{f['nfe_mean']:.1f}" if "nfe_mean" in f else "-"
            rows.append((name, decoding, str(f["n"]), metric, f"{f['tokens_per_s']:.1f}",
                         f"{f['ms_per_completion_median']:.1f}", f"{f['tokens_mean']:.1f}", nfe))
    return rows


HEADER = ("set", "decoding", "n", "quality", "tokens/s", "ms/completion (median)", "tokens (mean)", "nfe (mean)")


def comparison_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for name, per_set in results.items():
        c = per_set.get("comparison")
        if c is None:
            continue
        relative = "n/a (AR 0)" if c["relative_quality_gap"] is None else f"{c['relative_quality_gap'] * 100:+.1f}%"
        rows.append((name, f"{c['quality_gap_points']:+.1f}", relative, f"{c['speed_ratio_tokens_per_s']:.2f}x",
                     f"{c['latency_ratio']:.2f}x"))
    return rows


COMPARISON_HEADER = ("set", "diffusion - AR (points)", "relative gap", "speed ratio (tokens/s)", "latency ratio")


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
    p.add_argument("--limit-single", type=int, default=200, help="single-line tasks (default: 200 of 1,033)")
    p.add_argument("--limit-multi", type=int, default=100, help="multi-line tasks (default: 100 of 5,815)")
    p.add_argument("--limit-heldout", type=int, default=200, help="held-out holes (default: 200)")
    p.add_argument("--full", action="store_true", help="every task and hole (no limits)")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the subset sample (default: 0)")
    p.add_argument("--first", action="store_true", help="take the first N tasks instead of a seeded sample")
    p.add_argument("--steps", type=int, default=12, help="most denoising steps per canvas (default: 12)")
    p.add_argument("--canvas-single", type=int, default=32, help="canvas and token budget of single-line holes (default: 32)")
    p.add_argument("--canvas-multi", type=int, default=64, help="canvas of multi-line holes (default: 64)")
    p.add_argument("--max-tokens-multi", type=int, default=128, help="token budget of multi-line holes (default: 128)")
    p.add_argument("--seed", type=int, default=0, help="diffusion sampling seed (default: 0)")
    p.add_argument("--heldout", type=Path, default=None,
                   help=f"held-out corpus JSON lines (default: {DEFAULT_HELDOUT} if it exists)")
    p.add_argument("--heldout-seed", type=int, default=0, help="seed of the hole positions (default: 0)")
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
    if min(args.steps, args.canvas_single, args.canvas_multi, args.max_tokens_multi, args.workers) < 1 or args.warmup < 0:
        p.error("--steps, --canvas-*, --max-tokens-multi and --workers must be positive, --warmup >= 0")
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
            holes = heldout.cut_holes(heldout.read_documents(path), seed=args.heldout_seed)
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
    for note in notes.values():
        print(f"note: heldout {note}", file=sys.stderr)

    available = {"diffusion": Diffusion(engine, args.steps, args.seed), "autoregressive": Autoregressive(engine)}
    decoders = [available[name] for name in args.decodings]
    budgets = {
        "single-line": Budget(args.canvas_single, args.canvas_single),
        "multi-line": Budget(args.canvas_multi, args.max_tokens_multi),
        "heldout": Budget(args.canvas_single, args.canvas_single),
    }
    results: dict[str, Any] = {}
    for name, items in chosen.items():
        if name == "heldout":
            per_set = run_heldout(items, decoders, budgets[name], args)
        else:
            per_set = run_humaneval(name, items, decoders, budgets[name], args)
        if len(per_set) == 2:
            per_set["comparison"] = compare(per_set["diffusion"], per_set["autoregressive"])
        results[name] = per_set

    print_tables(results)
    for note in notes.values():
        print(f"heldout: {note}")
    record = {
        **record_header(BENCHMARK, started, device_description(device)),
        "model": model_summary(engine),
        "model_load_s": load_s,
        "settings": {
            "sets": list(chosen), "decodings": args.decodings, "steps": args.steps, "seed": args.seed,
            "budgets": {k: asdict(v) for k, v in budgets.items()},
            "limits": {"single-line": args.limit_single, "multi-line": args.limit_multi, "heldout": args.limit_heldout},
            "subset": "first" if args.first else f"sample(seed={args.sample_seed})",
            "heldout_path": str(args.heldout or DEFAULT_HELDOUT), "heldout_seed": args.heldout_seed,
            "timeout_s": args.timeout, "workers": args.workers, "warmup": args.warmup,
            "postprocess": {"single-line": "first line + line break", "multi-line": "as is",
                            "heldout": "first line, compared stripped"},
            "diffusion_prompt_cache": "cleared before every completion",
        },
        "notes": notes,
        "results": results,
    }
    publish_record(record, args.out, BENCHMARK, device.type, started)
    return record


if __name__ == "__main__":
    main()
