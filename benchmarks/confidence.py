"""Confidence sweep: how often shown completions are right at each `dgLsp.minConfidence`.

Line holes are cut from held-out code (`dg_lsp.evaluation.heldout`, the corpus's held-out
split: packages the model never trained on). Each hole becomes a document in the server's own
`DocumentStore` with the line's content removed and the cursor where it was; the server's
`CompletionService` plans the request, the engine generates it once (automatic trigger, the
server's steps), and for every threshold of the sweep the server's own gate and
post-processing (`CompletionService._shown_texts`) decide what would be shown. A shown
completion is right when it is a non-empty prefix of the line's true remainder.

Variants: "model" (each token's confidence from the causal encoder's pass over the canvas,
as the engine gates: `dg_lsp.engine.verify`), "model+draft" (the same, the canvas seeded with
the prompt-lookup draft from the open documents, as the server runs) and "model, final-step
confidence" (the final denoising step's own probabilities, the gate before verification).

Reported per threshold: the share of requests answered (something shown), the share of shown
completions that are right, and right characters per request (a gate that shows only
`return` is right often and helps little). The smallest threshold whose shown completions are
right at least `--target` (0.6) of the time, with at least `--min-answered` (0.25) of requests
answered, is the calibrated default; the record says whether one exists.

    python benchmarks/confidence.py                    # the default model, 150 holes
    python benchmarks/confidence.py --model DIR --holes 300
    python benchmarks/confidence.py --holes 2000 --hole-seed 1 --holes-per-file 2   # other lines: a second sample
    python benchmarks/confidence.py --holes 600 --inside [--no-heal]   # cursors inside lines (token healing's A/B)
    python benchmarks/confidence.py --holes 600 --invoked   # the invoked floor (dgLsp.minConfidenceInvoked)

With `--invoked` the requests are invoked ones (the server's `invokedSteps`; the canvas seeded
with the encoder's greedy continuation unless a trusted draft seeds it; the first offered
completion is the part above the floor, or the whole candidate when none is) and the sweep
runs over low floors; the calibrated floor is the one whose first offered completions bring the
most right characters per request. Each sweep row also gives the share of requests whose first
offered completion is the whole rest of the line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_records import device_description, latency_stats, publish_record, record_header  # noqa: E402

from lsprotocol import types  # noqa: E402

from dg_lsp.context.ring import SnippetRing  # noqa: E402
from dg_lsp.engine.engine import Engine  # noqa: E402
from dg_lsp.evaluation import heldout  # noqa: E402
from dg_lsp.server.completions import CompletionService, canvas_seed  # noqa: E402
from dg_lsp.server.documents import DocumentStore  # noqa: E402
from dg_lsp.server.model_host import ModelHost  # noqa: E402
from dg_lsp.server.settings import Settings  # noqa: E402
from dg_lsp.server.worker import ModelWorker  # noqa: E402

BENCHMARK = "confidence"
DEFAULT_MODEL_DIR = REPO / "dg_lsp" / "models" / "default"
THRESHOLDS = (0.0, 0.1, 0.15, 0.175, 0.2, 0.225, 0.25, 0.275, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
# An invoked request's gate is a floor: below it the first offered completion is cut (see --invoked).
INVOKED_THRESHOLDS = (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25)
FINAL_STEP = "model, final-step confidence"
LANGUAGE_IDS = {"python": "python", "javascript": "javascript", "typescript": "typescript", "rust": "rust",
                "go": "go", "lua": "lua"}


def score(shown: list[str], expected: str) -> tuple[bool, bool, int, bool]:
    """(answered, right, right characters, whole line) for the first shown completion; whole
    line: it is the line's true remainder, all of it."""
    if not shown:
        return False, False, 0, False
    text = shown[0]
    right = bool(text.strip()) and expected.startswith(text.rstrip("\n"))
    return True, right, len(text) if right else 0, right and text.strip() == expected.strip()


def siblings(docs: list[dict], hole, count: int) -> list[dict]:
    """Up to `count` other files of the hole's package (as an editor has the project open)."""
    if count <= 0:
        return []
    package = next((d.get("package") for d in docs if d["path"] == hole.path), None)
    return [d for d in docs if d.get("package") == package and d["path"] != hole.path][:count]


def open_other(documents: DocumentStore, doc: dict, index: int) -> str:
    uri = f"file:///heldout/{index}/other/{Path(doc['path']).name}"
    documents.open(types.TextDocumentItem(uri=uri, language_id=LANGUAGE_IDS[doc["language"]], version=1,
                                          text=doc["text"][:50_000]))
    return uri


def sweep_of(outcomes: dict[float, list], n: int) -> list[dict]:
    sweep = []
    for threshold, rows in outcomes.items():
        answered = sum(a for a, _, _, _ in rows)
        right = sum(r for _, r, _, _ in rows)
        sweep.append({"threshold": threshold, "answered_share": answered / n,
                      "right_share_of_shown": right / answered if answered else None,
                      "right_share_of_requests": right / n,
                      "right_chars_per_request": sum(c for _, _, c, _ in rows) / n,
                      "whole_line_share_of_requests": sum(w for _, _, _, w in rows) / n})
    return sweep


