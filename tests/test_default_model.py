"""The shipped default model: small enough, loads in dg-lsp and in transformers' reference,
and completes code."""

import json

import pytest
import torch

from dg_lsp.engine.engine import Engine
from dg_lsp.server.model_host import DEFAULT_MODEL_DIR

from .tiny_models import assert_decoder_matches_reference

pytestmark = pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "config.json").is_file(), reason="no default model shipped")
MAX_BYTES = 48 * 2**20


def test_layout_and_size():
    names = {p.name for p in DEFAULT_MODEL_DIR.iterdir()}
    assert {"config.json", "generation_config.json", "tokenizer.json", "model.safetensors", "README.md"} <= names
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in names)
    assert sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.iterdir()) <= MAX_BYTES
    options = json.loads((DEFAULT_MODEL_DIR / "dg_lsp.json").read_text())
    assert options["fim_order"] == "spm"
    assert options["cross_file_context"] is False  # trained without snippets of other files
    training_log = json.loads((DEFAULT_MODEL_DIR / "training-log.json").read_text())  # the pipeline's layout
    assert options["context_tokens"] == training_log["settings"]["prompt_len"]  # what the engine keeps prompts within


def test_loads_in_transformers_with_the_same_logits():
    pytest.importorskip("transformers")
    prompt = torch.randint(7, 8192, (1, 40), generator=torch.Generator().manual_seed(0))
    canvas = torch.randint(7, 8192, (1, 16), generator=torch.Generator().manual_seed(1))
    assert_decoder_matches_reference(DEFAULT_MODEL_DIR, prompt, canvas, tol=1e-3)


def test_completes_code_with_the_default_prompt_format():
    engine = Engine.from_directory(DEFAULT_MODEL_DIR, progress=False)
    assert engine.prompt_format.kind == "fim" and engine.prompt_format.fim_order == "spm"
    completion = engine.infill("def add(a, b):\n    return ", "\n", canvas_length=16, max_steps=8, seed=0)
    assert completion.text.strip()  # a trained model says something here
    assert completion.nfe <= 8


def test_the_server_uses_it_when_no_model_is_configured(monkeypatch):
    from dg_lsp.server.model_host import ModelHost
    from dg_lsp.server.settings import Settings

    monkeypatch.delenv("DG_LSP_MODEL", raising=False)
    host = ModelHost(lambda event: None)
    assert host.resolve_model_dir(Settings()) == DEFAULT_MODEL_DIR
    host.load(Settings(device="cpu"))
    assert host.wait_ready(120) and host.state == "ready", host.error
