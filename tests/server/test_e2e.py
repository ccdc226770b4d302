"""The language server end to end: a real client (pytest-lsp) talks to `dg-lsp serve` over stdio.

The server runs a tiny checkpoint edited so that every canvas position predicts "x" (see
`build_constant_model`): a fake model, so completions are predictable ("xxxx...").
"""

import ast
import asyncio
import json
import sys
import textwrap
import time
from pathlib import Path

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import client_capabilities, make_test_lsp_client

from ..tiny_models import build_constant_model

pytestmark = pytest.mark.asyncio(loop_scope="module")
DATA = Path(__file__).resolve().parent.parent / "data"
EXTRA_ARGS: list[str] = []
SETTINGS = {"dgLsp": {"steps": 4, "invokedSteps": 4, "candidates": 2, "maxCanvas": 32, "noSuchSetting": 1}}


async def start_server(model_dir, settings=SETTINGS, spec="visual-studio-code"):
    client = make_test_lsp_client()
    await client.start_io(sys.executable, "-m", "dg_lsp", "serve", "--model", str(model_dir), "--device", "cpu", *EXTRA_ARGS)
    client.init_result = await client.initialize_session(
        types.InitializeParams(capabilities=client_capabilities(spec), initialization_options=settings)
    )
    return client


async def status(client):
    return await client.protocol.send_request_async("dg/status", None)


async def wait_for_log(client, fragment, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(fragment in m.message for m in client.log_messages):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no log message with {fragment!r}: {[m.message for m in client.log_messages]}")


@pytest.fixture(scope="module")
def constant_model(tmp_path_factory):
    pytest.importorskip("transformers")
    return build_constant_model(tmp_path_factory.mktemp("constant"))


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def lsp(constant_model):
    client = await start_server(constant_model)
    await wait_for_log(client, "model ready")
    yield client
    await client.shutdown_session()
    await client.stop()


def open_doc(client, uri, text, language):
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)))


def change(client, uri, version, start, end, text):
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(*start), types.Position(*end)), text=text)]))


async def inline(client, uri, line, character, invoked=False):
    kind = types.InlineCompletionTriggerKind.Invoked if invoked else types.InlineCompletionTriggerKind.Automatic
    return await client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line, character),
        context=types.InlineCompletionContext(trigger_kind=kind)))


def xs(text):
    """A completion of the constant model: a run of x, as long as the canvas the plan chose."""
    return 16 <= len(text) <= 32 and set(text) == {"x"}


async def command(client, params):
    """Run a workspace command; its WorkspaceEdit comes back as plain dicts and lists."""
    return plain(await client.workspace_execute_command_async(params))


def plain(value):
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def line_of(text, needle):
    return next(i for i, line in enumerate(text.splitlines()) if needle in line)


async def test_capabilities(lsp):
    caps = lsp.init_result.capabilities
    assert caps.inline_completion_provider is not None
    assert caps.completion_provider is not None and caps.code_action_provider
    assert set(caps.execute_command_provider.commands) >= {"dg.rewriteSelection", "dg.fillDocstring", "dg.generateTest"}
    sync = caps.text_document_sync
    assert getattr(sync, "change", sync) == types.TextDocumentSyncKind.Incremental
    assert caps.position_encoding in (None, types.PositionEncodingKind.Utf16)
    # The unknown setting was reported, not fatal.
    assert any("dgLsp.noSuchSetting" in m.message for m in lsp.log_messages)


async def test_inline_completion_on_a_real_python_file(lsp):
    text = Path(textwrap.__file__).read_text(encoding="utf-8")
    uri = "file:///work/textwrap.py"
    open_doc(lsp, uri, text, "python")
    # Cut a real `return` statement back to `return ` and complete it, as if typing.
    row = line_of(text, "return self._wrap_chunks(chunks)")
    line = text.splitlines()[row]
    column = line.index("return ") + len("return ")
    change(lsp, uri, 2, (row, column), (row, len(line)), "")
    result = await inline(lsp, uri, row, column)
    assert len(result.items) == 1 and xs(result.items[0].insert_text)
    item = result.items[0]
    assert item.range.start == item.range.end == types.Position(row, column)


