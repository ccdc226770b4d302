"""Weight memory of the Dream-family checkpoints in bf16 / int8 / int4 / fp8, from their shapes.

    python benchmarks/dream_memory.py [--model dream-7b|open-dcoder-0.5b|DIR] [--group-size 128]

No weights are read: the model is built on the meta device from the published geometry
(`dg_lsp.model.dream_memory`; or from a checkpoint directory's config.json) and each parameter
counted as `dg-lsp quantize` stores it. Prints a table and writes a JSON record under
`benchmarks/results/`. Weights only: activations, caches and the CUDA context come on top.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_records import publish_record, record_header  # noqa: E402

from dg_lsp.model.dream_memory import DREAM_7B, OPEN_DCODER_05B, memory_table  # noqa: E402

BENCHMARK = "dream-memory"
GEOMETRIES = {"dream-7b": DREAM_7B, "open-dcoder-0.5b": OPEN_DCODER_05B}
NAMES = {"dream-7b": "Dream-Coder-v0-7B / DiffuCoder-7B / DreamOn-v0-7B (Qwen2.5-7B geometry)",
         "open-dcoder-0.5b": "Open-dCoder-0.5B (Qwen2.5-Coder-0.5B geometry)"}


def _config_for(model: str):
    if model in GEOMETRIES:
        return GEOMETRIES[model], NAMES[model]
    from dg_lsp.model.dream_loader import read_dream_config, read_optional_tokenizer

    directory = Path(model).expanduser()
    return read_dream_config(directory, *read_optional_tokenizer(directory)), str(directory)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", help=f"{' | '.join(GEOMETRIES)} | a checkpoint directory "
                   "(repeatable; default: both geometries)")
    p.add_argument("--group-size", type=int, default=128, help="int4 group size (dg-lsp quantize's default)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = p.parse_args(argv)
    started = dt.datetime.now()
    models = {}
    for model in args.model or list(GEOMETRIES):
        config, name = _config_for(model)
        rows = memory_table(config, args.group_size)
        models[model] = {"name": name, "geometry": {k: getattr(config, k) for k in (
            "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "head_dim", "tie_word_embeddings")}, "formats": [r.as_dict() for r in rows]}
        print(f"\n{name}: {rows[0].parameters / 1e9:.2f} B parameters")
        print(f"{'format':>6} {'GiB':>7} {'GB':>7} {'quantized':>10} {'scales MiB':>11} {'bf16 kept GiB':>14}")
        for r in rows:
            print(f"{r.format:>6} {r.total_bytes / 2**30:>7.2f} {r.total_bytes / 1e9:>7.2f} "
                  f"{r.quantized_parameters / r.parameters:>10.1%} {r.scale_bytes / 2**20:>11.1f} "
                  f"{r.kept_bytes / 2**30:>14.2f}")
    record = {
        **record_header(BENCHMARK, started, {"kind": "none", "name": "computed from shapes; no device used"}),
        "settings": {"group_size": args.group_size, "kept_dtype": "bfloat16",
                     "scope": "weights only (no activations, caches or CUDA context)"},
        "results": models,
    }
    publish_record(record, args.out, BENCHMARK, "shapes", started)
    return record


if __name__ == "__main__":
    main()
