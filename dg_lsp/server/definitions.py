"""The function at the cursor, found in the document's tree-sitter tree, and how a doc
comment is written for it in its language."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from ..context.document import Document

# Node types of function-like definitions, per grammar name.
FUNCTION_NODES = {
    "python": ("function_definition",),
    "javascript": ("function_declaration", "method_definition", "generator_function_declaration"),
    "typescript": ("function_declaration", "method_definition", "generator_function_declaration"),
    "tsx": ("function_declaration", "method_definition", "generator_function_declaration"),
    "rust": ("function_item",),
    "go": ("function_declaration", "method_declaration"),
    "lua": ("function_declaration",),
}
# Wrappers whose start is where a doc comment goes (`export function`, `@decorator def`).
WRAPPERS = ("export_statement", "decorated_definition")


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
    language: str
    name: str
    start: int  # offset of the line where the definition (with its wrapper) starts
    end: int  # offset just after the definition
    indent: str  # indentation of that line
    body_start: int | None  # Python: offset of the line of the first body statement

    @property
    def docstring_offset(self) -> int | None:
        """Where the doc comment goes: a Python docstring opens the body (None when the body
        is not on lines of its own); other languages' doc comments precede the definition."""
        return self.body_start if self.language == "python" else self.start

    def docstring_style(self) -> DocStyle:
        i = self.indent
        if self.language == "python":
            body = _body_indent(self)
            return DocStyle(f'{body}"""', '"""\n', body, '"""')
        if self.language in ("javascript", "typescript", "tsx"):
            return DocStyle(f"{i}/**\n{i} * ", f"\n{i} */\n", f"{i} * ", "*/")
        marker = {"rust": "/// ", "go": "// ", "lua": "--- "}[self.language]
        return DocStyle(f"{i}{marker}", "\n", f"{i}{marker}", "\n\n")


def _body_indent(definition: Definition) -> str:
    return definition.indent + "    " if not definition.indent.startswith("\t") else definition.indent + "\t"


def enclosing_definition(doc: Document, offset: int) -> Definition | None:
    """The innermost function-like definition containing `offset`, or None."""
    tree = doc.parsed_tree()  # a command is worth a full parse
    if tree is None or doc.grammar is None or doc.grammar.name not in FUNCTION_NODES:
        return None
    point = _point_at(doc, offset)
    node = tree.root_node.descendant_for_point_range(point, point)
    kinds = FUNCTION_NODES[doc.grammar.name]
    while node is not None and node.type not in kinds:
        node = node.parent
    if node is None:
        return None
    outer = node.parent if node.parent is not None and node.parent.type in WRAPPERS else node
    start = doc.line_start(outer.start_point.row)
    line = doc.line_text(outer.start_point.row)
    name_node = node.child_by_field_name("name")
    name = doc.node_text(name_node) if name_node is not None else "function"
    body_start = None
    body = node.child_by_field_name("body")
    if doc.grammar.name == "python" and body is not None and body.start_point.row > node.start_point.row:
        body_start = doc.line_start(body.start_point.row)
    return Definition(doc.grammar.name, name, start, doc.offset_of_point(*outer.end_point),
                      line[: len(line) - len(line.lstrip())], body_start)


def source_of(doc: Document, definition: Definition) -> str:
    return doc.text[definition.start : definition.end]


def _point_at(doc: Document, offset: int) -> tuple[int, int]:
    """Character offset -> tree-sitter point (row, byte column)."""
    line = doc.line_of(offset)
    return line, doc.byte_of(offset) - doc.byte_of(doc.line_start(line))