async def test_inline_and_fallback_completion_on_a_real_typescript_file(lsp):
    text = (DATA / "lru_cache.ts").read_text(encoding="utf-8")
    uri = "file:///work/lru_cache.ts"
    open_doc(lsp, uri, text, "typescript")
    row = line_of(text, "const result = fn(arg);") + 1  # the empty line in the block
    change(lsp, uri, 2, (row, 0), (row, 0), "    ")  # the editor indents the new line
    result = await inline(lsp, uri, row, 4, invoked=True)
    assert result.items and all(item.insert_text.strip("x") == "" for item in result.items)
    completion = await lsp.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(row, 4)))
    assert completion.items and completion.items[0].text_edit.new_text.startswith("x")


async def test_typing_the_completion_is_served_without_the_model(lsp):
    uri = "file:///work/typing.py"
    open_doc(lsp, uri, "def f(a):\n    return \n", "python")
    first = await inline(lsp, uri, 1, 11)
    shown = first.items[0].insert_text
    assert xs(shown)
    before = await status(lsp)
    change(lsp, uri, 2, (1, 11), (1, 11), "xx")
    rest = await inline(lsp, uri, 1, 13)
    assert [i.insert_text for i in rest.items] == [shown[2:]]
    after = await status(lsp)
    assert after.requests == before.requests  # no model call
    assert after.cacheHits == before.cacheHits + 1


async def test_a_burst_of_requests_answers_the_newest(lsp):
    uri = "file:///work/burst.py"
    open_doc(lsp, uri, "def g(b):\n    value = \n", "python")
    before = await status(lsp)
    started = time.perf_counter()
    tasks = []
    for i in range(50):
        change(lsp, uri, 2 + i, (1, 12 + i), (1, 12 + i), "y")
        tasks.append(asyncio.ensure_future(inline(lsp, uri, 1, 13 + i)))
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=60)
    answered = [r for r in results if not isinstance(r, Exception) and r.items]
    # Only the newest request needs an answer; superseded ones come back empty or cancelled.
    assert results[-1].items and results[-1].items[0].insert_text.startswith("x")
    assert len(answered) < 25
    # Superseded work is dropped, not queued: most of the 50 were cancelled in the model
    # thread or dropped before planning.
    after = await status(lsp)
    dropped = after.cancelled - before.cancelled + after.superseded - before.superseded
    assert dropped >= 40, (before, after)
    assert time.perf_counter() - started < 30


async def test_cancel_request(lsp):
    uri = "file:///work/cancel.py"
    open_doc(lsp, uri, "def h(c):\n    return \n", "python")
    # Make invoked requests slow (the constant model never stops early), then cancel one.
    lsp.workspace_did_change_configuration(types.DidChangeConfigurationParams({"dgLsp": {"invokedSteps": 256}}))
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(1, 11),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked))
    before = await status(lsp)
    # pytest-lsp's send_request_async is a coroutine: schedule it so the request goes out now.
    pending = asyncio.ensure_future(
        lsp.protocol.send_request_async(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="cancel-me"))
    await asyncio.sleep(0.3)  # the model is working on it now
    started = time.perf_counter()
    lsp.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="cancel-me"))
    with pytest.raises(JsonRpcException, match="cancel"):
        await pending
    assert time.perf_counter() - started < 0.5  # stopped between denoising steps, not at the end
    assert (await status(lsp)).cancelled == before.cancelled + 1
    lsp.workspace_did_change_configuration(types.DidChangeConfigurationParams({"dgLsp": {"invokedSteps": 4}}))
    assert (await inline(lsp, uri, 1, 11)).items  # the server is still there


