"""benchmarks/bench_records.py: a run rewrites its own record, never another run's."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_records  # noqa: E402


def test_a_run_rewrites_its_own_record_in_place(tmp_path):
    started = dt.datetime(2026, 12, 2, 18, 52, 55)
    first = bench_records.write_record({"cases": 1}, tmp_path, "quality", "cpu", started)
    again = bench_records.write_record({"cases": 2}, tmp_path, "quality", "cpu", started)
    assert again == first
    assert first.name == "quality-cpu-20261202-185255.json"
    assert json.loads(first.read_text())["cases"] == 2
    assert len(list(tmp_path.iterdir())) == 1


def test_a_second_run_started_in_the_same_second_gets_its_own_file(tmp_path, monkeypatch):
    started = dt.datetime(2026, 12, 2, 18, 52, 55)
    first = bench_records.write_record({"run": "control"}, tmp_path, "quality", "cpu", started)
    # Another process: it has claimed nothing yet, and finds the first run's file on disk.
    monkeypatch.setattr(bench_records, "_claimed_paths", {})
    second = bench_records.write_record({"run": "cap"}, tmp_path, "quality", "cpu", started)
    assert second.name == "quality-cpu-20261202-185255-2.json"
    assert json.loads(first.read_text()) == {"run": "control"}
    assert json.loads(second.read_text()) == {"run": "cap"}
    # The second run's later rewrites stay in its own file.
    assert bench_records.write_record({"run": "cap", "done": True}, tmp_path, "quality", "cpu", started) == second
    assert json.loads(first.read_text()) == {"run": "control"}
