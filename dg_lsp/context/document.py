"""An open document: its text, a line index, and a tree-sitter tree kept in step with LSP edits.

Edits update the text and the line index at once and describe themselves to the old tree
(`Tree.edit`); the incremental re-parse waits until someone asks for `.tree`, so a burst of
keystrokes between two completion requests costs one parse, not one per keystroke.
Documents larger than `max_parse_bytes` are kept as plain text (no grammar, no tree).
"""

from __future__ import annotations

import re

from tree_sitter import Parser, Tree

from .languages import Grammar, language_for
from .line_index import LineIndex
from .text_units import chars_in_utf8, chars_in_utf16, utf8_len, utf16_len

DEFAULT_MAX_PARSE_BYTES = 2 * 1024 * 1024

Range = tuple[tuple[int, int], tuple[int, int]]


class PositionError(ValueError):
    """An LSP position or range that does not exist in the document."""


class Document:
    def __init__(self, uri: str, language_id: str, text: str, version: int = 0,
                 max_parse_bytes: int = DEFAULT_MAX_PARSE_BYTES):
        self.uri = uri
        self.language_id = language_id
        self.version = version
        self.max_parse_bytes = max_parse_bytes
        self._language = language_for(language_id, uri)
        self._parser: Parser | None = None
        self._replace_all(text)

    # -- syntax ------------------------------------------------------------------------

    @property
    def grammar(self) -> Grammar | None:
        """The grammar, or None for plain text and for documents too big to parse."""
        return self._language if self._byte_len <= self.max_parse_bytes else None

    @property
    def language(self) -> Grammar | None:
        """The document's language even when it is too big to parse; None for plain text."""
        return self._language

    @property
    def tree(self) -> Tree | None:
        if self.grammar is None:
            self._tree = None
            return None
        if self._tree is None or self._stale:
            if self._parser is None:
                self._parser = self._language.new_parser()
            source = self.text.encode("utf-8", "surrogatepass")
            old = self._tree
            self._tree = self._parser.parse(source, old) if old is not None else self._parser.parse(source)
            self._stale = False
        return self._tree

    def has_syntax_errors(self) -> bool:
        tree = self.tree
        return tree is not None and tree.root_node.has_error

    # -- edits -------------------------------------------------------------------------

    def apply_change(self, range_: Range | None, new_text: str) -> None:
        """Apply one LSP content change; `range_` is ((line, utf16), (line, utf16)) or None
        for a full replacement."""
        if range_ is None:
            self._replace_all(new_text)
            return
        (first, first_char), (last, last_char) = range_
        start = self.offset_at(first, first_char)
        end = self.offset_at(last, last_char)
        if end < start:
            raise PositionError(f"the change's range ends ({last}:{last_char}) before it starts ({first}:{first_char})")
        start_col = utf8_len(self.text[self._lines.char_start(first) : start])
        end_col = utf8_len(self.text[self._lines.char_start(last) : end])
        start_byte = self._lines.byte_start(first) + start_col
        old_end_byte = self._lines.byte_start(last) + end_col

        breaks = [m.start() for m in re.finditer("\n", new_text)]
        if new_text.isascii():
            new_bytes = [start_byte + i + 1 for i in breaks]
            inserted_bytes = len(new_text)
        else:
            new_bytes = [start_byte + utf8_len(new_text[: i + 1]) for i in breaks]
            inserted_bytes = utf8_len(new_text)
        if breaks:
            new_end_point = (first + len(breaks), utf8_len(new_text[breaks[-1] + 1 :]))
        else:
            new_end_point = (first, start_col + inserted_bytes)

        self.text = self.text[:start] + new_text + self.text[end:]
        byte_delta = inserted_bytes - (old_end_byte - start_byte)
        self._lines.replace(first, last, [start + i + 1 for i in breaks], new_bytes,
                            len(new_text) - (end - start), byte_delta)
        self._byte_len += byte_delta
        if self._tree is not None:
            self._tree.edit(start_byte, old_end_byte, start_byte + inserted_bytes,
                            (first, start_col), (last, end_col), new_end_point)
        self._stale = True

    def _replace_all(self, text: str) -> None:
        self.text = text
        self._lines = LineIndex(text)
        self._byte_len = utf8_len(text)
        self._tree = None
        self._stale = True

    # -- positions ---------------------------------------------------------------------

    @property
    def line_count(self) -> int:
        return len(self._lines)

    @property
    def line_ending(self) -> str:
        i = self.text.find("\n")
        return "\r\n" if i > 0 and self.text[i - 1] == "\r" else "\n"

    def offset_at(self, line: int, character: int) -> int:
        """Index into `.text` of an LSP position (UTF-16 `character`)."""
        if not 0 <= line < len(self._lines):
            raise PositionError(f"line {line} is outside the document, which has {len(self._lines)} lines (0-based)")
        start = self._lines.char_start(line)
        text = self.text[start : self.line_end(line)]
        chars = chars_in_utf16(text, character) if character >= 0 else None
        if chars is None:
            raise PositionError(
                f"character {character} is not a position on line {line}, which is {utf16_len(text)} "
                "UTF-16 code units long (a position may not split a surrogate pair)"
            )
        return start + chars

    def position_at(self, offset: int) -> tuple[int, int]:
        """The LSP position (line, UTF-16 character) of an index into `.text`."""
        if not 0 <= offset <= len(self.text):
            raise PositionError(f"offset {offset} is outside the document (length {len(self.text)})")
        line = self._lines.line_of_char(offset)
        offset = min(offset, self.line_end(line))  # between "\r" and "\n": the line's end
        return line, utf16_len(self.text[self._lines.char_start(line) : offset])

    def line_of(self, offset: int) -> int:
        return self._lines.line_of_char(offset)

    def line_start(self, line: int) -> int:
        return self._lines.char_start(line)

    def line_end(self, line: int) -> int:
        """Offset of the end of `line`'s text, before its "\\n" or "\\r\\n"."""
        if line + 1 >= len(self._lines):
            return len(self.text)
        end = self._lines.char_start(line + 1) - 1
        return end - 1 if end > 0 and self.text[end - 1] == "\r" else end

    def line_text(self, line: int) -> str:
        return self.text[self._lines.char_start(line) : self.line_end(line)]

    def byte_of(self, offset: int) -> int:
        """UTF-8 byte offset (tree-sitter's unit) of an index into `.text`."""
        line = self._lines.line_of_char(offset)
        start = self._lines.char_start(line)
        return self._lines.byte_start(line) + utf8_len(self.text[start:offset])

    def offset_of_point(self, row: int, column: int) -> int:
        """Index into `.text` of a tree-sitter point (row, UTF-8 byte column)."""
        if row >= len(self._lines):
            return len(self.text)
        start = self._lines.char_start(row)
        end = self._lines.char_start(row + 1) if row + 1 < len(self._lines) else len(self.text)
        return start + chars_in_utf8(self.text[start:end], column)