async def test_commands_return_edits(lsp, tmp_path):
    source = tmp_path / "geometry.py"
    text = "import math\n\n\ndef area(radius):\n    return math.pi * radius ** 2\n"
    source.write_text(text)
    uri = source.as_uri()
    open_doc(lsp, uri, text, "python")
    doc_edit = await command(lsp,types.ExecuteCommandParams(
        command="dg.fillDocstring", arguments=[{"uri": uri, "position": {"line": 4, "character": 8}}]))
    edit = doc_edit["changes"][uri][0]
    assert edit["newText"].startswith('    """') and edit["newText"].endswith('"""\n')
    assert edit["range"]["start"] == {"line": 4, "character": 0}

    rewrite = await command(lsp,types.ExecuteCommandParams(
        command="dg.rewriteSelection",
        arguments=[{"uri": uri, "range": {"start": {"line": 4, "character": 11},
                                          "end": {"line": 4, "character": 32}},
                    "instruction": "use a local variable"}]))
    assert rewrite["changes"][uri][0]["range"]["start"] == {"line": 4, "character": 11}

    test_edit = await command(lsp,types.ExecuteCommandParams(
        command="dg.generateTest", arguments=[{"uri": uri, "position": {"line": 3, "character": 5}}]))
    create, insert = test_edit["documentChanges"]
    assert create["kind"] == "create" and create["uri"].endswith("/test_geometry.py")
    assert "def test_area():" in insert["edits"][0]["newText"]
    assert not (tmp_path / "test_geometry.py").exists()  # the editor applies edits, not the server

    actions = await lsp.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(types.Position(4, 4), types.Position(4, 20)),
        context=types.CodeActionContext(diagnostics=[])))
    # lsprotocol's client-side union hook reads any object with a "command" field as a Command,
    # so the CodeAction's own command arrives as the text of a dict: read it back from there.
    commands = {ast.literal_eval(a.command)["command"] for a in actions}
    assert commands == {"dg.rewriteSelection", "dg.fillDocstring", "dg.generateTest"}


@pytest.mark.parametrize(
    "uri, line, character, message",
    [
        ("file:///work/never-opened.py", 0, 0, "unknown document"),
        ("file:///work/bad-positions.py", 99, 0, "line 99"),
        ("file:///work/bad-positions.py", 0, 500, "character 500"),
    ],
)
async def test_bad_positions_and_uris_get_errors(lsp, uri, line, character, message):
    open_doc(lsp, "file:///work/bad-positions.py", "x = 1\n", "python")
    with pytest.raises(JsonRpcException, match=message):
        await inline(lsp, uri, line, character)
    assert (await inline(lsp, "file:///work/bad-positions.py", 0, 5)) is not None


async def test_utf16_positions_with_emoji_and_cjk(lsp):
    uri = "file:///work/unicode.py"
    text = 'greeting = "😀 你好"\nname = \n'
    open_doc(lsp, uri, text, "python")
    # After the emoji (2 UTF-16 units) and two CJK characters: column 18 in UTF-16.
    change(lsp, uri, 2, (0, 18), (0, 18), "!")
    result = await inline(lsp, uri, 1, 7)
    assert result.items[0].range.start == types.Position(1, 7)
    with pytest.raises(JsonRpcException, match="surrogate"):
        await inline(lsp, uri, 0, 13)  # the middle of the emoji


async def test_huge_and_odd_files_keep_the_server_up(lsp):
    huge = "x = 1\n" * 900_000  # about 5 MB
    open_doc(lsp, "file:///work/huge.py", huge, "python")
    result = await inline(lsp, "file:///work/huge.py", 900_000, 0)
    assert result is not None
    open_doc(lsp, "file:///work/notes.unknownlang", "some notes\n", "unknownlang")
    assert await inline(lsp, "file:///work/notes.unknownlang", 0, 10) is not None


async def test_malformed_json_rpc_is_survived(constant_model):
    client = await start_server(constant_model)
    try:
        stdin = client._server.stdin
        for body in (b"{not json", b'{"jsonrpc": "2.0", "id": 99, "method": "textDocument/inlineCompletion", "params": 3}'):
            stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        stdin.write("Content-Length: 5\r\n\r\n\xff\xfe\xfd\xfc\xfb".encode("latin-1"))  # invalid UTF-8
        stdin.write(b"X-Junk: " + b"j" * 200_000 + b"\r\n\r\n")  # a header line far over any limit
        await stdin.drain()
        await wait_for_log(client, "model ready")
        open_doc(client, "file:///work/after.py", "def f():\n    return \n", "python")
        result = await inline(client, "file:///work/after.py", 1, 11)
        assert xs(result.items[0].insert_text)
    finally:
        await client.shutdown_session()
        await client.stop()


