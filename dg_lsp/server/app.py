"""The language server: capabilities and handlers.

Handlers stay short: find the document, call a service, convert to lsprotocol types.
User errors (an unknown document, a position outside it) become InvalidParams responses
with a clear message; the server keeps running whatever a client sends.

Anything computed before an `await` (an offset, a range) is checked against the document
after it: a document closed or edited meanwhile gets no completion, and a command's edit
to it is refused as ContentModified rather than applied at the wrong place. A document out
of sync with the editor (see documents.py) is reported once, then quietly gets nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from lsprotocol import types
from pygls.exceptions import JsonRpcContentModified, JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from .. import __version__
from ..context.ring import SnippetRing
from ..errors import EngineUnavailable, InputError
from .commands import COMMANDS, CommandService, parse_args
from .completions import CompletionService
from .documents import DocumentStore, IdleParser, OutOfSyncError
from .model_host import HostEvent, ModelHost
from .protocol import DgProtocol, serve_stdio, stdin_is_stream
from .settings import Settings, update_settings
from .worker import ModelWorker

log = logging.getLogger(__name__)
REQUEST_FAILED = -32803  # LSP's RequestFailed: the request was valid, the server could not do it now


class DgLanguageServer(LanguageServer):
    def __init__(self):
        super().__init__("dg-lsp", __version__, protocol_cls=DgProtocol,
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.settings = Settings()
        self.documents = DocumentStore(SnippetRing())
        self.idle_parser = IdleParser(self.documents)
        self.worker = ModelWorker()
        self.host = ModelHost(self._on_host_event)
        self.completions = CompletionService(self.documents, self.host, self.worker)
        self.commands = CommandService(self.documents, self.host, self.worker)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.cli_overrides: dict = {}  # flags of `dg-lsp serve`, which win over client settings
        self._progress_token: str | None = None

    def start_io(self, stdin=None, stdout=None):
        if stdin is None and stdout is None and stdin_is_stream():
            serve_stdio(self)  # pygls' reader without its thread hand-offs (see protocol.py)
        else:
            super().start_io(stdin, stdout)

    # -- settings and model loading ---------------------------------------------------------

    def apply_settings(self, raw) -> None:
        self.settings, warnings = update_settings(self.settings, raw)
        self.settings, _ = update_settings(self.settings, self.cli_overrides)
        for warning in warnings:
            self.log(warning, types.MessageType.Warning)

    def start_loading(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.host.load(self.settings)

    def _on_host_event(self, event: HostEvent) -> None:
        """Called from the loading thread: hop onto the server's loop to talk to the client."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._report_host_event, event)

    def _report_host_event(self, event: HostEvent) -> None:
        if event.kind == "begin":
            self.log(event.message)
            self._progress_token = str(uuid.uuid4())
            token = self._progress_token
            self.work_done_progress.create(token, lambda *_: self.work_done_progress.begin(
                token, types.WorkDoneProgressBegin(title="dg-lsp", message=event.message)))
        elif event.kind == "end":
            self.log(event.message)
            self._end_progress(event.message)
        elif event.kind in ("outage", "recovered", "notice"):  # a remote engine's server, once each time
            kind = types.MessageType.Warning if event.kind == "outage" else types.MessageType.Info
            text = f"remote server unreachable: {event.message}" if event.kind == "outage" else event.message
            self.log(text, kind)
            if event.kind != "notice":
                self.window_show_message(types.ShowMessageParams(kind, f"dg-lsp: {text}"))
        else:
            self.log(f"model not loaded: {event.message}", types.MessageType.Error)
            self.window_show_message(types.ShowMessageParams(types.MessageType.Error, f"dg-lsp: {event.message}"))
            self._end_progress("model not loaded")

    def _end_progress(self, message: str) -> None:
        token, self._progress_token = self._progress_token, None
        if token is not None and token in self.work_done_progress.tokens:
            self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))

    def log(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        log.info(message)
        self.window_log_message(types.LogMessageParams(kind, message))

    def report_server_error(self, error: Exception, source) -> None:
        # Errors are logged, not shown as pop-ups: a malformed message must not nag the user.
        log.warning("server error (%s): %s", getattr(source, "__name__", source), error)

    def shutdown(self) -> None:
        """On `exit` or the end of input: stop model work at its next denoising step, so the
        process exits now instead of when a long completion would have finished."""
        self.worker.shutdown()
        super().shutdown()


def create_server() -> DgLanguageServer:
    server = DgLanguageServer()

    @server.feature(types.INITIALIZE)
    def initialize(ls: DgLanguageServer, params: types.InitializeParams):
        ls.apply_settings(params.initialization_options)

    @server.feature(types.INITIALIZED)
    def initialized(ls: DgLanguageServer, params: types.InitializedParams):
        ls.start_loading()

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: DgLanguageServer, params=None):
        ls.worker.cancel_all()  # nobody will read their answers

    @server.feature(types.EXIT)
    def exit_(ls: DgLanguageServer, params=None):
        ls.worker.shutdown()

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: DgLanguageServer, params: types.DidChangeConfigurationParams):
        ls.apply_settings(params.settings)
        ls.host.load(ls.settings)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: DgLanguageServer, params: types.DidOpenTextDocumentParams):
        ls.documents.open(params.text_document)
        ls.idle_parser.poke()

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: DgLanguageServer, params: types.DidChangeTextDocumentParams):
        try:
            ls.documents.change(params)
        except OutOfSyncError as err:  # raised once per loss of sync: tell the user, once
            ls.log(str(err), types.MessageType.Warning)
            ls.window_show_message(types.ShowMessageParams(types.MessageType.Warning, f"dg-lsp: {err}"))
        except InputError as err:
            ls.log(str(err), types.MessageType.Warning)
        ls.idle_parser.poke()

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: DgLanguageServer, params: types.DidCloseTextDocumentParams):
        ls.documents.close(params.text_document.uri)
        ls.completions.cache.forget(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(ls: DgLanguageServer, params: types.InlineCompletionParams):
        invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        texts, at = await _complete(ls, params.text_document.uri, params.position, invoked)
        return types.InlineCompletionList(
            items=[types.InlineCompletionItem(insert_text=t, range=types.Range(at, at)) for t in texts]
        )

    @server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[]))
    async def completion(ls: DgLanguageServer, params: types.CompletionParams):
        invoked = params.context is None or params.context.trigger_kind == types.CompletionTriggerKind.Invoked
        texts, at = await _complete(ls, params.text_document.uri, params.position, invoked)
        items = [
            types.CompletionItem(
                label=text.strip().splitlines()[0][:60] if text.strip() else text,
                kind=types.CompletionItemKind.Snippet,
                detail="dg-lsp",
                sort_text=f"{i:02d}",
                filter_text=text,
                insert_text_format=types.InsertTextFormat.PlainText,
                text_edit=types.TextEdit(range=types.Range(at, at), new_text=text),
            )
            for i, text in enumerate(texts)
        ]
        return types.CompletionList(is_incomplete=True, items=items)

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.RefactorRewrite, types.CodeActionKind.Source]),
    )
    def code_action(ls: DgLanguageServer, params: types.CodeActionParams):
        try:
            return _user_errors(lambda: ls.commands.code_actions(params.text_document.uri, params.range))
        except OutOfSyncError:
            return []  # asked on every selection change: the user was told once already

    @server.feature("dg/status")
    def status(ls: DgLanguageServer, params=None):
        """Model state and counters, for `:checkhealth`, the VS Code status bar and tests. With the
        remote engine, `remote` has the server's state and last error, and an outage shows as the
        state "unreachable"."""
        engine = ls.host.engine
        remote = engine.remote_status() if hasattr(engine, "remote_status") else None
        down = remote is not None and remote["state"] == "unreachable"
        return {
            "version": __version__,
            "state": "unreachable" if down else ls.host.state,
            "error": remote["lastError"] if down else ls.host.error,
            "engine": ls.settings.engine,
            **({"remote": remote} if remote is not None else {}),
            "model": engine.label if remote is not None else str(ls.host.model_dir or ""),
            "device": ls.host.device,
            "lastLatencyMs": ls.completions.last_latency_ms,
            "requests": ls.worker.started,
            "cancelled": ls.worker.cancelled,
            "superseded": ls.completions.superseded,
            "cacheHits": ls.completions.cache.hits,
            # The prompt cache at work: prompt tokens encoded since start, and the prompts it holds.
            "encodedTokens": engine.prompt_cache.tokens_encoded if engine else 0,
            "cachedPrompts": len(engine.prompt_cache.entries) if engine else 0,
        }

    @server.feature("dg/plan")
    def plan(ls: DgLanguageServer, params):
        """The context plan at a position ({textDocument: {uri}, position}), without a model
        call: for debugging, and for measuring the server's own overhead (parse + context +
        protocol). Custom methods get their params as plain objects with camelCase names."""
        def run():
            try:
                uri = _get(_get(params, "textDocument"), "uri")
                position = _get(params, "position")
                position = types.Position(line=_get(position, "line"), character=_get(position, "character"))
            except (AttributeError, KeyError, TypeError):
                raise InputError("dg/plan wants {textDocument: {uri}, position: {line, character}}") from None
            doc = ls.documents.get(uri)
            p = ls.completions.plan(doc, ls.documents.offset(doc, position), ls.settings)
            return {"mode": p.mode, "canvasLength": p.canvas_length, "prefixChars": len(p.prefix),
                    "suffixChars": len(p.suffix), "contextChars": len(p.context), "indent": p.indent,
                    "context": p.context}
        return _user_errors(run)

    for name in COMMANDS:
        server.command(name)(_command_handler(name))

    return server


