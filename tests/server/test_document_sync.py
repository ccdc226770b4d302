"""The document store keeps each document equal to the editor's, or says it is not: a change
that does not fit is rejected whole, and the document stays out of sync until a full text."""

import pytest
from lsprotocol import types

from dg_lsp.context.ring import SnippetRing
from dg_lsp.errors import InputError
from dg_lsp.server.documents import DocumentStore, OutOfSyncError

URI = "file:///work/a.py"
TEXT = "def f(a):\n    return a\n"


def partial(start, end, text):
    return types.TextDocumentContentChangePartial(
        range=types.Range(types.Position(*start), types.Position(*end)), text=text)


def change(store, version, *changes):
    return store.change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=version), content_changes=list(changes)))


@pytest.fixture
def store():
    store = DocumentStore(SnippetRing())
    store.open(types.TextDocumentItem(uri=URI, language_id="python", version=1, text=TEXT))
    return store


def test_a_change_that_does_not_fit_is_rejected_whole(store):
    doc = store.get(URI)
    with pytest.raises(OutOfSyncError, match="line 7 is outside the document"):
        change(store, 2, partial((1, 12), (1, 12), " + 1"), partial((0, 0), (0, 3), "async def"),
               partial((7, 0), (7, 0), "oops"))
    assert doc.text == TEXT  # the first two changes were undone, not kept
    assert doc.version == 2  # work started on version 1 sees that it is stale
    with pytest.raises(OutOfSyncError, match="out of sync with the editor"):
        store.get(URI)
    assert not store.is_current(doc, 2)


def test_an_out_of_sync_document_skips_partial_changes_quietly_until_a_full_text(store):
    old = store.get(URI)
    with pytest.raises(OutOfSyncError):
        change(store, 2, partial((0, 4), (0, 99), "g"))  # past the end of line 0
    change(store, 3, partial((0, 4), (0, 5), "g"))  # would fit, but is relative to a text we lack
    assert old.text == TEXT
    with pytest.raises(OutOfSyncError):
        store.get(URI)
    doc = change(store, 4, types.TextDocumentContentChangeWholeDocument(text="x = 1\n"),
                 partial((0, 4), (0, 5), "2"))
    assert store.get(URI) is doc and doc.text == "x = 2\n" and store.is_current(doc, 4)


def test_a_reopen_brings_it_back_and_a_close_forgets_it(store):
    with pytest.raises(OutOfSyncError):
        change(store, 2, partial((5, 0), (5, 0), "x"))
    store.open(types.TextDocumentItem(uri=URI, language_id="python", version=7, text="y = 2\n"))
    assert store.get(URI).text == "y = 2\n"
    store.close(URI)
    with pytest.raises(InputError, match="never opened"):
        store.get(URI)


def test_a_closed_document_leaves_the_snippet_ring():
    ring = SnippetRing()
    store = DocumentStore(ring)
    for uri, text in (("file:///w/a.py", "import secrets_of_a\n"), ("file:///w/b.py", "import b\n"),
                      ("file:///w/c.py", "c = 3\n")):
        store.open(types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text))
    assert "secrets_of_a" in "".join(s.text for s in ring.snippets("file:///w/c.py", 1000))
    store.close("file:///w/a.py")
    texts = [s.text for s in ring.snippets("file:///w/c.py", 1000)]
    assert texts == ["import b\n"]
