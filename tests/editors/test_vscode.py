"""The VS Code extension (editors/vscode): it compiles with tsc, its logic passes node's test
runner (with the `vscode` module mocked), its settings mirror the server's schema, a
vscode-jsonrpc client built from its own modules drives the real server, and it packages.

Needs node and `npm ci` in editors/vscode (the README's test command does that); skips
otherwise, except in CI, where a missing `node_modules` fails (see tests/_ci.py).
"""

import json
import os
import re
import subprocess
import zipfile

import pytest

from dg_lsp.server.settings import schema

from .._ci import skip_or_fail
from .conftest import FAST_SETTINGS, ROOT, apply_text_edits, which_or_skip

EXT = ROOT / "editors" / "vscode"
PACKAGE = json.loads((EXT / "package.json").read_text())
SAMPLE = "def add(a, b):\n    total = a + b\n    return total\n\n\nresult = \n"


def node_tool(path: str) -> list[str]:
    node = which_or_skip("node")
    if not (EXT / "node_modules" / path).is_file():
        skip_or_fail("editors/vscode/node_modules is missing: run `npm ci` in editors/vscode")
    return [node, str(EXT / "node_modules" / path)]


def run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=EXT, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def compiled():
    """`tsc -p .` into editors/vscode/out."""
    run(node_tool("typescript/bin/tsc") + ["-p", "."], timeout=120)
    return EXT / "out"


def test_extension_compiles(compiled):
    for module in ("extension", "commands", "settings", "statusBar", "protocol"):
        assert (compiled / "src" / f"{module}.js").is_file()
    assert PACKAGE["main"] == "./out/src/extension.js"


def test_unit_tests_pass_with_vscode_mocked(compiled):
    proc = run([which_or_skip("node"), "--test", "out/spec/"], timeout=60)
    assert re.search(r"^# fail 0$", proc.stdout, re.M), proc.stdout
    passed = int(re.search(r"^# pass (\d+)$", proc.stdout, re.M).group(1))
    assert passed >= 15, proc.stdout


def test_configuration_mirrors_the_server_schema():
    declared = PACKAGE["contributes"]["configuration"]["properties"]
    server = {key: spec for key, spec in declared.items() if not key.startswith("dgLsp.client.")}
    assert list(server) == list(schema())  # same names, same order as settings.py
    json_type = {str: "string", int: "integer", float: "number", list: "array"}
    for key, spec in schema().items():
        assert server[key]["default"] == spec["default"], key
        assert server[key]["type"] == json_type[type(spec["default"])], key
        for bound in ("enum", "minimum", "maximum"):
            assert server[key].get(bound) == spec.get(bound), (key, bound)
    # The client's own settings are the only extra ones.
    assert set(declared) - set(server) == {"dgLsp.client.serverCommand"}


def test_commands_are_contributed_and_distinct_from_the_servers():
    ids = {c["command"] for c in PACKAGE["contributes"]["commands"]}
    assert ids == {"dgLsp.rewriteSelection", "dgLsp.fillDocstring", "dgLsp.generateTest", "dgLsp.showStatus"}
    # vscode-languageclient registers the server's dg.* commands itself; ours must not clash.
    assert not any(i.startswith("dg.") for i in ids)


@pytest.fixture(scope="module")
def driven(compiled, server_cmd):
    proc = run([which_or_skip("node"), "out/scripts/driveServer.js", json.dumps(server_cmd), json.dumps(FAST_SETTINGS)],
               timeout=120)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_jsonrpc_client_initializes_with_the_extensions_settings(driven):
    caps = driven["capabilities"]
    assert "inlineCompletionProvider" in caps
    assert set(caps["executeCommandProvider"]["commands"]) == {"dg.rewriteSelection", "dg.fillDocstring", "dg.generateTest"}
    sent = driven["initializationOptions"]["dgLsp"]
    # Dotted names (dgLsp.remote.url) arrive as a nested table, as the server reads them.
    assert set(sent) == {k.removeprefix("dgLsp.").split(".")[0] for k in schema()} and sent["steps"] == FAST_SETTINGS["steps"]
    assert set(sent["remote"]) == {k.removeprefix("dgLsp.remote.") for k in schema() if k.startswith("dgLsp.remote.")}
    # Every setting the extension sends is one the server knows and accepts.
    assert not [m for m in driven["logs"] if "dgLsp" in m["message"]], driven["logs"]
    assert driven["exitCode"] == 0


def test_jsonrpc_client_gets_an_inline_completion(driven):
    (item,) = driven["inline"]["items"]
    assert re.fullmatch(r"x{8,}", item["insertText"])
    assert item["range"] == {"start": driven["position"], "end": driven["position"]}


def test_jsonrpc_client_runs_the_rewrite_command(driven):
    (edit,) = driven["rewrite"]["changes"][driven["uri"]]
    assert edit["range"] == driven["range"] and re.fullmatch(r"x+", edit["newText"])
    assert apply_text_edits(SAMPLE, [edit]).splitlines()[1] == "    " + edit["newText"]
    # The code action's variant ("apply": true) has the server ask the client to apply it.
    assert [a["label"] for a in driven["applyEdits"]] == ["dg.rewriteSelection"]
    assert driven["applyEdits"][0]["edit"] == driven["rewrite"]


def test_status_bar_text_from_the_real_status(driven):
    assert driven["status"]["state"] == "ready" and driven["status"]["device"] == "cpu"
    assert re.fullmatch(r"\$\(sparkle\) dg: ready \d+ ms", driven["statusText"])


def test_vsix_packages(compiled, tmp_path):
    vsix = tmp_path / "dg-lsp.vsix"
    run(node_tool("@vscode/vsce/vsce") + ["package", "--allow-missing-repository", "--skip-license", "--out", str(vsix)],
        timeout=120, env={**os.environ, "npm_config_update_notifier": "false"})
    names = set(zipfile.ZipFile(vsix).namelist())
    assert {"extension/package.json", "extension/out/src/extension.js",
            "extension/node_modules/vscode-languageclient/package.json"} <= names
    assert not any(n.startswith(("extension/src/", "extension/spec/", "extension/out/spec/")) for n in names)
