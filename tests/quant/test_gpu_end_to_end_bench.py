"""benchmarks/gpu_end_to_end.py runs end to end on a CPU with the tiny geometry and writes its record."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_end_to_end.py"


def test_tiny_cpu_run_writes_a_record(tmp_path):
    pytest.importorskip("transformers")
    spec = importlib.util.spec_from_file_location("gpu_end_to_end", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    record = bench.main(["--geometry", "tiny", "--device", "cpu", "--formats", "int4", "--steps", "2",
                         "--canvas", "16", "--prompt-tokens", "8", "--ar-tokens", "3", "--repeats", "1",
                         "--warmup", "0", "--out", str(tmp_path)])
    saved = json.loads(next(tmp_path.glob("gpu_end_to_end-cpu-*.json")).read_text())
    assert saved["results"].keys() == record["results"].keys() == {"int4", "reference_bf16"}
    ours = saved["results"]["int4"]
    assert ours["step_ms"] > 0 and ours["generate_2"]["tokens_per_s"] > 0
    assert ours["autoregressive"]["tokens_per_s"] > 0 and ours["generate_2"]["over_autoregressive"] > 0
    assert ours["roofline"]["roofline_ms"] > 0 and ours["weights_gb"] > 0
    assert saved["results"]["reference_bf16"]["generate_2"]["tokens_per_s"] > 0
