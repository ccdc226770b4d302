import shutil
import sys
from pathlib import Path

import pytest

from ..tiny_models import build_constant_model

ROOT = Path(__file__).resolve().parents[2]
# Small and fast requests: the constant model answers a completion in ~10 ms with these.
FAST_SETTINGS = {"steps": 2, "invokedSteps": 2, "candidates": 2, "maxCanvas": 16}


@pytest.fixture(scope="session")
def editor_model(tmp_path_factory) -> Path:
    """A fake model that always predicts "x" (see build_constant_model): completions are runs of x."""
    pytest.importorskip("transformers")
    return build_constant_model(tmp_path_factory.mktemp("editor-model"))


@pytest.fixture(scope="session")
def server_cmd(editor_model) -> list[str]:
    return [sys.executable, "-m", "dg_lsp", "serve", "--model", str(editor_model), "--device", "cpu"]


def apply_text_edits(text: str, edits: list[dict]) -> str:
    """Apply LSP TextEdits (ASCII text, so UTF-16 columns are code points) to `text`."""
    lines = text.split("\n")

    def offset(pos):
        return sum(len(line) + 1 for line in lines[: pos["line"]]) + pos["character"]

    spans = sorted(((offset(e["range"]["start"]), offset(e["range"]["end"]), e["newText"]) for e in edits), reverse=True)
    for start, end, new in spans:
        text = text[:start] + new + text[end:]
    return text


def which_or_skip(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path
