"""benchmarks/new_position.py end to end on a tiny random model (plumbing: latency is not judged)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "new_position.py"
SOURCE = "".join(f"def f{i}(x):\n    if x > {i}:\n        return x\n    return {i}\n\n\n" for i in range(6))


@pytest.fixture(scope="module")
def new_position():
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("new_position_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_openers_are_spread_over_the_file_with_the_body_indentation(new_position):
    openers = new_position.opener_lines(SOURCE, 3)
    assert len(openers) == 3 and openers[0] == (0, "    ") and openers[1] == (12, "    ")  # every 4th of 12
    assert all(SOURCE.split("\n")[line].rstrip().endswith(":") for line, _ in openers)


def test_a_small_run_writes_a_record_and_leaves_the_buffer_as_it_was(new_position, dense_dir, tmp_path):
    source = tmp_path / "sample.py"
    source.write_text(SOURCE)
    record = new_position.main(["--model", str(dense_dir), "--file", str(source), "--trials", "3", "--warmup", "1",
                                "--out", str(tmp_path / "results")])
    results = record["results"]
    assert results["diffusion"]["n"] == results["autoregressive"]["n"] == 3
    assert results["latency_ratio_autoregressive_over_diffusion"] > 0
    [written] = (tmp_path / "results").glob("new-position-cpu-*.json")
    assert json.loads(written.read_text())["settings"]["trials"] == 3


def test_an_invoked_run_asks_as_the_user_who_invokes_completion(new_position, dense_dir, tmp_path, monkeypatch):
    """`--invoked`: the server's invoked request with its default settings (candidates and all)."""
    from dg_lsp.server.completions import CompletionService
    from dg_lsp.server.settings import Settings

    asked = []
    complete = CompletionService.complete
    monkeypatch.setattr(CompletionService, "complete",
                        lambda self, uri, position, invoked, settings: asked.append(invoked) or
                        complete(self, uri, position, invoked, settings))
    source = tmp_path / "sample.py"
    source.write_text(SOURCE)
    record = new_position.main(["--model", str(dense_dir), "--file", str(source), "--trials", "2", "--warmup", "1",
                                "--invoked", "--out", str(tmp_path / "results")])
    assert asked and all(asked)
    settings = record["settings"]
    assert settings["trigger"] == "invoked" and settings["candidates"] == Settings().candidates
    assert settings["steps"] == Settings().invokedSteps
    assert list((tmp_path / "results").glob("new-position-invoked-cpu-*.json"))


def test_each_trial_takes_its_new_line_out_again(new_position, dense_dir, tmp_path):
    import asyncio

    from dg_lsp.engine.engine import Engine
    from dg_lsp.server.settings import Settings

    sys.path.insert(0, str(SCRIPT.parent))
    from quality import ThroughServer

    loop = asyncio.new_event_loop()
    buffer = new_position.OneBuffer(ThroughServer("d", Engine.from_directory(dense_dir), loop), SOURCE,
                                     "file:///s.py")
    for line, indent in new_position.opener_lines(SOURCE, 2):
        buffer.complete_after(line, indent, Settings(steps=1))
        assert buffer.doc.text == SOURCE
    loop.close()
