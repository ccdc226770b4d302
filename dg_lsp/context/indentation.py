"""Indentation: how wide it is, which style the buffer uses, and moving completion lines to
the buffer's style and depth."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .document import Document

TAB_WIDTH = 4  # how wide a tab counts when tabs and spaces are compared
SCAN_LINES = 64  # lines around the cursor that decide the buffer's indentation style


def leading_whitespace(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def columns(whitespace: str) -> int:
    return len(whitespace.expandtabs(TAB_WIDTH)) if "\t" in whitespace else len(whitespace)


def render(width: int, unit: str) -> str:
    """Whitespace `width` columns wide, with tabs when the buffer indents with tabs."""
    if unit.startswith("\t"):
        return "\t" * (width // TAB_WIDTH) + " " * (width % TAB_WIDTH)
    return " " * width


def detect_unit(doc: Document, line: int, default: str) -> str:
    """The buffer's indentation step near `line`: a tab, or the commonest increase in spaces."""
    first = max(0, line - SCAN_LINES)
    last = min(doc.line_count - 1, line + SCAN_LINES // 4)
    text = doc.text[doc.line_start(first) : doc.line_end(last)]
    tabs = spaces = 0
    steps: Counter[int] = Counter()
    previous = None
    for row in text.split("\n"):
        if not row.strip():
            continue
        ws = leading_whitespace(row)
        if ws.startswith("\t"):
            tabs += 1
        elif ws:
            spaces += 1
        width = columns(ws)
        if previous is not None and 0 < width - previous <= 8:
            steps[width - previous] += 1
        previous = width
    if tabs > spaces:
        return "\t"
    if steps and spaces:
        return " " * steps.most_common(1)[0][0]
    return default


def reindent(text: str, before: str, target: str, unit: str) -> str:
    """Move the lines of a multi-line completion so that its first line sits at `target`
    indentation and its steps use the buffer's `unit`. `before` is what precedes the cursor
    on its line (whitespace), so the first line's own indentation is added to it."""
    lines = text.split("\n")
    before_width = columns(before)
    widths: list[int | None] = []
    for i, line in enumerate(lines):
        if not line.strip():
            widths.append(None)
            continue
        widths.append(columns(leading_whitespace(line)) + (before_width if i == 0 else 0))
    known = [w for w in widths if w is not None]
    if not known:
        return text
    base = known[0]
    goal = max(columns(target), before_width)
    # The model's own step: its first indentation increase (a continuation line aligned to
    # a bracket is not a step, so the smallest increase is taken, not a gcd).
    model_step = min((w - base for w in known if w > base), default=0)
    buffer_step = columns(unit)
    rescale = model_step and buffer_step and model_step != buffer_step

    out = []
    for i, (line, width) in enumerate(zip(lines, widths)):
        if width is None:
            out.append("")
            continue
        shift = width - base
        if rescale and shift % model_step == 0:
            shift = shift // model_step * buffer_step
        new_width = max(0, goal + shift)
        if i == 0:
            new_width = max(0, new_width - before_width)
        out.append(render(new_width, unit) + line.lstrip(" \t"))
    return "\n".join(out)
