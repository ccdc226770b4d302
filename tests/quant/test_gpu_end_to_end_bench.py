"""benchmarks/gpu_end_to_end.py runs end to end on a CPU with the tiny geometry and writes its record."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_end_to_end.py"
TINY = ["--geometry", "tiny", "--device", "cpu", "--steps", "2", "--canvas", "16", "--prompt-tokens", "8",
        "--ar-tokens", "3", "--repeats", "1", "--warmup", "0"]


def _load(name: str = "gpu_end_to_end"):
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_tiny_cpu_run_writes_a_record(tmp_path):
    pytest.importorskip("transformers")
    record = _load().main([*TINY, "--formats", "int4", "--out", str(tmp_path)])
    saved = json.loads(next(tmp_path.glob("gpu_end_to_end-cpu-*.json")).read_text())
    assert saved["complete"] and saved["results"].keys() == record["results"].keys() == {"int4", "reference_bf16"}
    ours = saved["results"]["int4"]
    assert ours["step_ms"] > 0 and ours["generate_2"]["tokens_per_s"] > 0
    assert ours["roofline"]["roofline_ms"] > 0 and ours["weights_gb"] > 0
    assert ours["generate_2"]["roofline_ms"] == pytest.approx(2 * ours["roofline"]["roofline_ms"])
    assert saved["results"]["reference_bf16"]["generate_2"]["tokens_per_s"] > 0
    # Both autoregressive paths, each with its roofline; the graph chain (emulated off CUDA)
    # decodes the eager path's tokens.
    for kind in ("autoregressive", "autoregressive_eager"):
        assert ours[kind]["tokens_per_s"] > 0 and ours[kind]["roofline"]["tokens_per_s"] > 0
    assert ours["autoregressive"]["tokens_equal_to_eager"] == 1.0
    assert ours["generate_2"]["over_autoregressive"] > 0 and ours["generate_2"]["over_autoregressive_eager"] > 0
    assert saved["ceilings"]["gb_per_s"] > 0 and saved["peaks"]["source"] == "measured"


def test_no_reference_runs_where_transformers_is_missing(tmp_path, monkeypatch):
    """transformers is imported for the reference only: --no-reference runs without it."""
    for name in [m for m in sys.modules if m == "transformers" or m.startswith("transformers.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` now fails
    monkeypatch.delitem(sys.modules, "presets", raising=False)
    record = _load("gpu_end_to_end_no_transformers").main([*TINY, "--formats", "int8", "--no-reference",
                                                           "--out", str(tmp_path)])
    assert record["complete"] and set(record["results"]) == {"int8"}


def test_a_run_cut_short_keeps_the_formats_it_finished(tmp_path):
    bench = _load("gpu_end_to_end_cut")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # what a time limit's SIGINT does in the middle of the reference

    bench.build_reference = killed
    with pytest.raises(KeyboardInterrupt):
        bench.main([*TINY, "--formats", "int8,int4", "--out", str(tmp_path)])
    saved = json.loads(next(tmp_path.glob("gpu_end_to_end-cpu-*.json")).read_text())
    assert not saved["complete"] and set(saved["results"]) == {"int8", "int4"}
