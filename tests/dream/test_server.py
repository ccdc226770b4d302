"""The language server end to end over stdio with a tiny random Dream checkpoint.

The same `dg-lsp serve` process and client as tests/server/test_e2e.py, with a Dream-family
model directory: the server and the commands are unchanged, the engine is picked from the
directory. A random model writes junk, which the server's parse check rightly refuses to show,
so completions are checked on a tiny Dream checkpoint edited to write "x" everywhere
(`build_constant_dream`, like tests/tiny_models.py's `build_constant_model`); the commands
also run on an unedited random one, where only the shape and place of their edits are checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio
import torch
from lsprotocol import types

from ..server.test_e2e import change, command, inline, open_doc, plain, start_server, status, wait_for_log
from .tiny_dream import build_tiny_dream, token_id

pytestmark = pytest.mark.asyncio(loop_scope="module")
# minConfidence 0: a random model is never confident, and the gate would show nothing.
SETTINGS = {"dgLsp": {"steps": 4, "invokedSteps": 6, "candidates": 2, "maxCanvas": 32, "minConfidence": 0.0}}
SOURCE = "import math\n\n\ndef area(radius):\n    return math.pi * radius ** 2\n\n\ndef perimeter(radius):\n    return \n"


def build_constant_dream(directory: Path, variant: str, token: str = "x") -> Path:
    """A tiny Dream checkpoint whose every position predicts `token`: every embedding row is one
    vector and the layers' output projections are zero, so the final hidden state is one
    direction, and an untied LM head row for `token` along it wins with near-certainty."""
    from safetensors.torch import load_file, save_file

    build_tiny_dream(directory, variant=variant, tie=False, seed=7)
    tensors = load_file(directory / "model.safetensors")
    direction = torch.randn(tensors["model.embed_tokens.weight"].shape[1], generator=torch.Generator().manual_seed(0))
    tensors["model.embed_tokens.weight"][:] = direction * 0.05
    for name, tensor in tensors.items():
        if name.endswith(("o_proj.weight", "down_proj.weight")):
            tensor.zero_()
        elif name.endswith("norm.weight"):
            tensor.fill_(1.0)
    lm_head = torch.randn_like(tensors["lm_head.weight"]) * 0.01
    lm_head[token_id(directory, token)] = direction / direction.norm() * 40.0
    tensors["lm_head.weight"] = lm_head
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})
    return directory


def xs(text, most=32):
    return 1 <= len(text) <= most and set(text) == {"x"}


@pytest.fixture(scope="module", params=["dream", "dreamon"])
def constant_dream(request, tmp_path_factory):
    pytest.importorskip("transformers")
    return build_constant_dream(tmp_path_factory.mktemp(request.param) / "m", request.param)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def lsp(constant_dream):
    client = await start_server(constant_dream, settings=SETTINGS)
    await wait_for_log(client, "model ready")
    yield client
    await client.shutdown_session()
    await client.stop()


async def test_inline_completion_comes_from_the_model(lsp):
    uri = "file:///work/dream_inline.py"
    open_doc(lsp, uri, SOURCE, "python")
    before = plain(await status(lsp))
    assert before["state"] == "ready"
    automatic = await inline(lsp, uri, 8, 11)
    invoked = await inline(lsp, uri, 8, 11, invoked=True)
    for item in automatic.items + invoked.items:
        assert xs(item.insert_text) and item.range.start == item.range.end == types.Position(8, 11)
    assert len(automatic.items) == 1 and invoked.items
    after = plain(await status(lsp))
    assert after["requests"] >= before["requests"] + 2 and after["encodedTokens"] > before["encodedTokens"]
    assert after["cachedPrompts"] >= 1


async def test_the_completion_fallback(lsp):
    uri = "file:///work/dream_fallback.py"
    open_doc(lsp, uri, SOURCE, "python")
    change(lsp, uri, 2, (8, 11), (8, 11), "2 * ")
    completion = await lsp.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(8, 15)))
    items = completion.items if hasattr(completion, "items") else completion
    assert items is not None
    assert items
    for item in items:
        edit = item.text_edit
        assert "x" in edit.new_text and edit.range.end == types.Position(8, 15) and edit.range.start.line == 8


async def test_the_commands_return_edits_in_range(lsp, tmp_path):
    await run_the_commands(lsp, tmp_path)


async def test_the_commands_on_an_unedited_random_checkpoint(tmp_path):
    """Junk text, but every command still answers with an edit where it belongs."""
    model = build_tiny_dream(tmp_path / "random", variant="dream", seed=11)
    client = await start_server(model, settings=SETTINGS)
    try:
        await wait_for_log(client, "model ready")
        await run_the_commands(client, tmp_path)
        open_doc(client, "file:///work/random.py", SOURCE, "python")
        result = await inline(client, "file:///work/random.py", 8, 11, invoked=True)
        assert result is not None  # junk may be refused by the parse check, but the request is answered
    finally:
        await client.shutdown_session()
        await client.stop()


async def run_the_commands(lsp, tmp_path):
    source = tmp_path / "geometry.py"
    source.write_text(SOURCE)
    uri = source.as_uri()
    open_doc(lsp, uri, SOURCE, "python")

    rewrite = await command(lsp, types.ExecuteCommandParams(
        command="dg.rewriteSelection",
        arguments=[{"uri": uri, "range": {"start": {"line": 4, "character": 11}, "end": {"line": 4, "character": 32}},
                    "instruction": "use a local variable"}]))
    (edit,) = rewrite["changes"][uri]
    assert edit["range"] == {"start": {"line": 4, "character": 11}, "end": {"line": 4, "character": 32}}
    assert isinstance(edit["newText"], str)

    docstring = await command(lsp, types.ExecuteCommandParams(
        command="dg.fillDocstring", arguments=[{"uri": uri, "position": {"line": 4, "character": 8}}]))
    (edit,) = docstring["changes"][uri]
    assert edit["range"]["start"] == edit["range"]["end"] == {"line": 4, "character": 0}
    assert edit["newText"].startswith('    """') and edit["newText"].endswith('"""\n')

    test = await command(lsp, types.ExecuteCommandParams(
        command="dg.generateTest", arguments=[{"uri": uri, "position": {"line": 3, "character": 5}}]))
    create, insert = test["documentChanges"]
    assert create["kind"] == "create" and create["uri"].endswith("/test_geometry.py")
    assert "def test_area():" in insert["edits"][0]["newText"]
    assert not (tmp_path / "test_geometry.py").exists()  # the editor applies edits, not the server
    assert plain(await status(lsp))["state"] == "ready"
