"""The server's document store: budgeted parses on requests, the rest while the editor is idle."""

import asyncio

from lsprotocol import types

from dg_lsp.context.ring import SnippetRing
from dg_lsp.server.documents import DocumentStore, IdleParser

from ..context.samples import PYTHON

URI = "file:///big.py"


def _change(store: DocumentStore, version: int, line: int, text: str) -> None:
    at = types.Position(line=line, character=0)
    store.change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=version),
        content_changes=[types.TextDocumentContentChangePartial(range=types.Range(at, at), text=text)]))


def test_the_idle_parser_finishes_a_parse_once_typing_pauses():
    async def scenario():
        store = DocumentStore(SnippetRing(), parse_budget_s=0.0)
        idle = IdleParser(store, idle_s=0.05, slice_s=0.001)
        doc = store.open(types.TextDocumentItem(uri=URI, language_id="python", version=1, text=PYTHON * 40))
        idle.poke()
        await asyncio.sleep(0.01)
        assert doc.parse_pending, "nothing is parsed before the pause"
        await asyncio.sleep(0.5)
        assert not doc.parse_pending and not doc.tree.root_node.has_error  # the first parse, while idle

        _change(store, 2, 0, '"""\n')  # the rest of the file becomes a string
        doc.tree  # a request: a zero budget leaves the edited previous tree
        assert doc.parse_pending
        idle.poke()
        for version in range(3, 6):  # typing goes on: nothing is parsed meanwhile
            await asyncio.sleep(0.02)
            _change(store, version, 1, "x")
            idle.poke()
            assert doc.parse_pending
        await asyncio.sleep(0.5)
        assert not doc.parse_pending
        assert doc.tree.root_node.has_error  # the unclosed docstring, now seen

    asyncio.run(scenario())
