"""The weight-memory table: computed from shapes, it must equal the bytes `dg-lsp quantize` writes."""

import json

import pytest
import torch

from dg_lsp.model.dream_memory import DREAM_7B, memory_table, weight_memory
from dg_lsp.model.loader import load_model
from dg_lsp.model.quantize import quantize_checkpoint

from .tiny_dream import build_tiny_dream

pytest.importorskip("transformers")


@pytest.mark.parametrize("variant", ["dream", "open_dcoder"])
@pytest.mark.parametrize("fmt", ["int8", "int4", "fp8"])
def test_computed_bytes_equal_the_written_checkpoint(tmp_path, variant, fmt):
    source = build_tiny_dream(tmp_path / "src", variant=variant)
    config = load_model(source, progress=False).config
    report = quantize_checkpoint(source, tmp_path / "out", fmt, group_size=32, progress=False)
    computed = weight_memory(config, fmt, group_size=32, kept_dtype=torch.float32)  # the tiny model is float32
    assert computed.total_bytes == report.bytes_out
    assert weight_memory(config, "bf16", kept_dtype=torch.float32).total_bytes == report.bytes_in


def test_7b_table_is_ordered_and_sized_like_its_geometry():
    rows = {r.format: r for r in memory_table(DREAM_7B)}
    assert 7.5e9 < rows["bf16"].parameters < 7.7e9  # Qwen2.5-7B: 7.61 B
    assert rows["bf16"].total_bytes == 2 * rows["bf16"].parameters
    assert rows["int4"].total_bytes < rows["int8"].total_bytes == rows["fp8"].total_bytes < rows["bf16"].total_bytes
    # Embedding and untied LM head (2 x 152064 x 3584) stay bf16 in every format.
    assert rows["int4"].kept_bytes == rows["int8"].kept_bytes > 2 * 152_064 * 3584 * 2
    assert rows["int4"].scale_bytes == rows["int4"].quantized_parameters // 128 * 4


def test_benchmark_writes_a_record(tmp_path, capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import dream_memory

    record = dream_memory.main(["--model", "dream-7b", "--out", str(tmp_path)])
    written = json.loads(next(tmp_path.glob("dream-memory-*.json")).read_text())
    assert written["results"] == record["results"]
    formats = [f["format"] for f in written["results"]["dream-7b"]["formats"]]
    assert formats == ["bf16", "int8", "int4", "fp8"]
    assert "int4" in capsys.readouterr().out


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown format"):
        weight_memory(DREAM_7B, "int3")
