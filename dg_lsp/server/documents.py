"""Open documents, kept in step with the editor's incremental changes.

Each is a `context.Document`: its text plus a tree-sitter tree re-parsed incrementally on
every change. A request re-parses for at most `PARSE_BUDGET_S` and otherwise plans on the
last tree with the edits applied to it; the rest of the parse runs while the editor is idle
(`IdleParser`). Chunks around each edit feed the snippet ring, so completions in one file
see code recently edited in others.
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


class DocumentStore:
    def __init__(self, ring: SnippetRing, parse_budget_s: float | None = PARSE_BUDGET_S):
        self.ring = ring
        self.parse_budget_s = parse_budget_s
        self._docs: dict[str, Document] = {}
        self.last_change = time.monotonic()

    def open(self, item: types.TextDocumentItem) -> Document:
        doc = Document(item.uri, item.language_id, item.text, version=item.version,
                       parse_budget_s=self.parse_budget_s)
        self._docs[item.uri] = doc
        self.ring.add(item.uri, doc.text, 0)
        return doc

    def change(self, params: types.DidChangeTextDocumentParams) -> Document:
        doc = self.get(params.text_document.uri)
        last_line = 0
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                start, end = change.range.start, change.range.end
                doc.apply_change(((start.line, start.character), (end.line, end.character)), change.text)
                last_line = start.line
            else:
                doc.apply_change(None, change.text)
        doc.version = params.text_document.version
        self.ring.add(doc.uri, doc.text, last_line)
        self.last_change = time.monotonic()
        return doc

    def close(self, uri: str) -> None:
        self._docs.pop(uri, None)

    def pending_parses(self) -> list[Document]:
        return [doc for doc in self._docs.values() if doc.parse_pending]

    def get(self, uri: str) -> Document:
        doc = self._docs.get(uri)
        if doc is None:
            raise InputError(f"unknown document {uri}: it was never opened (textDocument/didOpen)")
        return doc

    def offset(self, doc: Document, position: types.Position) -> int:
        try:
            return doc.offset_at(position.line, position.character)
        except PositionError as err:
            raise InputError(str(err)) from None

    def position(self, doc: Document, offset: int) -> types.Position:
        line, character = doc.position_at(offset)
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