async def test_a_broken_model_is_reported_and_the_server_stays_up(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    client = await start_server(tmp_path)
    try:
        await wait_for_log(client, "not loaded")
        assert any("model_type 'llama' is not supported" in m.message for m in client.messages)
        open_doc(client, "file:///work/a.py", "a = \n", "python")
        result = await inline(client, "file:///work/a.py", 0, 4)
        assert not result.items
    finally:
        await client.shutdown_session()
        await client.stop()


async def test_the_server_answers_while_the_model_loads(constant_model):
    client = await start_server(constant_model)
    try:
        open_doc(client, "file:///work/early.py", "a = \n", "python")
        first = await status(client)
        result = await inline(client, "file:///work/early.py", 0, 4)
        assert result is not None
        if first.state == "loading":
            assert not result.items
        await wait_for_log(client, "model ready")
        assert (await status(client)).state == "ready"
        assert any(token for token in client.progress_reports)  # work-done progress was reported
    finally:
        await client.shutdown_session()
        await client.stop()


async def test_tcp_mode_listens_on_loopback(constant_model):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dg_lsp", "serve", "--tcp", str(port), "--model", str(constant_model), "--log-level", "ERROR",
        stderr=asyncio.subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                           "params": {"processId": None, "rootUri": None, "capabilities": {}}}).encode()
        writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        header = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        length = int(header.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        reply = json.loads(await reader.readexactly(length))
        assert reply["id"] == 1 and "inlineCompletionProvider" in reply["result"]["capabilities"]
        # Bound to loopback only: a server on 0.0.0.0 would answer anyone on the network.
        assert listening_addresses(port) == {"127.0.0.1"}
        writer.close()
    finally:
        server.kill()
        await server.wait()


def listening_addresses(port):
    """The local addresses of the sockets listening on TCP `port` (from the kernel's table)."""
    import socket
    import struct

    tables = [(Path("/proc/net/tcp"), socket.AF_INET, "=I"), (Path("/proc/net/tcp6"), socket.AF_INET6, "=IIII")]
    if not tables[0][0].exists():
        pytest.skip("needs Linux's /proc/net/tcp")
    found = set()
    for table, family, layout in tables:
        if not table.exists():
            continue
        for row in table.read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                words = [int(address[i : i + 8], 16) for i in range(0, len(address), 8)]
                found.add(socket.inet_ntop(family, struct.pack(layout, *words)))
    return found


async def test_plan_request_shows_the_context_without_a_model_call(lsp):
    uri = "file:///work/plan.py"
    open_doc(lsp, uri, "import os\n\n\ndef f(path):\n    if os.path.exists(path):\n        \n", "python")
    before = await status(lsp)
    plan = await lsp.protocol.send_request_async(
        "dg/plan", {"textDocument": {"uri": uri}, "position": {"line": 5, "character": 8}})
    assert plan.mode == "block" and plan.indent == "        " and plan.prefixChars > 20
    assert (await status(lsp)).requests == before.requests
    with pytest.raises(JsonRpcException, match="dg/plan wants"):
        await lsp.protocol.send_request_async("dg/plan", {"position": 3})


# -- bad input and shutdown --------------------------------------------------------------


class RawClient:
    """JSON-RPC over a `dg-lsp serve` subprocess's pipes, for messages no typed client sends."""

    def __init__(self, process):
        self.process = process

    @classmethod
    async def start(cls, *args):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dg_lsp", "serve", "--log-level", "ERROR", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        return cls(process)

    def send(self, message):
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    async def response(self, msg_id, timeout=30.0):
        """The response to `msg_id` (messages before it are skipped)."""
        async def read():
            while True:
                header = await self.process.stdout.readuntil(b"\r\n\r\n")
                length = int(header.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                message = json.loads(await self.process.stdout.readexactly(length))
                if message.get("id") == msg_id and "method" not in message:
                    return message
        return await asyncio.wait_for(read(), timeout)

    async def close(self):
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


async def test_params_that_fail_validation_get_an_error_response():
    client = await RawClient.start()
    try:
        client.send({"id": 0, "method": "initialize", "params": {"processId": None, "capabilities": {}}})
        await client.response(0)
        uri = "file:///work/invalid-params.py"
        client.send({"method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": uri, "languageId": "python", "version": 1, "text": "x = 1\n"}}})
        cases = [({"line": -1, "character": 0}, "Position.line should be in range"),
                 ({"line": 0, "character": -5}, "Position.character should be in range"),
                 ("three", "position")]
        for msg_id, (position, message) in enumerate(cases, start=1):
            client.send({"id": msg_id, "method": "textDocument/inlineCompletion", "params": {
                "textDocument": {"uri": uri}, "position": position, "context": {"triggerKind": 1}}})
            # Before, no answer came at all: the editor waited on this id forever.
            error = (await client.response(msg_id, timeout=10))["error"]
            assert error["code"] == -32602, error
            assert "textDocument/inlineCompletion" in error["message"] and message in error["message"]
        # A notification that does not fit is skipped; the server goes on.
        client.send({"method": "textDocument/didChange", "params": {"textDocument": {"uri": uri}, "contentChanges": 3}})
        client.send({"id": 9, "method": "textDocument/inlineCompletion", "params": {
            "textDocument": {"uri": uri}, "position": {"line": 0, "character": 5}, "context": {"triggerKind": 1}}})
        assert (await client.response(9))["result"] == {"items": []}  # no model configured: nothing to offer
    finally:
        await client.close()


