"""benchmarks/kernels.py runs its CPU smoke path (tiny sizes, kernels interpreted) and keeps a
record of every finished case, so a time limit loses only the case it interrupts."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "kernels.py"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[name] = bench  # its dataclasses look their module up while being defined
    spec.loader.exec_module(bench)
    return bench


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
def test_smoke_run_measures_the_new_cases_against_their_floors(tmp_path):
    # A fresh interpreter with TRITON_INTERPRET=1: on a GPU machine this process has compiled kernels.
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--only", "grouped_quant_matmul", "--only", "lm_head",
                             "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = json.loads(next(tmp_path.glob("kernels-cpu-*.json")).read_text())
    assert saved["complete"] and json.loads(result.stdout.splitlines()[-1])["cases"] == saved["cases"]
    families = {row["family"] for row in saved["cases"]}
    assert families == {"grouped_quant_matmul", "lm_head"}
    for row in saved["cases"]:
        assert row["best"] is not None and row["floor_ms"] > 0 and row["kernel_ms"] > 0, row
        assert all("error" not in v for v in row["variants"].values()), row
    grouped = [r for r in saved["cases"] if r["family"] == "grouped_quant_matmul"]
    assert {r["case"].split()[0] for r in grouped} == {"int8", "int4", "fp8"}
    assert all(r["check"]["rel_err"] < 1e-5 for r in grouped)  # the kernel against its torch twin
    assert saved["ceilings"]["gb_per_s"] > 0


def test_a_run_cut_short_keeps_the_cases_it_finished(tmp_path):
    bench = _load("kernels_bench_cut")
    finished = []
    real = bench.run_case

    def run_case(case, ceil, device):
        if len(finished) == 1:
            raise KeyboardInterrupt  # what a time limit's SIGINT does in the middle of a case
        finished.append(case.name)
        return real(case, ceil, device)

    bench.run_case = run_case
    with pytest.raises(KeyboardInterrupt):  # the LM head's cases are plain torch: no kernel to interpret
        bench.main(["--smoke", "--only", "lm_head", "--out", str(tmp_path)])
    saved = json.loads(next(tmp_path.glob("kernels-cpu-*.json")).read_text())
    assert not saved["complete"] and [row["case"] for row in saved["cases"]] == finished
