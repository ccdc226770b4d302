"""Where the prompt's prefix starts and its suffix ends.

Both cuts fall at the start of a statement line, preferring the least indented one (a
top-level definition beats a statement inside a body). The prefix cut must not move while
the user types at the cursor, or every keystroke would invalidate the prompt cache, so it
depends only on text before the cursor's line and on where that line starts:

- the anchor is the start of the cursor's line (on a very long line, the last multiple
  of `step` characters into it), so typing within a line leaves it in place;
- the earliest allowed start, `anchor - reach`, is rounded down to a grid of `step`
  characters counted from the start of the file, so a new line moves it only when it
  crosses a grid line, about once per `step` characters typed;
- the cut is the best statement line in a fixed window after that point, `window`
  characters long and before the cursor's line, so what is typed never enters it.

The prefix is then at most `reach + 2 * step` characters: the budget. The suffix end
depends on text after the cursor only, measured from the cursor, so typing before it
never moves it either.
"""

from __future__ import annotations

from .document import Document
from .indentation import columns
from .tree_queries import starts_statement

STEP_SHARE = 8  # the prefix cut moves in steps of 1/8 of the prefix budget
WINDOW_SHARE = 4  # and is chosen among the lines of a window 1/4 of it long


def prefix_start(doc: Document, offset: int, max_chars: int) -> int:
    """Where to start a prefix of at most `max_chars` characters ending at `offset`."""
    step = max(1, max_chars // STEP_SHARE)
    window = max(1, max_chars // WINDOW_SHARE)
    cursor_line_start = doc.line_start(doc.line_of(offset))
    anchor = cursor_line_start + (offset - cursor_line_start) // step * step
    low = (anchor - (max_chars - 2 * step)) // step * step
    if low <= 0:
        return 0
    high = min(low + window, cursor_line_start)
    first = doc.line_of(low)
    if doc.line_start(first) < low:
        first += 1
    lines = _lines_between(doc, first, high)
    # Least indented first; among equals the earliest keeps the most context.
    for _, line, indent in sorted(lines):
        if starts_statement(doc, line, indent):
            return doc.line_start(line)
    return doc.line_start(lines[0][1]) if lines else low


def suffix_end(doc: Document, offset: int, max_chars: int) -> int:
    """Where to end a suffix of at most `max_chars` characters starting at `offset`."""
    high = offset + max_chars
    if high >= len(doc.text):
        return len(doc.text)
    window = max(1, max_chars // WINDOW_SHARE)
    first = doc.line_of(max(offset, high - window))
    if doc.line_start(first) < high - window:
        first += 1
    first = max(first, doc.line_of(offset) + 1)
    lines = _lines_between(doc, first, high + 1)
    # Least indented first; among equals the latest keeps the most context.
    for _, line, indent in sorted(lines, key=lambda item: (item[0], -item[1])):
        if starts_statement(doc, line, indent):
            return doc.line_start(line)
    return doc.line_start(lines[-1][1]) if lines else high


def _lines_between(doc: Document, first: int, end_offset: int) -> list[tuple[int, int, int]]:
    """(indent width, line, indent chars) of the non-blank lines from `first` that start
    before `end_offset`."""
    if first >= doc.line_count:
        return []
    start = doc.line_start(first)
    if start >= end_offset:
        return []
    last = doc.line_of(end_offset - 1)
    out = []
    for i, text in enumerate(doc.text[start : doc.line_end(last)].split("\n")):
        stripped = text.lstrip(" \t")
        if stripped.strip():
            ws = text[: len(text) - len(stripped)]
            out.append((columns(ws), first + i, len(ws)))
    return out