def _command_handler(name: str):
    async def run(ls: DgLanguageServer, *args):
        try:
            doc = ls.documents.get(parse_args(name, list(args)).uri)
            version = doc.version
            edit = await ls.commands.run(name, list(args), ls.settings)
        except InputError as err:
            raise JsonRpcInvalidParams(str(err)) from None
        except EngineUnavailable as err:  # the remote server is down: the command fails, the server stays
            raise JsonRpcException(f"{name}: {err}", code=REQUEST_FAILED) from None
        # The edit's ranges were computed before the model ran: stale if the document moved on.
        if edit is not None and _edits_document(edit, doc.uri) and not ls.documents.is_current(doc, version):
            raise JsonRpcContentModified(f"{name}: {doc.uri} changed while the model worked; run it again")
        if edit is not None and ls.commands.wants_apply(args):
            await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit, label=name))
        return edit

    return run


def _edits_document(edit: types.WorkspaceEdit, uri: str) -> bool:
    if edit.changes and uri in edit.changes:
        return True
    return any(isinstance(change, types.TextDocumentEdit) and change.text_document.uri == uri
               for change in edit.document_changes or ())


async def _complete(ls: DgLanguageServer, uri: str, position: types.Position,
                    invoked: bool) -> tuple[list[str], types.Position | None]:
    """The completion texts and where they go; no texts when there is nothing to offer on
    the document as it is now."""
    doc = None
    try:
        doc = ls.documents.get(uri)
        version = doc.version
        result = await ls.completions.complete(uri, position, invoked, ls.settings)
    except OutOfSyncError:
        return [], None  # the user was told when it went out of sync
    except InputError as err:
        if doc is not None and not ls.documents.is_current(doc, version):
            return [], None  # closed or changed while we waited: nothing to offer, nothing wrong
        raise JsonRpcInvalidParams(str(err)) from None
    # `result.offset` was computed before the awaits: it holds only in the same document.
    if not result.texts or not ls.documents.is_current(doc, version):
        return [], None
    return result.texts, ls.documents.position(doc, result.offset)


def _get(obj, name):
    return obj[name] if isinstance(obj, dict) else getattr(obj, name)


def _user_errors(fn):
    try:
        return fn()
    except InputError as err:
        raise JsonRpcInvalidParams(str(err)) from None
