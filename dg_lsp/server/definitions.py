"""The function at the cursor, found in the document's tree-sitter tree, and how a doc
comment is written for it in its language. Which nodes are functions, and how each
language writes its doc comments, come from the language's spec (`dg_lsp.languages`)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from string import Template

from ..context.document import Document
from ..languages import LanguageSpec


@dataclass
class DocStyle:
    opening: str  # text before the model's words (the prompt's prefix ends with it)
    closing: str  # text after them (the prompt's suffix starts with it)
    line_prefix: str  # put before each further line of the model's words
    end_marker: str  # the model's words stop here

    def render(self, words: str) -> str:
        words = words.split(self.end_marker)[0].strip() or "TODO: describe."
        first, *rest = words.splitlines()
        marker = self.line_prefix.strip()  # a model may repeat the comment marker on its lines
        if marker:
            rest = [line.strip().removeprefix(marker).strip() for line in rest]
        else:  # indentation-only prefix: keep the lines' relative indentation
            rest = textwrap.dedent("\n".join(rest)).splitlines()
        lines = [first.strip()] + [line.rstrip() for line in rest]
        return self.opening + "\n".join(
            (self.line_prefix + line) if i and line else line for i, line in enumerate(lines)
        ) + self.closing


@dataclass
class Definition:
    spec: LanguageSpec
    name: str
    start: int  # offset of the line where the definition (with its wrapper) starts
    end: int  # offset just after the definition
    indent: str  # indentation of that line
    body_start: int | None  # docstrings in the body (Python): offset of the line of the first body statement

    @property
    def language(self) -> str:
        return self.spec.name

    @property
    def docstring_offset(self) -> int | None:
        """Where the doc comment goes: a docstring in the body opens it (None when the body
        is not on lines of its own); other languages' doc comments precede the definition."""
        return self.body_start if self.spec.doc_comment.in_body else self.start

    def docstring_style(self) -> DocStyle:
        comment = self.spec.doc_comment
        indent = self.indent
        if comment.in_body:  # one step deeper than the definition, in its own kind of whitespace
            indent += "\t" if indent.startswith("\t") else self.spec.default_indent
        opening, closing, line_prefix = (Template(part).substitute(indent=indent)
                                         for part in (comment.opening, comment.closing, comment.line_prefix))
        return DocStyle(opening, closing, line_prefix, comment.end_marker)


def enclosing_definition(doc: Document, offset: int, full_parse: bool = True) -> Definition | None:
    """The innermost function-like definition containing `offset`, or None. A command is
    worth a full parse; `full_parse=False` (code actions, asked on every selection change)
    takes the budgeted `doc.tree`, which may be the last tree with the edits since applied."""
    tree = doc.parsed_tree() if full_parse else doc.tree
    spec = doc.grammar
    if tree is None or spec is None:
        return None
    point = _point_at(doc, offset)
    node = tree.root_node.descendant_for_point_range(point, point)
    while node is not None and node.type not in spec.function_types:
        node = node.parent
    if node is None:
        return None
    # The doc comment goes above an `export` or a decorator.
    outer = node.parent if node.parent is not None and node.parent.type in spec.definition_wrappers else node
    start = doc.line_start(outer.start_point.row)
    line = doc.line_text(outer.start_point.row)
    name_node = node.child_by_field_name("name")
    name = doc.node_text(name_node) if name_node is not None else "function"
    body_start = None
    body = node.child_by_field_name("body")
    if spec.doc_comment.in_body and body is not None and body.start_point.row > node.start_point.row:
        body_start = doc.line_start(body.start_point.row)
    return Definition(spec, name, start, doc.offset_of_point(*outer.end_point),
                      line[: len(line) - len(line.lstrip())], body_start)


def source_of(doc: Document, definition: Definition) -> str:
    return doc.text[definition.start : definition.end]


def _point_at(doc: Document, offset: int) -> tuple[int, int]:
    """Character offset -> tree-sitter point (row, byte column)."""
    line = doc.line_of(offset)
    return line, doc.byte_of(offset) - doc.byte_of(doc.line_start(line))