def change_all(client, uri, version, *changes):
    """One didChange with several content changes: (start, end, text) ranges or a full text."""
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[
            types.TextDocumentContentChangeWholeDocument(text=c) if isinstance(c, str) else
            types.TextDocumentContentChangePartial(range=types.Range(types.Position(*c[0]), types.Position(*c[1])),
                                                   text=c[2])
            for c in changes]))


async def plan_at(client, uri, line, character):
    return await client.protocol.send_request_async(
        "dg/plan", {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}})


async def test_a_change_outside_the_document_puts_it_out_of_sync_until_a_full_text(lsp):
    uri = "file:///work/out-of-sync.py"
    open_doc(lsp, uri, "def f(a):\n    return \n", "python")
    shown = len(lsp.messages)
    # A good change, then one far outside the (two-line) document, in one notification.
    change_all(lsp, uri, 2, ((1, 11), (1, 11), "a"), ((40, 0), (40, 0), "zzz"))
    with pytest.raises(JsonRpcException, match="out of sync"):
        await plan_at(lsp, uri, 1, 11)
    assert [m.type for m in lsp.messages[shown:]] == [types.MessageType.Warning]
    assert "out of sync" in lsp.messages[-1].message and "line 40" in lsp.messages[-1].message
    # No completion is computed on it, and the user is not told again.
    assert not (await inline(lsp, uri, 1, 11, invoked=True)).items
    change_all(lsp, uri, 3, ((50, 0), (50, 1), "y"))
    change_all(lsp, uri, 4, ((1, 11), (1, 11), "b"))  # fits the old text, but we cannot know
    with pytest.raises(JsonRpcException, match="out of sync"):
        await plan_at(lsp, uri, 1, 11)
    assert len(lsp.messages) == shown + 1
    # The whole text brings it back.
    change_all(lsp, uri, 5, "def f(a):\n    return a + \n")
    plan = await plan_at(lsp, uri, 1, 15)
    assert plan.prefixChars == len("def f(a):\n    return a + ")
    assert xs((await inline(lsp, uri, 1, 15)).items[0].insert_text)


async def test_a_reopen_brings_an_out_of_sync_document_back(lsp):
    uri = "file:///work/reopen.py"
    open_doc(lsp, uri, "a = \n", "python")
    change_all(lsp, uri, 2, ((9, 0), (9, 0), "x"))
    with pytest.raises(JsonRpcException, match="out of sync"):
        await plan_at(lsp, uri, 0, 4)
    lsp.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri=uri)))
    open_doc(lsp, uri, "b = \n", "python")
    assert xs((await inline(lsp, uri, 0, 4)).items[0].insert_text)


async def slow_invoked_steps(client, steps):
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams({"dgLsp": {"invokedSteps": steps}}))
    await status(client)  # a round trip: the setting is in


