"""The JSON-RPC layer under the handlers: pygls' LSP protocol with three costs removed.

Every keystroke crosses this layer twice (a didChange, then a completion request), so what
pygls does by default shows up in the keystroke latency:

- pygls keeps its own copy of every open document and applies each change to it (~1 ms a
  change on a 5,000-line file). dg-lsp keeps its documents in `DocumentStore` and never
  reads pygls' copy, so the document notifications go straight to our handlers.
- Params of custom methods (`dg/status`, `dg/plan`) become namedtuples built with a fresh
  `collections.namedtuple` class per nested object (~1 ms a request); here they stay plain
  JSON (dicts).
- On stdio, pygls reads each header line and body through a thread pool; an asyncio pipe
  reader avoids two thread hand-offs per message.

It also answers what pygls drops: a request whose params do not fit the method's type (a
negative line, a string where an object goes) gets an InvalidParams error for its id, so
the editor never waits on it forever; such a notification is logged and skipped.

Positions are always UTF-16 (the LSP default, which every client supports), so one
position conversion serves all clients.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
import threading
from typing import Any

import attrs
import cattrs
from cattrs.v import format_exception
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.io_ import StdoutWriter, run_async
from pygls.protocol import JsonRPCNotification, JsonRPCRequestMessage, LanguageServerProtocol, lsp_method

log = logging.getLogger(__name__)

CUSTOM_METHOD_PREFIX = "dg/"
MAX_HEADER_LINE = 1 << 16  # a longer header line is malformed input: skipped, not fatal


@attrs.define
class PlainRequest:
    """A request to a custom method; `params` is the JSON value as received."""

    id: int | str
    method: str
    jsonrpc: str
    params: Any = None


# What `structure_message` gives for a message it has already answered or logged.
REJECTED = object()


class DgProtocol(LanguageServerProtocol):
    exited = False  # after `exit` the writer is closed: late answers have nowhere to go

    def get_message_type(self, method: str):
        if method.startswith(CUSTOM_METHOD_PREFIX):
            return PlainRequest
        return super().get_message_type(method)

    def structure_message(self, data: dict[str, Any]):
        """pygls' message typing (called on every JSON object of a message, innermost first),
        except that a request or notification it cannot type is answered or logged here."""
        method = data.get("method")
        if "jsonrpc" not in data or not isinstance(method, str) or "error" in data:
            return super().structure_message(data)  # inner objects, responses
        is_request = "id" in data
        message_type = self.get_message_type(method) or (JsonRPCRequestMessage if is_request else JsonRPCNotification)
        try:
            return self._converter.structure(data, message_type)
        except Exception as err:  # any shape of bad input is the client's error, not ours
            reason = f"invalid params for {method}: {_describe(err)}"
        if is_request and isinstance(data["id"], (int, str)) and not isinstance(data["id"], bool):
            log.warning("request %r: %s", data["id"], reason)
            self._send_response(data["id"], None, JsonRpcInvalidParams(reason).to_response_error())
        else:
            log.warning("dropped a message: %s", reason)
        return REJECTED

    def handle_message(self, message):
        if message is not REJECTED:
            super().handle_message(message)

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args):
        self.exited = True
        return (yield from super().lsp_exit(*args))

    def _send_data(self, data: Any):
        if not self.exited:  # the requests cancelled by `exit` would answer into a closed pipe
            super()._send_data(data)

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams):
        if params.capabilities.general is not None:
            params.capabilities.general.position_encodings = None
        return (yield from super().lsp_initialize(params))

    # The document notifications skip pygls' workspace copy (see the module docstring).

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams):
        yield from self._user_handler(types.TEXT_DOCUMENT_DID_OPEN, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        yield from self._user_handler(types.TEXT_DOCUMENT_DID_CHANGE, params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams):
        yield from self._user_handler(types.TEXT_DOCUMENT_DID_CLOSE, params)

    def _user_handler(self, method: str, params):
        if (handler := self.fm.features.get(method)) is not None:
            yield handler, (params,), None


def _describe(err: Exception) -> str:
    """cattrs' account of what did not fit, with the validators' own words
    ("Position.line should be in range [0:2147483647], but was -1. @ $.params.position")."""
    if not isinstance(err, cattrs.BaseValidationError):
        return str(err) or type(err).__name__

    def fmt(exc: BaseException, type_) -> str:
        return str(exc) if isinstance(exc, ValueError) and str(exc) else format_exception(exc, type_)

    return "; ".join(cattrs.transform_error(err, format_exception=fmt))


class PipeReader:
    """pygls' reader interface (readline, readexactly) over an asyncio StreamReader."""

    def __init__(self, stream: asyncio.StreamReader):
        self.stream = stream

    async def readline(self) -> bytes:
        try:
            return await self.stream.readline()
        except ValueError:  # longer than MAX_HEADER_LINE: the stream dropped it
            log.warning("skipped a header line longer than %d bytes", MAX_HEADER_LINE)
            return b"X-Dg-Skipped: line too long\r\n"

    async def readexactly(self, n: int) -> bytes:
        try:
            return await self.stream.readexactly(n)
        except asyncio.IncompleteReadError as err:  # end of input inside a body
            return err.partial


def stdin_is_stream() -> bool:
    """A pipe, socket or terminal, which asyncio can watch (a regular file it cannot)."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


def serve_stdio(server) -> None:
    """Run `server` (a pygls LanguageServer) on stdin/stdout until exit or end of input;
    stdin must be a stream (`stdin_is_stream`)."""
    server._stop_event = threading.Event()
    server.protocol.set_writer(StdoutWriter(sys.stdout.buffer))

    async def main():
        stream = asyncio.StreamReader(limit=MAX_HEADER_LINE)
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stream), sys.stdin.buffer)
        await run_async(stop_event=server._stop_event, reader=PipeReader(stream), protocol=server.protocol,
                        logger=log, error_handler=server.report_server_error)

    try:
        asyncio.run(main())
    except BrokenPipeError:
        log.error("the client closed the connection; shutting down")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()