def calibrate(sweep: list[dict], target: float, min_answered: float) -> float | None:
    """The smallest threshold whose shown completions are right >= target with >= min_answered answered
    (min_answered 0: the smallest that is right often enough, however rarely it answers)."""
    meets = [s for s in sweep if s["right_share_of_shown"] is not None and s["right_share_of_shown"] >= target
             and s["answered_share"] >= min_answered and s["answered_share"] > 0]
    return meets[0]["threshold"] if meets else None


def most_right_characters(sweep: list[dict]) -> float:
    """An invoked request's floor: the threshold whose first offered completions bring the most
    right characters per request (the smallest of equals). The user asked, so something is
    offered whenever the model has it; the floor only cuts the tail the model doubts."""
    best = max(s["right_chars_per_request"] for s in sweep)
    return min(s["threshold"] for s in sweep if s["right_chars_per_request"] == best)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--heldout", type=Path, default=Path("/tmp/dg-corpus/heldout.jsonl"))
    p.add_argument("--holes", type=int, default=150)
    p.add_argument("--steps", type=int, default=Settings().steps)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hole-seed", type=int, default=0, help="seed of the hole positions (another seed: other lines)")
    p.add_argument("--holes-per-file", type=int, default=1, help="line holes cut from each held-out file")
    p.add_argument("--inside", action="store_true",
                   help="cursor at a random character inside each line's code (as while typing), not after its indentation")
    p.add_argument("--drafts", action=argparse.BooleanOptionalAction, default=True,
                   help="also run each request seeded with its prompt-lookup draft from the open documents")
    p.add_argument("--heal", action=argparse.BooleanOptionalAction, default=True,
                   help="token healing of the prompt's last prefix token (default: on, as the server)")
    p.add_argument("--other-documents", type=int, default=0,
                   help="held-out files (not the hole's) kept open beside it, as an editor has")
    p.add_argument("--invoked", action="store_true",
                   help="invoked requests (the server's invokedSteps, its invoked gate: the confident part first, "
                        "then the whole candidate), swept over low floors; calibrated: the most right characters")
    p.add_argument("--target", type=float, default=0.6)
    p.add_argument("--min-answered", type=float, default=0.25)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)
    if not args.heldout.is_file():
        raise SystemExit(f"no held-out corpus at {args.heldout}: build one with `python -m dg_lsp.train.corpus DIR`")
    started = dt.datetime.now(dt.timezone.utc)
    import torch

    torch.set_num_threads(1)  # as the server runs on a 2-core machine
    engine = Engine.from_directory(args.model, progress=False)
    engine.heal_tokens = args.heal
    host = ModelHost(lambda event: None)
    host.engine, host.state = engine, "ready"
    documents = DocumentStore(SnippetRing())
    service = CompletionService(documents, host, ModelWorker())
    steps = Settings().invokedSteps if args.invoked else args.steps
    settings = Settings(steps=steps, seed=args.seed)
    thresholds = INVOKED_THRESHOLDS if args.invoked else THRESHOLDS
    docs = [d for d in heldout.read_documents(args.heldout) if d.get("language") in LANGUAGE_IDS]
    holes = heldout.cut_holes(docs, seed=args.hole_seed, per_document=args.holes_per_file,
                              inside=args.inside)[: args.holes]

    variants = ("model", "model+draft") if args.drafts else ("model",)
    if not args.invoked:  # the final step's own probabilities: the old gate, compared at line starts
        variants += (FINAL_STEP,)
    outcomes = {v: {t: [] for t in thresholds} for v in variants}
    times, draft_times, draft_found, draft_right, trusted_right = [], [], [], [], []
    for index, hole in enumerate(tqdm(holes, desc="holes", unit="hole", file=sys.stderr)):
        uri = f"file:///heldout/{index}/{Path(hole.path).name}"
        text = hole.prefix + hole.suffix
        doc = documents.open(types.TextDocumentItem(uri=uri, language_id=LANGUAGE_IDS[hole.language], version=1,
                                                    text=text))
        offset = len(hole.prefix)
        others = [open_other(documents, d, index) for d in siblings(docs, hole, args.other_documents)]
        t0 = time.perf_counter()
        plan = service.plan(doc, offset, settings, invoked=args.invoked)
        prompt = engine.prompts.build(plan.prefix, plan.suffix, plan.context, key=uri)
        # Seeded as the server seeds it: invoked requests start from the encoder's greedy line.
        generation = engine.generate(prompt, canvas_length=plan.canvas_length, max_steps=settings.steps,
                                     seed=settings.seed, one_line=plan.mode == "line",
                                     **canvas_seed(plan, None, engine, args.invoked))
        times.append((time.perf_counter() - t0) * 1e3)
        generations = {"model": generation}
        if FINAL_STEP in variants:  # the same request, gated by the final step's own probabilities
            engine.verify_with_encoder = False
            generations[FINAL_STEP] = engine.generate(prompt, canvas_length=plan.canvas_length,
                                                      max_steps=settings.steps, seed=settings.seed)
            engine.verify_with_encoder = True
        trusted = None
        if args.drafts:  # the same request seeded with the prompt-lookup draft, when there is one
            t0 = time.perf_counter()
            draft = service.draft(doc, offset, plan, engine)
            draft_found.append(draft is not None)
            if draft is not None:
                draft_right.append(score([draft.text], hole.hole)[1])
                if draft.trusted:
                    trusted_right.append(draft_right[-1])
                generation = engine.generate(prompt, canvas_length=plan.canvas_length, max_steps=settings.steps,
                                             seed=settings.seed, one_line=plan.mode == "line",
                                             **canvas_seed(plan, draft, engine, args.invoked))
                trusted = draft.text if draft.trusted else None
            draft_times.append((time.perf_counter() - t0) * 1e3)
            generations["model+draft"] = generation
        for variant, generation in generations.items():
            for threshold in thresholds:
                shown = service._shown_texts(doc, plan, engine, generation, threshold, invoked=args.invoked,
                                             trusted_draft=trusted if variant == "model+draft" else None)
                outcomes[variant][threshold].append(score(shown, hole.hole))
        for other in [uri, *others]:
            documents.close(other)

    n = len(holes)
    sweeps = {variant: sweep_of(outcomes[variant], n) for variant in variants}
    calibrated = {variant: calibrate(sweep, args.target, args.min_answered) for variant, sweep in sweeps.items()}
    right_enough = {variant: calibrate(sweep, args.target, 0.0) for variant, sweep in sweeps.items()}
    if args.invoked:  # no share to reach: the floor that brings the most right characters
        calibrated = {variant: most_right_characters(sweep) for variant, sweep in sweeps.items()}
    drafts = None
    if args.drafts:
        drafts = {"found_share": sum(draft_found) / n,
                  "draft_alone_right_share_of_found": sum(draft_right) / len(draft_right) if draft_right else None,
                  "trusted_share": len(trusted_right) / n,
                  "trusted_draft_right_share": sum(trusted_right) / len(trusted_right) if trusted_right else None,
                  "ms_per_request_with_draft": latency_stats(draft_times)}
    record = {
        **record_header(BENCHMARK, started, device_description(torch.device("cpu"))),
        "model": str(args.model),
        "settings": {"holes": n, "steps": steps, "trigger": "invoked" if args.invoked else "automatic", "seed": args.seed, "heldout": str(args.heldout),
                     "hole_seed": args.hole_seed, "holes_per_file": args.holes_per_file, "token_healing": args.heal,
                     "cursor": "inside the line" if args.inside else "after the indentation",
                     "other_documents": args.other_documents,
                     "target_right_share": args.target, "min_answered_share": args.min_answered,
                     "path": "server plan + prompt builder + engine.generate + the server's gate and post-processing"},
        "results": {"sweep": sweeps["model"], "calibrated_threshold": calibrated["model"],
                    "variants": {v: {"sweep": sweeps[v], "calibrated_threshold": calibrated[v],
                                     "right_enough_threshold": right_enough[v]} for v in variants},
                    "drafts": drafts, "ms_per_completion": latency_stats(times)},
    }
    print(f"{n} held-out line holes, {'invoked' if args.invoked else 'automatic'}, {steps} steps; "
          "right = a non-empty prefix of the line's true remainder; whole = all of it")
    for variant in variants:
        print(f"\n{variant}:")
        print(f"{'minConfidence':>13} {'answered':>9} {'right/shown':>12} {'right/requests':>15} "
              f"{'right chars/req':>16} {'whole/requests':>15}")
        for s in sweeps[variant]:
            shown = "-" if s["right_share_of_shown"] is None else f"{s['right_share_of_shown']:.1%}"
            print(f"{s['threshold']:>13.3f} {s['answered_share']:>9.1%} {shown:>12} "
                  f"{s['right_share_of_requests']:>15.1%} {s['right_chars_per_request']:>16.2f} "
                  f"{s['whole_line_share_of_requests']:>15.1%}")
        found = calibrated[variant]
        if args.invoked:
            print(f"calibrated invoked floor (the most right characters per request): {found}")
            continue
        print(f"calibrated minConfidence (right >= {args.target:.0%} of shown, >= {args.min_answered:.0%} answered): "
              f"{found if found is not None else 'none: no threshold meets both'}; right >= {args.target:.0%} "
              f"however rarely answered: {right_enough[variant]}")
    if drafts:
        alone = drafts["draft_alone_right_share_of_found"]
        trusted = drafts["trusted_draft_right_share"]
        print(f"drafts found for {drafts['found_share']:.1%} of requests; the draft alone is right for "
              f"{'-' if alone is None else f'{alone:.1%}'} of those; trusted (shown as they are) for "
              f"{drafts['trusted_share']:.1%} of requests, right for {'-' if trusted is None else f'{trusted:.1%}'}")
    publish_record(record, args.out, BENCHMARK, "cpu", started)
    return record


if __name__ == "__main__":
    main()
