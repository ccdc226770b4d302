"""Open documents, kept in step with the editor's incremental changes.

Each is a `context.Document`: its text plus a tree-sitter tree re-parsed incrementally on
every change. Chunks around each edit feed the snippet ring, so completions in one file
see code recently edited in others.
"""

from __future__ import annotations

from lsprotocol import types

from ..context.document import Document, PositionError
from ..context.ring import SnippetRing
from ..errors import InputError


class DocumentStore:
    def __init__(self, ring: SnippetRing):
        self.ring = ring
        self._docs: dict[str, Document] = {}

    def open(self, item: types.TextDocumentItem) -> Document:
        doc = Document(item.uri, item.language_id, item.text, version=item.version)
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
        return doc

    def close(self, uri: str) -> None:
        self._docs.pop(uri, None)

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
