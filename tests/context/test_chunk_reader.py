"""Parsing through a read callback (as budgeted re-parses must) leaves no reference behind on
the chunks it read: py-tree-sitter 0.25/0.26 keep one each, which leaked ~70 KB a keystroke."""

import sys

import tree_sitter_python
from tree_sitter import Language, Parser

from dg_lsp.context.chunk_reader import CHUNK_BYTES, ChunkReader, binding_keeps_chunks
from dg_lsp.context.document import Document


def test_the_chunks_of_a_parse_are_left_with_no_extra_reference():
    source = ("value = compute(1)\n" * 10_000).encode()  # several chunks
    assert len(source) > 2 * CHUNK_BYTES
    reader = ChunkReader(source)
    tree = Parser(Language(tree_sitter_python.language())).parse(reader)
    assert not tree.root_node.has_error
    chunks = [c for c in reader._handed_out if len(c) > 1]  # b"" and one-byte objects are shared constants
    assert len(chunks) >= 3
    reader.release()
    # Left: what a fresh object in the same list has (the list, the loop variable, the argument).
    control = [bytes(bytearray(b"z"))]
    expected = [sys.getrefcount(c) for c in control][0]
    assert [sys.getrefcount(c) for c in chunks] == [expected] * len(chunks)


def test_the_probe_matches_the_installed_binding():
    """Without the compensation a chunk keeps an extra reference exactly when the probe says so."""
    chunk = bytes(bytearray(b"y = 2\n" * 8))
    before = sys.getrefcount(chunk)
    Parser(Language(tree_sitter_python.language())).parse(lambda byte, _p: chunk if byte == 0 else b"")
    kept = sys.getrefcount(chunk) - before
    assert kept == (1 if binding_keeps_chunks() else 0)


def test_budgeted_re_parses_still_give_the_full_parse():
    text = "def f(x):\n    return x\n" * 2000
    doc = Document("file:///a.py", "python", text, parse_budget_s=0.0001)
    for i in range(20):
        doc.apply_change(((4000, 0), (4000, 0)), f"y{i} = {i}\n")
        doc.tree  # budgeted: may stop early and resume
    while not doc.finish_parse(0.01):
        pass
    assert str(doc.tree.root_node) == str(Parser(doc.grammar.language).parse(doc.text.encode()).root_node)
