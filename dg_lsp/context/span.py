"""What to fill at a cursor: the rest of the line, or a whole block body.

Block mode is for an empty line right after a block opener (Python `...:`, `{` in brace
languages, Lua `then`/`do`/`function (...)`): the user is about to write a body. Anything
else fills the rest of the current line. Plain text always gets line mode.

The opener is found with the syntax tree; while the tree lags behind the text (a re-parse
over the server's budget, see `Document`), the opener line is judged by its text instead,
since the tree may not know the line at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .document import Document
from .indentation import columns, leading_whitespace
from .tree_queries import last_token

LOOK_BACK_LINES = 8  # blank lines allowed between the opener and the cursor

# A ':' inside these is an expression's, not a block opener's.
_PYTHON_NON_BLOCK_COLONS = frozenset({
    "dictionary", "pair", "slice", "subscript", "lambda", "lambda_parameters", "typed_parameter",
    "typed_default_parameter", "format_specifier", "interpolation", "dictionary_comprehension",
})
_LUA_OPENERS = frozenset({"then", "do", "else", "repeat", "{"})

# Text rules for when the tree lags: what an opener line looks like, per grammar style.
_PYTHON_BLOCK_LINE = re.compile(
    r"^\s*(?:async\s+)?(?:if|elif|else|for|while|try|except|finally|with|def|class|match|case)\b.*:\s*(?:#.*)?$")
_BRACE_BLOCK_LINE = re.compile(r"\{\s*(?://.*)?$")
_LUA_BLOCK_LINE = re.compile(r"(?:\b(?:then|do|else|repeat)|\{|\bfunction\b.*\))\s*(?:--.*)?$")


@dataclass(frozen=True)
class Span:
    mode: str  # "line" or "block"
    indent: str  # indentation of the completion's lines (block mode: the body's)
    block_indent: str  # the opener line's indentation ("" in line mode)


def choose_span(doc: Document, offset: int, unit: str) -> Span:
    line = doc.line_of(offset)
    text = doc.line_text(line)
    before = text[: offset - doc.line_start(line)]
    if text.strip() or doc.grammar is None:
        return Span("line", leading_whitespace(text), "")
    opener = _previous_code_line(doc, line)
    if opener is None or not _opens_block(doc, opener):
        return Span("line", before, "")
    opener_indent = leading_whitespace(doc.line_text(opener))
    return Span("block", _body_indent(doc, line, before, opener_indent, unit), opener_indent)


def _previous_code_line(doc: Document, line: int) -> int | None:
    for row in range(line - 1, max(-1, line - 1 - LOOK_BACK_LINES), -1):
        if doc.line_text(row).strip():
            return row
    return None


def _opens_block(doc: Document, line: int) -> bool:
    if doc.parse_pending:
        return _looks_like_opener(doc.grammar.style, doc.line_text(line))
    token = last_token(doc, line)
    if token is None:
        return False
    style, kind = doc.grammar.style, token.type
    if style == "indent":
        return kind == ":" and (token.parent is None or token.parent.type not in _PYTHON_NON_BLOCK_COLONS)
    if style == "end":
        return kind in _LUA_OPENERS or (kind == ")" and token.parent is not None and token.parent.type == "parameters")
    return kind == "{"


def _looks_like_opener(style: str, text: str) -> bool:
    if style == "indent":
        return _PYTHON_BLOCK_LINE.match(text) is not None
    if style == "end":
        return _LUA_BLOCK_LINE.search(text) is not None
    return _BRACE_BLOCK_LINE.search(text) is not None


def _body_indent(doc: Document, line: int, before: str, opener_indent: str, unit: str) -> str:
    """An existing body's indentation if the next line shows one, else what the editor put
    before the cursor if it is deeper than the opener, else one step deeper."""
    floor = columns(opener_indent)
    for row in range(line + 1, min(doc.line_count, line + 1 + LOOK_BACK_LINES)):
        text = doc.line_text(row)
        if text.strip():
            ws = leading_whitespace(text)
            if columns(ws) > floor:
                return ws
            break
    if columns(before) > floor:
        return before
    return opener_indent + unit
