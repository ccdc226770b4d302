"""Keep a completion only as far as it leaves a clean buffer clean.

Re-parsing a 5,000-line file costs milliseconds even incrementally, so the check parses
only the smallest statement around the cursor, with the completion inserted, made to
parse on its own: Python's lines are dedented, a Rust or Go statement from a function
body is wrapped in a function, a JavaScript class member in a class. Errors a completion
brings are local, so that statement shows them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from tree_sitter import Node, Parser

from .document import Document
from .languages import Grammar
from .tree_queries import last_child_starting_by

REGION_LIMIT = 16 * 1024  # characters; a larger enclosing statement goes unchecked
MAX_ATTEMPTS = 16  # shorter versions tried, one line less each

# (language, parent of the statement) -> what makes the statement parse alone
_WRAPPERS = {
    ("rust", "block"): ("fn _dg() {\n", "\n}\n"),
    ("go", "block"): ("func _dg() {\n", "\n}\n"),
    ("go", "statement_list"): ("func _dg() {\n", "\n}\n"),
    **{(name, "class_body"): ("class _Dg {\n", "\n}\n") for name in ("javascript", "typescript", "tsx")},
}

_parsers = threading.local()


@dataclass(frozen=True)
class _Region:
    start: int
    end: int
    dedent: str  # removed from the start of every line (Python)
    wrap: tuple[str, str]


def keep_parsable(doc: Document, offset: int, text: str) -> str | None:
    """`text` if inserting it at `offset` adds no syntax error, else its longest prefix of
    whole lines that adds none, else None. Unchecked (returned as is) when the buffer had
    errors already or the enclosing statement is too large."""
    tree = doc.tree
    if tree is None or tree.root_node.has_error:
        return text
    region = _region(doc, offset)
    if region is None or region.end - region.start > REGION_LIMIT:
        return text
    before, after = doc.text[region.start : offset], doc.text[offset : region.end]
    parser = _parser(doc.grammar)
    lines = text.split("\n")
    for n in range(len(lines), max(0, len(lines) - MAX_ATTEMPTS), -1):
        candidate = "\n".join(lines[:n])
        if not candidate.strip():
            break
        if _parses(parser, before + candidate + after, region):
            return candidate
    if not _parses(parser, before + after, region):
        return text  # the statement alone does not parse cleanly: no verdict
    return None


def _region(doc: Document, offset: int) -> _Region | None:
    """The smallest statement containing `offset`, or ending before it with only whitespace
    between (the completion then extends it)."""
    grammar = doc.grammar
    at = doc.byte_of(offset)
    node = doc.tree.root_node.descendant_for_byte_range(at, at)
    while node is not None:
        if node.type in grammar.block_types or node.parent is None:
            i = last_child_starting_by(node, at - 1)
            child = node.child(i) if i >= 0 else None
            if child is not None and child.is_named and _reaches(doc, child, offset):
                return _region_of(doc, child, node)
        elif node.parent.type in grammar.block_types and node.start_byte < at:
            return _region_of(doc, node, node.parent)
        node = node.parent
    return None


def _reaches(doc: Document, node: Node, offset: int) -> bool:
    end = doc.offset_of_point(*node.end_point)
    return end >= offset or not doc.text[end:offset].strip()


def _region_of(doc: Document, node: Node, parent: Node) -> _Region:
    grammar = doc.grammar
    first_line = node.start_point[0]
    start = doc.line_start(first_line)
    end = max(doc.offset_of_point(*node.end_point), 0)
    dedent = ""
    if grammar.style == "indent":
        line = doc.line_text(first_line)
        dedent = line[: len(line) - len(line.lstrip(" \t"))]
    return _Region(start, end, dedent, _WRAPPERS.get((grammar.name, parent.type), ("", "")))


def _parses(parser: Parser, text: str, region: _Region) -> bool:
    if region.dedent:
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if line.startswith(region.dedent):
                lines[i] = line[len(region.dedent) :]
            elif line.strip():
                return False  # the completion leaves the statement's indentation
        text = "\n".join(lines)
    opening, closing = region.wrap
    source = (opening + text + closing).encode("utf-8", "surrogatepass")
    return not parser.parse(source).root_node.has_error


def _parser(grammar: Grammar) -> Parser:
    """One parser per grammar and thread: parsers are not safe to share between threads."""
    cache = getattr(_parsers, "by_name", None)
    if cache is None:
        cache = _parsers.by_name = {}
    parser = cache.get(grammar.name)
    if parser is None:
        parser = cache[grammar.name] = grammar.new_parser()
    return parser
