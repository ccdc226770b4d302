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


def test_the_invoked_sweep_runs_over_floors_and_picks_the_most_right_characters(dense_dir, tmp_path, capsys):
    confidence = load()
    corpus = tmp_path / "heldout.jsonl"
    docs = [{"path": m.__file__, "language": "python", "text": Path(m.__file__).read_text()} for m in (textwrap, inspect)]
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    record = confidence.main(["--model", str(dense_dir), "--heldout", str(corpus), "--holes", "2", "--invoked",
                              "--no-drafts", "--out", str(tmp_path / "out")])
    assert record["settings"]["trigger"] == "invoked" and record["settings"]["steps"] == 32
    sweep = record["results"]["sweep"]
    assert [s["threshold"] for s in sweep] == list(confidence.INVOKED_THRESHOLDS)
    assert record["results"]["calibrated_threshold"] in confidence.INVOKED_THRESHOLDS
    assert set(record["results"]["variants"]) == {"model"}  # no final-step variant for invoked requests
    assert "calibrated invoked floor" in capsys.readouterr().out


def test_the_invoked_floor_is_the_smallest_with_the_most_right_characters():
    confidence = load()
    sweep = [{"threshold": t, "right_chars_per_request": c} for t, c in ((0.0, 0.5), (0.01, 1.5), (0.1, 1.5), (0.2, 1.0))]
    assert confidence.most_right_characters(sweep) == 0.01


def test_right_means_a_prefix_of_the_true_line():
    confidence = load()
    assert confidence.score(["return a"], "return a + b") == (True, True, 8, False)
    assert confidence.score(["return a + b"], "return a + b") == (True, True, 12, True)
    assert confidence.score(["return b"], "return a + b") == (True, False, 0, False)
    assert confidence.score([], "return a") == (False, False, 0, False)
    assert confidence.score(["  "], "return a") == (True, False, 0, False)
