"""benchmarks/quality.py end to end on a tiny random model (plumbing only: pass@1 is 0)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "quality.py"


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("quality_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_a_line_hole_is_right_only_when_shown_text_starts_its_true_rest(quality):
    assert quality.score_line([], "return x") == (False, False, 0)
    assert quality.score_line(["return"], "return x") == (True, True, 6)
    assert quality.score_line(["return y"], "return x") == (True, False, 0)
    assert quality.score_line(["  "], "return x") == (True, False, 0)


def test_a_missing_model_is_a_clear_error(quality, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        quality.parse_args(["--model", str(tmp_path / "none")])
    assert exit_.value.code == 2 and "no model at" in capsys.readouterr().err


@pytest.mark.usefixtures("humaneval_data")  # skips without the shared data, fails when CI is set
def test_a_small_run_writes_a_record(quality, dense_dir, tmp_path, capsys):
    corpus = tmp_path / "heldout.jsonl"
    corpus.write_text(json.dumps({"text": "def f(x):\n    return x * 2 + 1\n", "language": "python", "path": "f.py"}) + "\n")
    record = quality.main(["--model", str(dense_dir), "--limit", "2", "--sets", "single-line,heldout",
                           "--heldout", str(corpus), "--steps", "2", "--auto-steps", "2", "--warmup", "0",
                           "--out", str(tmp_path / "results")])
    single = record["results"]["single-line"]
    assert single["diffusion"]["n"] == single["autoregressive"]["n"] == 2
    assert 0.0 <= single["diffusion"]["answered_share"] <= 1.0 and single["autoregressive"]["ms_per_request_median"] > 0
    assert set(single["comparison"]) == {"quality_gap_points", "latency_ratio"}
    for figures in (single["diffusion"], single["autoregressive"]):
        assert figures["passed_beyond_empty"] <= figures["passed"]
        assert 0 <= figures["empty_line_passes"] <= figures["n"]
    held = record["results"]["heldout"]["diffusion"]
    assert held["n"] == 1 and held["right_share_of_requests"] <= held["answered_share"]
    assert record["model"]["parameters"] > 0 and record["settings"]["humaneval_request"]["steps"] == 2
    [written] = (tmp_path / "results").glob("quality-cpu-*.json")
    assert json.loads(written.read_text())["results"] == json.loads(json.dumps(record["results"]))
    out = capsys.readouterr().out
    assert "| set | decoding |" in out and "beyond an empty line's" in out and json.loads(out.strip().splitlines()[-1])["benchmark"] == "quality"
