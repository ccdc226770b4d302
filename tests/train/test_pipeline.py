"""`python -m dg_lsp.train.pipeline` end to end on the tiny preset, on the CPU: a first run
(corpus, tokenizer, training, sharded export) within its time budget, then a resumed run that
continues the step count, packs its output into a few bounded files (`--bundle`), runs the
quick check, and still loads in dg-lsp and in transformers."""

import gzip
import json
import shutil
import time
from pathlib import Path

import pytest
import torch

from dg_lsp.model.loader import INDEX_FILE, load_model
from dg_lsp.train import pipeline
from dg_lsp.train.bundle import BUNDLE, pack_directory, unpack_directory, unpack_tree

from ..tiny_models import assert_decoder_matches_reference

SHARD_MB = 1.1  # the test preset's 1.29 MB of weights: the 1 MiB embeddings, then the rest
STDLIB_MODULES = ["textwrap", "random", "bisect", "colorsys", "keyword", "heapq", "shlex", "fnmatch"]


def run_pipeline(out: Path, work: Path, sources: Path, minutes: float, *extra: str) -> float:
    started = time.monotonic()
    argv = [str(out), "--preset", "test", "--device", "cpu", "--minutes", str(minutes), "--shard-mb", str(SHARD_MB),
            "--sources", "stdlib", "--root", f"stdlib={sources}", "--heldout-fraction", "0.2",
            "--eval-every", "5", "--work-dir", str(work), "--tokenizer-bytes", "1000000", *extra]
    assert pipeline.main(argv) == 0
    return time.monotonic() - started


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stdlib")
    for name in STDLIB_MODULES:
        module = __import__(name)
        shutil.copy(module.__file__, folder)
    return folder


@pytest.fixture(scope="module")
def first_run(sources, tmp_path_factory):
    out = tmp_path_factory.mktemp("out1")
    seconds = run_pipeline(out, tmp_path_factory.mktemp("work1"), sources, 0.15)
    return out, seconds


def test_first_run_stays_in_budget_and_exports_a_sharded_model(first_run):
    out, seconds = first_run
    assert seconds < 0.15 * 60 + 2.0
    state = json.loads((out / "run-state.json").read_text())
    assert state["step"] > 0 and state["runs"][0]["end_step"] == state["step"]
    model = out / "model"
    shards = sorted(model.glob("model-*-of-*.safetensors"))
    assert len(shards) >= 2 and (model / INDEX_FILE).is_file() and not (model / "model.safetensors").exists()
    assert all(p.stat().st_size <= SHARD_MB * 2**20 for p in shards)
    assert {"README.md", "training-log.json", "corpus-manifest.json", "tokenizer.json", "dg_lsp.json"} <= {
        p.name for p in model.iterdir()}
    assert json.loads((model / "training-log.json").read_text())["step"] == state["step"]
    loaded = load_model(model, progress=False)
    assert loaded.config.vocab_size == 8192 and loaded.tokenizer is not None


def test_resumed_run_continues_bundles_checks_and_loads_in_transformers(first_run, sources, tmp_path):
    first_out, _ = first_run
    first_state = json.loads((first_out / "run-state.json").read_text())
    humaneval = tmp_path / "humaneval"
    humaneval.mkdir()
    task = {"entry_point": "f", "prompt": "def f(x):\n", "suffix": "", "canonical_solution": "    return x\n",
            "test": "def check(f):\n    assert f(1) == 1\n"}
    tasks = [{"task_id": f"T/{i}", **task} for i in range(2)]
    with gzip.open(humaneval / "HumanEval-SingleLineInfilling.jsonl.gz", "wt") as f:
        f.write("".join(json.dumps(t) + "\n" for t in tasks))

    out = tmp_path / "out2"
    run_pipeline(out, tmp_path / "work2", sources, 0.15, "--resume-from", str(first_out), "--bundle",
                 "--eval-samples", "2", "--humaneval-dir", str(humaneval))

    # `--bundle` with small shards keeps the output to a few files, none deep and none large.
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(len(p.relative_to(out).parts) <= 3 for p in files)
    assert all(p.stat().st_size <= 16 * 2**20 for p in files)
    model_files = {p.name for p in (out / "model").iterdir()}
    assert model_files == {BUNDLE, *(p.name for p in (out / "model").glob("*.safetensors"))}

    state = json.loads((out / "run-state.json").read_text())
    assert state["step"] > first_state["step"] and state["restart_step"] == first_state["step"]
    assert state["history"][: len(first_state["history"])] == first_state["history"]
    assert [r["start_step"] for r in state["runs"]] == [0, first_state["step"]]
    assert state["settings"] == first_state["settings"]  # the resumed run keeps the first run's settings
    quality = json.loads((out / "quality.json").read_text())
    assert quality["asked"] == 2 and quality["n"] >= 1 and 0.0 <= quality["pass_at_1"] <= 1.0

    unpacked = unpack_tree(out, tmp_path / "returned")
    model = unpacked / "model"
    assert (model / INDEX_FILE).is_file() and (model / "tokenizer.json").read_text() == (
        first_out / "model" / "tokenizer.json").read_text()  # the resumed run kept the first run's tokenizer
    loaded = load_model(model, progress=False)

    # The shipped layout: the same weights in one model.safetensors.
    joined = unpack_tree(out, tmp_path / "joined", join_shards=True) / "model"
    assert sorted(p.name for p in joined.glob("*.safetensors")) == ["model.safetensors"]
    assert not (joined / INDEX_FILE).exists()
    joined_state = load_model(joined, progress=False).model.state_dict()
    for name, tensor in loaded.model.state_dict().items():
        torch.testing.assert_close(joined_state[name], tensor, rtol=0, atol=0)

    pytest.importorskip("transformers")
    prompt = torch.randint(7, 512, (1, 30))
    canvas = torch.randint(7, 512, (1, 16))
    assert_decoder_matches_reference(model, prompt, canvas, tol=1e-4)  # sharded, read by transformers


def test_bundle_round_trip_and_refuses_paths(tmp_path):
    (tmp_path / "config.json").write_text('{"a": 1}')
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    pack_directory(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [BUNDLE, "model.safetensors"]
    unpack_directory(tmp_path)
    assert (tmp_path / "config.json").read_text() == '{"a": 1}' and not (tmp_path / BUNDLE).exists()

    (tmp_path / BUNDLE).write_text(json.dumps({"files": {"../evil.json": "{}"}}))
    with pytest.raises(ValueError, match="refusing"):
        unpack_directory(tmp_path)
    assert not (tmp_path.parent / "evil.json").exists()