async def test_a_document_closed_while_its_completion_runs_gets_an_empty_answer(lsp):
    uri = "file:///work/closed-meanwhile.py"
    open_doc(lsp, uri, "def k(c):\n    return \n", "python")
    await slow_invoked_steps(lsp, 256)
    try:
        pending = asyncio.ensure_future(inline(lsp, uri, 1, 11, invoked=True))
        await asyncio.sleep(0.3)  # the model is working on it
        lsp.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri=uri)))
        # The offset was computed before the document went away: no error, nothing to insert.
        assert not (await asyncio.wait_for(pending, timeout=60)).items
    finally:
        await slow_invoked_steps(lsp, 4)


async def test_a_command_whose_document_changed_meanwhile_is_refused(lsp, tmp_path):
    source = tmp_path / "moving.py"
    text = "def area(radius):\n    return 3.14 * radius ** 2\n"
    source.write_text(text)
    uri = source.as_uri()
    open_doc(lsp, uri, text, "python")
    await slow_invoked_steps(lsp, 256)
    try:
        pending = asyncio.ensure_future(lsp.workspace_execute_command_async(types.ExecuteCommandParams(
            command="dg.fillDocstring", arguments=[{"uri": uri, "position": {"line": 1, "character": 8}}])))
        await asyncio.sleep(0.3)  # the model is writing the docstring
        change(lsp, uri, 2, (0, 0), (0, 0), "import math\n\n\n")  # the function moves down three lines
        # Its edit was placed on the old text: applying it now would put the docstring in the wrong place.
        with pytest.raises(JsonRpcException, match="changed while the model worked") as error:
            await asyncio.wait_for(pending, timeout=60)
        assert error.value.code == -32801  # ContentModified
    finally:
        await slow_invoked_steps(lsp, 4)


async def test_a_closed_document_leaves_the_snippet_ring(lsp):
    marker = "closed_document_marker_2718"
    other, here = "file:///work/ring/other.py", "file:///work/ring/here.py"
    open_doc(lsp, other, f"def {marker}():\n    return 1\n", "python")
    open_doc(lsp, here, "def g():\n    return \n", "python")
    assert marker in (await plan_at(lsp, here, 1, 11)).context  # other files feed the prompt
    lsp.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri=other)))
    assert marker not in (await plan_at(lsp, here, 1, 11)).context


@pytest.mark.parametrize("ending", ["shutdown and exit", "end of input"])
async def test_the_server_exits_at_once_while_a_long_completion_runs(constant_model, ending):
    client = await start_server(constant_model, settings={"dgLsp": {"invokedSteps": 256, "candidates": 8}})
    await wait_for_log(client, "model ready")
    uri = "file:///work/long.py"
    open_doc(client, uri, "def h(c):\n    return \n", "python")
    pending = asyncio.ensure_future(inline(client, uri, 1, 11, invoked=True))  # seconds of denoising
    before = (await status(client)).requests
    while (await status(client)).requests == before:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # well into it
    started = time.perf_counter()
    if ending == "shutdown and exit":
        await client.shutdown_session()
    else:
        client._server.stdin.close()
    await asyncio.wait_for(client._server.wait(), timeout=30)
    assert time.perf_counter() - started < 1.0
    pending.cancel()
    await client.stop()


async def test_status_reports_the_prompt_cache_at_work(lsp):
    """`dg/status` says how many prompt tokens were encoded and how many prompts are cached: a
    keystroke at the cursor of a cached prompt re-encodes from the cursor on, not the prompt
    (this test model's FIM order is PSM, so the suffix after the cursor is encoded again)."""
    text = "def area(width, height):\n    return \n\n\nprint(area(2, 3))\n"
    uri = "file:///work/status_cache.py"
    open_doc(lsp, uri, text, "python")
    await inline(lsp, uri, 1, 11)
    first = plain(await status(lsp))
    assert first["encodedTokens"] > 0 and first["cachedPrompts"] >= 1
    change(lsp, uri, 2, (1, 11), (1, 11), "w")
    await inline(lsp, uri, 1, 12)
    second = plain(await status(lsp))
    assert 0 < second["encodedTokens"] - first["encodedTokens"] < first["encodedTokens"]
