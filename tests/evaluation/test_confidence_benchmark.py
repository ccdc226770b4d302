"""benchmarks/confidence.py end to end on a tiny random model: the sweep's plumbing (a random
model is right by accident at most), and scoring."""

import importlib.util
import inspect
import json
import sys
import textwrap
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "confidence.py"


def load():
    spec = importlib.util.spec_from_file_location("confidence_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sweep_writes_a_record(dense_dir, tmp_path, capsys):
    confidence = load()
    corpus = tmp_path / "heldout.jsonl"
    docs = [{"path": m.__file__, "language": "python", "text": Path(m.__file__).read_text()} for m in (textwrap, inspect)]
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    record = confidence.main(["--model", str(dense_dir), "--heldout", str(corpus), "--holes", "2", "--steps", "2",
                              "--out", str(tmp_path / "out")])
    sweep = record["results"]["sweep"]
    assert [s["threshold"] for s in sweep] == list(confidence.THRESHOLDS)
    answered = [s["answered_share"] for s in sweep]
    assert all(0.0 <= a <= 1.0 for a in answered) and answered[-1] <= answered[0]
    assert list((tmp_path / "out").glob("confidence-cpu-*.json"))
    assert "calibrated minConfidence" in capsys.readouterr().out


def test_right_means_a_prefix_of_the_true_line():
    confidence = load()
    assert confidence.score(["return a"], "return a + b") == (True, True, 8)
    assert confidence.score(["return b"], "return a + b") == (True, False, 0)
    assert confidence.score([], "return a") == (False, False, 0)
    assert confidence.score(["  "], "return a") == (True, False, 0)
