"""Code actions are asked on every selection change, so they never wait for a full parse:
they read the budgeted tree (the last one, with the edits since applied), and the parse is
left for the idle parser."""

from lsprotocol import types

from dg_lsp.context.ring import SnippetRing
from dg_lsp.server.commands import CommandService
from dg_lsp.server.documents import DocumentStore

from ..context.samples import PYTHON

URI = "file:///work/inventory.py"


def test_code_actions_on_an_unfinished_parse_do_not_parse_to_the_end(monkeypatch):
    store = DocumentStore(SnippetRing(), parse_budget_s=0.0)  # a request parses nothing
    text = PYTHON * 40
    doc = store.open(types.TextDocumentItem(uri=URI, language_id="python", version=1, text=text))
    doc.parsed_tree()  # the first parse, as the idle parser does it
    top = types.Position(line=0, character=0)
    store.change(types.DidChangeTextDocumentParams(  # the rest of the file becomes a string: a long re-parse
        text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
        content_changes=[types.TextDocumentContentChangePartial(range=types.Range(top, top), text='"""\n')]))
    assert doc.parse_pending

    def full_parse():
        raise AssertionError("a code action parsed the whole document")

    monkeypatch.setattr(doc, "parsed_tree", full_parse)
    line = next(i for i, row in enumerate(doc.text.splitlines()) if "def add(self" in row) + 1
    at = types.Position(line=line, character=8)
    actions = CommandService(store, host=None, worker=None).code_actions(URI, types.Range(at, at))
    # The edited previous tree still shows the method around the cursor.
    assert {a.title for a in actions} == {"Write docstring (dg-lsp)", "Generate test (dg-lsp)"}
    assert doc.parse_pending  # still unfinished: left for the idle parser
