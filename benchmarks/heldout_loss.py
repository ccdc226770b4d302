"""Held-out training losses of model directories, on the same batches for every model.

    python benchmarks/heldout_loss.py dg_lsp/models/default OTHER_MODEL_DIR

The training loop's own evaluation (`dg_lsp.train.objectives.losses`: next-token loss and
denoising loss) on fill-in-the-middle batches cut from the held-out corpus split, for each
prompt length in `--shapes` (prompt tokens : prompt tokens under the next-token loss).
The denoising loss is given twice: over every canvas position, as in training, and over
the re-noised positions only, which shows how much the decoder predicts from the prompt
(positions left clean can simply be copied). Every model sees the same batches and the same
noise, so differences are the models'. The record goes under `benchmarks/results/`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_records import device_description, publish_record, record_header  # noqa: E402

from dg_lsp.model.loader import load_model  # noqa: E402
from dg_lsp.prompt.decode import line_break_ids  # noqa: E402
from dg_lsp.train.corpus import iter_documents  # noqa: E402
from dg_lsp.train.data import FimSampler, TokenStream  # noqa: E402
from dg_lsp.train.objectives import losses  # noqa: E402

BENCHMARK = "heldout-loss"
DEFAULT_CORPUS = Path("/tmp/dg-corpus")


def mean_losses(model, sampler: FimSampler, batches: int, batch_size: int, ar_context: int,
                replaced_only: bool) -> tuple[float, float]:
    stream = sampler.batches(batch_size)
    generator = torch.Generator().manual_seed(0)
    sums = [0.0, 0.0]
    with torch.no_grad():
        for _ in range(batches):
            ar, diffusion = losses(model, next(stream), generator, ar_context=ar_context, replaced_only=replaced_only)
            sums[0] += ar.item()
            sums[1] += diffusion.item()
    return sums[0] / batches, sums[1] / batches


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", type=Path, nargs="+", help="model directories")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="folder with heldout.jsonl and tokenizer.json")
    p.add_argument("--shapes", default="128:64,256:128", help="prompt:ar_context pairs (default: 128:64,256:128)")
    p.add_argument("--batches", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    tokenizer = Tokenizer.from_file(str(args.corpus / "tokenizer.json"))
    texts = (d["text"] for d in iter_documents(args.corpus / "heldout.jsonl"))
    heldout = TokenStream.from_texts(texts, tokenizer, max_tokens=500_000)
    shapes = [tuple(int(x) for x in pair.split(":")) for pair in args.shapes.split(",")]
    results = []
    for model_dir in tqdm(args.models, desc="models", unit="model"):
        model = load_model(model_dir, device="cpu", dtype=torch.float32, with_tokenizer=False, progress=False).model
        model.eval()
        for prompt_len, ar_context in shapes:
            figures = {}
            for replaced_only in (False, True):
                # A fresh sampler with a fixed seed: the same batches for every model and shape pass.
                sampler = FimSampler(heldout, line_break_ids(tokenizer), prompt_len, (16, 32, 64), seed=1234)
                ar, diffusion = mean_losses(model, sampler, args.batches, args.batch_size, ar_context, replaced_only)
                figures["next_token"] = ar
                figures["denoising_re_noised" if replaced_only else "denoising_all"] = diffusion
            results.append({"model": str(model_dir), "prompt_len": prompt_len, "ar_context": ar_context, **figures})
            print(f"{model_dir}: prompt {prompt_len}, next-token over the last {ar_context}: "
                  f"{figures['next_token']:.3f}; denoising {figures['denoising_all']:.3f} "
                  f"(re-noised positions {figures['denoising_re_noised']:.3f})")
    record = {
        **record_header(BENCHMARK, started, device_description(torch.device("cpu"))),
        "settings": {"corpus": str(args.corpus), "batches": args.batches, "batch_size": args.batch_size,
                     "canvases": [16, 32, 64], "sampler_seed": 1234, "noise_seed": 0},
        "results": results,
    }
    publish_record(record, args.out, BENCHMARK, "cpu", started)
    return record


if __name__ == "__main__":
    main()
