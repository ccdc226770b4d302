"""Open documents, kept in step with the editor's incremental changes.

Each is a `context.Document`: its text plus a tree-sitter tree re-parsed incrementally on
every change. A request re-parses for at most `PARSE_BUDGET_S` and otherwise plans on the
last tree with the edits applied to it; the rest of the parse runs while the editor is idle
(`IdleParser`). Chunks around each edit feed the snippet ring, so completions in one file
see code recently edited in others; a closed document leaves the ring.

A change the document cannot take (a range outside it) is rejected whole: the text stays as
it was before that notification, and the document is *out of sync* with the editor, since
the editor's next ranges refer to a text we do not have. `get` then refuses it (no
completion or edit is computed on a wrong text) until a full-text change or a reopen.
"""

from __future__ import annotations

import asyncio
import time

from lsprotocol import types

from ..context.document import Document, PositionError
from ..context.ring import SnippetRing
from ..errors import InputError


# Most keystrokes re-parse in well under a millisecond; those that change how much of the
# file is code (an opened string, an unbalanced bracket) can take tens of milliseconds.
PARSE_BUDGET_S = 0.0005


class OutOfSyncError(InputError):
    """The document's text may differ from the editor's (see the module docstring)."""


class DocumentStore:
    def __init__(self, ring: SnippetRing, parse_budget_s: float | None = PARSE_BUDGET_S):
        self.ring = ring
        self.parse_budget_s = parse_budget_s
        self._docs: dict[str, Document] = {}
        self._out_of_sync: dict[str, str] = {}  # uri -> why
        self.last_change = time.monotonic()

    def open(self, item: types.TextDocumentItem) -> Document:
        doc = Document(item.uri, item.language_id, item.text, version=item.version,
                       parse_budget_s=self.parse_budget_s)
        self._docs[item.uri] = doc
        self._out_of_sync.pop(item.uri, None)
        self.ring.forget(item.uri)  # chunks of an earlier version of this document
        self.ring.add(item.uri, doc.text, 0)
        return doc

    def change(self, params: types.DidChangeTextDocumentParams) -> Document:
        """Apply a didChange's content changes in order, all or none. Raises `OutOfSyncError`
        when a change does not fit the text (only for the notification that breaks the sync:
        later partial changes to an out-of-sync document are skipped quietly)."""
        uri = params.text_document.uri
        doc = self._open_document(uri)
        in_sync = was_in_sync = uri not in self._out_of_sync
        before = doc.text
        applied = False
        last_line = 0
        try:
            for change in params.content_changes:
                if isinstance(change, types.TextDocumentContentChangePartial):
                    if not in_sync:  # its range refers to a text we do not have
                        continue
                    start, end = change.range.start, change.range.end
                    doc.apply_change(((start.line, start.character), (end.line, end.character)), change.text)
                    last_line = start.line
                else:
                    doc.apply_change(None, change.text)
                    in_sync = True
                applied = True
        except PositionError as err:
            if applied:  # never half-applied: back to the text before this notification
                doc.apply_change(None, before)
            in_sync = False
            self._out_of_sync[uri] = (f"a change at version {params.text_document.version} did not fit the "
                                      f"document ({err})")
            if was_in_sync:
                raise OutOfSyncError(self._out_of_sync_message(uri)) from None
        finally:
            # In-flight work on the old text sees a new version and drops its answer.
            doc.version = params.text_document.version
            self.last_change = time.monotonic()
        if in_sync:
            self._out_of_sync.pop(uri, None)
            self.ring.add(uri, doc.text, last_line)
        return doc

    def close(self, uri: str) -> None:
        self._docs.pop(uri, None)
        self._out_of_sync.pop(uri, None)
        self.ring.forget(uri)  # a closed file's code no longer goes into other files' prompts

    def texts(self, max_chars: int = 1_000_000) -> list[tuple[str, str]]:
        """(uri, text) of every open document small enough to search (prompt-lookup drafts)."""
        return [(uri, doc.text) for uri, doc in self._docs.items() if len(doc.text) <= max_chars]

    def pending_parses(self) -> list[Document]:
        return [doc for doc in self._docs.values() if doc.parse_pending]

    def get(self, uri: str) -> Document:
        """The open, in-sync document at `uri`; raises `InputError` (`OutOfSyncError`) otherwise."""
        doc = self._open_document(uri)
        if uri in self._out_of_sync:
            raise OutOfSyncError(self._out_of_sync_message(uri))
        return doc

    def is_current(self, doc: Document, version: int) -> bool:
        """Whether `doc` is still the open, in-sync document for its uri at `version`: an
        offset into it computed before an `await` is still valid."""
        return (self._docs.get(doc.uri) is doc and doc.version == version
                and doc.uri not in self._out_of_sync)

    def _open_document(self, uri: str) -> Document:
        doc = self._docs.get(uri)
        if doc is None:
            raise InputError(f"unknown document {uri}: it was never opened (textDocument/didOpen)")
        return doc

    def _out_of_sync_message(self, uri: str) -> str:
        return (f"{uri} is out of sync with the editor: {self._out_of_sync[uri]}; dg-lsp ignores it "
                "until the file is reopened or its whole text is sent again")

    def offset(self, doc: Document, position: types.Position) -> int:
        try:
            return doc.offset_at(position.line, position.character)
        except PositionError as err:
            raise InputError(str(err)) from None

    def position(self, doc: Document, offset: int) -> types.Position:
        try:
            line, character = doc.position_at(offset)
        except PositionError as err:
            raise InputError(str(err)) from None
        return types.Position(line=line, character=character)


class IdleParser:
    """Finishes unfinished parses once no change has come for `idle_s`, in slices of
    `slice_s` so that incoming messages wait at most one slice. Waiting for a pause keeps
    the parser from competing with the model while the user types: every keystroke would
    start the parse over anyway."""

    def __init__(self, store: DocumentStore, idle_s: float = 0.1, slice_s: float = 0.002):
        self.store = store
        self.idle_s = idle_s
        self.slice_s = slice_s
        self._task: asyncio.Task | None = None

    def poke(self) -> None:
        """Call after a change or a request that may have left a parse unfinished."""
        if (self._task is None or self._task.done()) and self.store.pending_parses():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while docs := self.store.pending_parses():
            quiet = time.monotonic() - self.store.last_change
            if quiet < self.idle_s:
                await asyncio.sleep(self.idle_s - quiet)
                continue
            docs[0].finish_parse(self.slice_s)
            await asyncio.sleep(0)  # let waiting messages in between slices
