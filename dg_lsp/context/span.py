"""What to fill at a cursor: the rest of the line, or a whole block body.

Block mode is for an empty line right after a block opener (Python `...:`, `{` in brace
languages, Lua `then`/`do`/`function (...)`; each language's spec names its opener tokens):
the user is about to write a body. Anything else fills the rest of the current line. Plain
text always gets line mode.

The opener is found with the syntax tree; while the tree lags behind the text (a re-parse
over the server's budget, see `Document`), the opener line is judged by its text instead,
since the tree may not know the line at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from .document import Document
from .indentation import columns, leading_whitespace
from .tree_queries import last_token

LOOK_BACK_LINES = 8  # blank lines allowed between the opener and the cursor


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
    """By the language's opener tokens (`:` outside an expression, `{`, Lua's `then`), or,
    while the tree lags, by its opener-line pattern."""
    spec = doc.grammar
    if doc.parse_pending:
        return spec.opener_line.search(doc.line_text(line)) is not None
    token = last_token(doc, line)
    if token is None:
        return False
    parent = token.parent.type if token.parent is not None else None
    if token.type in spec.opener_tokens:
        return parent not in spec.opener_not_in
    return parent is not None and spec.opener_tokens_in.get(token.type) == parent


def _body_indent(doc: Document, line: int, before: str, opener_indent: str, unit: str) -> str:
    """What the editor put before the cursor if it is deeper than the opener (the line is in
    the body already), else an existing body's indentation if the next line shows one, else
    one step deeper. The cursor wins over the next line: a deeper next line is often the body
    of the line being written (`if ...:` above its own body), and pushing the completion there
    made every such completion wrong on held-out line holes (benchmarks/confidence.py)."""
    floor = columns(opener_indent)
    if columns(before) > floor:
        return before
    for row in range(line + 1, min(doc.line_count, line + 1 + LOOK_BACK_LINES)):
        text = doc.line_text(row)
        if text.strip():
            ws = leading_whitespace(text)
            if columns(ws) > floor:
                return ws
            break
    return opener_indent + unit
