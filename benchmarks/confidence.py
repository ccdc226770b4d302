"""Confidence sweep: how often shown completions are right at each `dgLsp.minConfidence`.

Line holes are cut from held-out code (`dg_lsp.evaluation.heldout`, the corpus's held-out
split: packages the model never trained on). Each hole becomes a document in the server's own
`DocumentStore` with the line's content removed and the cursor where it was; the server's
`CompletionService` plans the request, the engine generates it once (automatic trigger, the
server's steps), and for every threshold of the sweep the server's own gate and
post-processing (`CompletionService._shown_texts`) decide what would be shown. A shown
completion is right when it is a non-empty prefix of the line's true remainder.

Reported per threshold: the share of requests answered (something shown), the share of shown
completions that are right, and right characters per request (a gate that shows only
`return` is right often and helps little). The smallest threshold whose shown completions are
right at least `--target` (0.6) of the time, with at least `--min-answered` (0.25) of requests
answered, is the calibrated default; the record says whether one exists.

    python benchmarks/confidence.py                    # the default model, 150 holes
    python benchmarks/confidence.py --model DIR --holes 300
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
from dg_lsp.server.completions import CompletionService  # noqa: E402
from dg_lsp.server.documents import DocumentStore  # noqa: E402
from dg_lsp.server.model_host import ModelHost  # noqa: E402
from dg_lsp.server.settings import Settings  # noqa: E402
from dg_lsp.server.worker import ModelWorker  # noqa: E402

BENCHMARK = "confidence"
DEFAULT_MODEL_DIR = REPO / "dg_lsp" / "models" / "default"
THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
LANGUAGE_IDS = {"python": "python", "javascript": "javascript", "typescript": "typescript", "rust": "rust",
                "go": "go", "lua": "lua"}


def score(shown: list[str], expected: str) -> tuple[bool, bool, int]:
    """(answered, right, right characters) for the first shown completion."""
    if not shown:
        return False, False, 0
    text = shown[0]
    right = bool(text.strip()) and expected.startswith(text.rstrip("\n"))
    return True, right, len(text) if right else 0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--heldout", type=Path, default=Path("/tmp/dg-corpus/heldout.jsonl"))
    p.add_argument("--holes", type=int, default=150)
    p.add_argument("--steps", type=int, default=Settings().steps)
    p.add_argument("--seed", type=int, default=0)
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
    host = ModelHost(lambda event: None)
    host.engine, host.state = engine, "ready"
    documents = DocumentStore(SnippetRing())
    service = CompletionService(documents, host, ModelWorker())
    settings = Settings(steps=args.steps, seed=args.seed)
    docs = [d for d in heldout.read_documents(args.heldout) if d.get("language") in LANGUAGE_IDS]
    holes = heldout.cut_holes(docs, seed=args.seed)[: args.holes]

    outcomes = {t: [] for t in THRESHOLDS}
    times = []
    for index, hole in enumerate(tqdm(holes, desc="holes", unit="hole", file=sys.stderr)):
        uri = f"file:///heldout/{index}/{Path(hole.path).name}"
        text = hole.prefix + hole.suffix
        doc = documents.open(types.TextDocumentItem(uri=uri, language_id=LANGUAGE_IDS[hole.language], version=1,
                                                    text=text))
        offset = len(hole.prefix)
        t0 = time.perf_counter()
        plan = service.plan(doc, offset, settings)
        prompt = engine.prompts.build(plan.prefix, plan.suffix, plan.context, key=uri)
        generation = engine.generate(prompt, canvas_length=plan.canvas_length, max_steps=settings.steps,
                                     seed=settings.seed)
        times.append((time.perf_counter() - t0) * 1e3)
        for threshold in THRESHOLDS:
            shown = service._shown_texts(doc, plan, engine, generation, threshold, invoked=False)
            outcomes[threshold].append(score(shown, hole.hole))
        documents.close(uri)

    n = len(holes)
    sweep = []
    for threshold in THRESHOLDS:
        rows = outcomes[threshold]
        answered = sum(a for a, _, _ in rows)
        right = sum(r for _, r, _ in rows)
        sweep.append({"threshold": threshold, "answered_share": answered / n,
                      "right_share_of_shown": right / answered if answered else None,
                      "right_share_of_requests": right / n, "right_chars_per_request": sum(c for _, _, c in rows) / n})
    meets = [s for s in sweep if s["right_share_of_shown"] is not None and s["right_share_of_shown"] >= args.target
             and s["answered_share"] >= args.min_answered]
    calibrated = meets[0]["threshold"] if meets else None
    record = {
        **record_header(BENCHMARK, started, device_description(torch.device("cpu"))),
        "model": str(args.model),
        "settings": {"holes": n, "steps": args.steps, "seed": args.seed, "heldout": str(args.heldout),
                     "target_right_share": args.target, "min_answered_share": args.min_answered,
                     "path": "server plan + prompt builder + engine.generate + the server's gate and post-processing"},
        "results": {"sweep": sweep, "calibrated_threshold": calibrated, "ms_per_completion": latency_stats(times)},
    }
    print(f"{n} held-out line holes, {args.steps} steps; right = a non-empty prefix of the line's true remainder")
    print(f"{'minConfidence':>13} {'answered':>9} {'right/shown':>12} {'right/requests':>15} {'right chars/req':>16}")
    for s in sweep:
        shown = "-" if s["right_share_of_shown"] is None else f"{s['right_share_of_shown']:.1%}"
        print(f"{s['threshold']:>13.2f} {s['answered_share']:>9.1%} {shown:>12} {s['right_share_of_requests']:>15.1%} "
              f"{s['right_chars_per_request']:>16.2f}")
    print(f"calibrated minConfidence (right >= {args.target:.0%} of shown, >= {args.min_answered:.0%} answered): "
          f"{calibrated if calibrated is not None else 'none: no threshold meets both'}")
    publish_record(record, args.out, BENCHMARK, "cpu", started)
    return record


if __name__ == "__main__":
    main()
