"""Keep a completion only as far as it leaves a clean buffer clean.

Re-parsing a 5,000-line file costs milliseconds even incrementally, so the check parses
only the smallest statement around the cursor, with the completion inserted, made to
parse on its own: Python's lines are dedented, a Rust or Go statement from a function
body is wrapped in a function, a JavaScript class member in a class (each language's spec
names its wrappers). Errors a completion brings are local, so that statement shows them.

The work per completion (one per candidate of a request) is bounded: a statement over
REGION_LIMIT, or a completion over MAX_TEXT_CHARS or MAX_TEXT_LINES, goes unchecked; a
failing completion is cut by trying a few prefixes one line shorter each (the usual case:
the canvas ran out mid-statement; stepping one line at a time gets past a line that opens
a block, which never parses without its body), then by a binary search over the remaining
line boundaries. So at most MAX_PARSES parses, of at most REGION_LIMIT + MAX_TEXT_CHARS
characters each.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from tree_sitter import Node, Parser

from ..languages import LanguageSpec
from .document import Document
from .tree_queries import last_child_starting_by

REGION_LIMIT = 16 * 1024  # characters; a larger enclosing statement goes unchecked
# A longer completion (far beyond what a 256-token canvas writes) goes unchecked.
MAX_TEXT_CHARS = 8 * 1024
MAX_TEXT_LINES = 256
TAIL_ATTEMPTS = 4  # prefixes tried one line shorter each before the binary search
# The whole text, the tail, the binary search, the statement without the text.
MAX_PARSES = 1 + TAIL_ATTEMPTS + (MAX_TEXT_LINES - TAIL_ATTEMPTS - 1).bit_length() + 1

_parsers = threading.local()


@dataclass(frozen=True)
class _Region:
    start: int
    end: int
    dedent: str  # removed from the start of every line (Python)
    wrap: tuple[str, str]


def keep_parsable(doc: Document, offset: int, text: str) -> str | None:
    """`text` if inserting it at `offset` adds no syntax error, else a prefix of whole lines
    that adds none (the longest one, unless the error is more than TAIL_ATTEMPTS lines
    from the end), else None. Unchecked (returned as is) when the buffer had errors already
    or the enclosing statement or the text is too large."""
    tree = doc.tree
    lines = text.split("\n")
    if tree is None or tree.root_node.has_error or len(text) > MAX_TEXT_CHARS or len(lines) > MAX_TEXT_LINES:
        return text
    region = _region(doc, offset)
    if region is None or region.end - region.start > REGION_LIMIT:
        return text
    before, after = doc.text[region.start : offset], doc.text[offset : region.end]
    parser = _parser(doc.grammar)

    def clean(n: int) -> bool:  # the first n lines leave the statement parsing
        return _parses(parser, before + "\n".join(lines[:n]) + after, region)

    if clean(len(lines)):
        return text
    kept = _longest_clean_prefix(len(lines), clean)
    candidate = "\n".join(lines[:kept])
    if candidate.strip():
        return candidate
    if not _parses(parser, before + after, region):
        return text  # the statement alone does not parse cleanly: no verdict
    return None


def _longest_clean_prefix(count: int, clean) -> int:
    """How many of `count` lines to keep, given that all of them do not parse: the first
    length found clean stepping down from the end, TAIL_ATTEMPTS at most, then a binary
    search below (it assumes a clean prefix's own prefixes are clean, which a line opening
    a block breaks, so it may settle on a shorter prefix than the longest; never a bad one)."""
    bad = count
    for _ in range(TAIL_ATTEMPTS):
        if bad <= 1:
            return 0
        bad -= 1
        if clean(bad):
            return bad
    good = 0  # clean, or nothing kept
    while bad - good > 1:
        middle = (good + bad) // 2
        if clean(middle):
            good = middle
        else:
            bad = middle
    return good


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
    return _Region(start, end, dedent, grammar.guard_wrappers.get(parent.type, ("", "")))


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


def _parser(grammar: LanguageSpec) -> Parser:
    """One parser per grammar and thread: parsers are not safe to share between threads."""
    cache = getattr(_parsers, "by_name", None)
    if cache is None:
        cache = _parsers.by_name = {}
    parser = cache.get(grammar.name)
    if parser is None:
        parser = cache[grammar.name] = grammar.new_parser()
    return parser
