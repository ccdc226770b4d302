"""What a cut prefix keeps from the text it removed: the file's imports and the header lines
of the definitions that enclose the cut, so the model still knows the names in scope and
which function it is writing."""

from __future__ import annotations

from dataclasses import dataclass

from tree_sitter import Node

from .document import Document
from .tree_queries import node_end, node_start

SCAN_NODES = 128  # imports are looked for among the first top-level statements only
GIVE_UP_AFTER = 32  # ... and no further than this many statements past the last one found


@dataclass(frozen=True)
class Kept:
    start: int  # offset in the document of what this text was copied from
    text: str  # whole lines, without the final line break


def imports(doc: Document, max_chars: int) -> list[Kept]:
    """The import statements at the head of the file, at most `max_chars` characters."""
    tree, grammar = doc.tree, doc.grammar
    if tree is None:
        return []
    root = tree.root_node
    out, used, since_last = [], 0, 0
    for i in range(min(root.child_count, SCAN_NODES)):
        node = root.child(i)
        if node.type in grammar.definition_types or since_last > GIVE_UP_AFTER:
            break
        if not _is_import(doc, node, grammar):
            since_last += 1
            continue
        since_last = 0
        start = doc.line_start(node.start_point[0])
        text = doc.text[start : node_end(doc, node)]
        if used + len(text) + 1 > max_chars:
            break
        out.append(Kept(start, text))
        used += len(text) + 1
    return out


def enclosing_headers(doc: Document, cut: int) -> list[Kept]:
    """Header lines (signature up to the body) of each definition that starts before `cut`
    and contains it, outermost first."""
    tree, grammar = doc.tree, doc.grammar
    if tree is None or cut <= 0:
        return []
    at = doc.byte_of(cut)
    cut_line = doc.line_of(cut)
    node = tree.root_node.descendant_for_byte_range(at, at + 1)
    out = []
    while node is not None:
        if node.type in grammar.definition_types and node.start_byte < at:
            first = node.start_point[0]
            last = min(_header_last_line(doc, node), cut_line - 1)
            if last >= first:
                start = doc.line_start(first)
                out.append(Kept(start, doc.text[start : doc.line_end(last)]))
        node = node.parent
    out.reverse()
    return out


def _header_last_line(doc: Document, node: Node) -> int:
    """The last line of a definition's header: the line of its body's `{`, or the line
    before an indented body."""
    body = node.child_by_field_name("body")
    if body is None:
        return node.start_point[0]
    body_line = body.start_point[0]
    if doc.text.startswith("{", node_start(doc, body)):
        return body_line
    return max(node.start_point[0], body_line - 1)


def _is_import(doc: Document, node: Node, grammar) -> bool:
    if node.type in grammar.import_types:
        return True
    if node.type in grammar.require_statements and node.end_byte - node.start_byte < 400:
        return "require" in doc.node_text(node)
    return False
