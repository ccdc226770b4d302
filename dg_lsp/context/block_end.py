"""Where a block-mode completion leaves the block it was asked to fill.

Indentation languages (Python, and Lua, whose `end` sits at the opener's indentation): at
the first line indented no deeper than the opener. Brace languages: where the completion
closes more braces than it opened. A closing line (`}` or `end`) is kept only when the
buffer does not already close the block right after the cursor.
"""

from __future__ import annotations

import re

from .indentation import columns, leading_whitespace

_CLOSER_LINE = re.compile(r"^(\}[\s;,)\]]*|end\b[\s;,)]*)$")


def cut_at_block_end(text: str, style: str, opener_indent: str, following: list[str],
                     has_lifetimes: bool = False) -> str:
    if style == "brace":
        return _cut_braces(text, following, has_lifetimes)
    return _cut_dedent(text, columns(opener_indent), following, keep_closer=style == "end")


def _cut_dedent(text: str, opener_width: int, following: list[str], keep_closer: bool) -> str:
    lines = text.split("\n")
    for i in range(1, len(lines)):
        line = lines[i]
        if line.strip() and columns(leading_whitespace(line)) <= opener_width:
            closes = keep_closer and _CLOSER_LINE.match(line.strip()) and not _buffer_closes(following)
            return "\n".join(lines[: i + 1 if closes else i])
    return text


def _cut_braces(text: str, following: list[str], has_lifetimes: bool) -> str:
    at = _first_unmatched_close(text, has_lifetimes)
    if at is None:
        return text
    line_start = text.rfind("\n", 0, at) + 1
    if text[line_start:at].strip():
        return text[:at].rstrip()  # `return x; }`: keep the statement, not the brace
    line_end = text.find("\n", at)
    line = text[line_start : len(text) if line_end < 0 else line_end]
    if _CLOSER_LINE.match(line.strip()) and not _buffer_closes(following):
        return text[: len(text) if line_end < 0 else line_end]
    return text[:line_start]


def _buffer_closes(following: list[str]) -> bool:
    return bool(following) and bool(_CLOSER_LINE.match(following[0]) or following[0].startswith("}"))


def _first_unmatched_close(text: str, has_lifetimes: bool) -> int | None:
    """Index of the first `}` that closes a brace opened before the completion, skipping
    strings and comments (roughly: enough for a few lines of generated code)."""
    depth, i, n = 0, 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("//", i):
            i = _index_or_end(text, "\n", i)
            continue
        if c == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if c in "\"`" or (c == "'" and not (has_lifetimes and not _is_char_literal(text, i))):
            i = _string_end(text, i)
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth < 0:
                return i
        i += 1
    return None


def _is_char_literal(text: str, i: int) -> bool:
    """Rust: `'a'` or `'\\n'` is a character; `'a` alone is a lifetime."""
    return bool(re.match(r"'(\\.[^']*|[^'\\])'", text[i : i + 12]))


def _string_end(text: str, i: int) -> int:
    quote, j = text[i], i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == quote or (text[j] == "\n" and quote != "`"):
            return j + 1
        j += 1
    return len(text)


def _index_or_end(text: str, what: str, start: int) -> int:
    found = text.find(what, start)
    return len(text) if found < 0 else found
