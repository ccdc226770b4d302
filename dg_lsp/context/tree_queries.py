"""Questions the context layer asks of a document's syntax tree, answered in `.text` offsets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tree_sitter import Node

if TYPE_CHECKING:
    from .document import Document


def node_start(doc: Document, node: Node) -> int:
    return doc.offset_of_point(*node.start_point)


def node_end(doc: Document, node: Node) -> int:
    return doc.offset_of_point(*node.end_point)


def starts_statement(doc: Document, line: int, indent: int) -> bool:
    """Whether line `line` (first non-blank character at `indent` characters) begins a
    statement or definition: a named node that starts there and sits directly in a block
    (or in an ERROR node, so that half-typed code elsewhere does not change the answer)."""
    tree, grammar = doc.tree, doc.grammar
    if tree is None:
        return True
    at = doc.byte_of(doc.line_start(line) + indent)
    node = tree.root_node.descendant_for_byte_range(at, at + 1)
    if node is None or node.start_byte != at:
        return False  # inside a token that spans lines: a string, a comment
    while (parent := node.parent) is not None and parent.start_byte == at:
        node = parent
    if not node.is_named:
        return False  # a closing `}` or `end`
    parent = node.parent
    return parent is None or parent.type in grammar.block_types or parent.is_error


def last_token(doc: Document, line: int) -> Node | None:
    """The last token on `line` that is not a comment."""
    tree = doc.tree
    if tree is None:
        return None
    start = doc.line_start(line)
    text = doc.line_text(line)
    end = len(text.rstrip())
    while end > 0:
        at = doc.byte_of(start + end - 1)
        node = tree.root_node.descendant_for_byte_range(at, at + 1)
        if node is None:
            return None
        if "comment" not in node.type:
            return node
        comment_start = node_start(doc, node) - start
        if comment_start <= 0 or comment_start >= end:
            return None
        end = len(text[:comment_start].rstrip())
    return None


def last_child_starting_by(node: Node, at: int) -> int:
    """Index of the last child of `node` starting at or before byte `at`; -1 if none.
    (A binary search: `Node.first_child_for_byte` crashes when no child qualifies.)"""
    low, high = 0, node.child_count
    while low < high:
        middle = (low + high) // 2
        if node.child(middle).start_byte <= at:
            low = middle + 1
        else:
            high = middle
    return low - 1
