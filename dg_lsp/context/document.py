"""An open document: its text, a line index, and a tree-sitter tree kept in step with LSP edits.

Edits update the text and the line index at once and describe themselves to the old tree
(`Tree.edit`); the incremental re-parse waits until someone asks for `.tree`, so a burst of
keystrokes between two completion requests costs one parse, not one per keystroke.
Documents larger than `max_parse_bytes` are kept as plain text (no grammar, no tree).

A re-parse is usually well under a millisecond, but an edit that changes how much of the
file is code (an opened string or docstring, an unbalanced bracket) re-parses most of the
file: tens of milliseconds on 5,000 lines, on every keystroke until it is closed. A
document with a `parse_budget_s` (the server's) therefore parses for at most that long
when `.tree` is asked for; if the parse is not done, `.tree` is the last complete tree with
every edit since applied to it (positions right, structure of the edited text not yet), and
the parse resumes where it stopped on the next call (`finish_parse` runs it while the
editor is idle). `parsed_tree()` always parses to the end.
"""

from __future__ import annotations

import re
import time

from tree_sitter import Parser, Tree

from ..languages import LanguageSpec, language_for
from .chunk_reader import ChunkReader
from .line_index import LineIndex
from .text_units import chars_in_utf8, chars_in_utf16, utf8_len, utf16_len

DEFAULT_MAX_PARSE_BYTES = 2 * 1024 * 1024

Range = tuple[tuple[int, int], tuple[int, int]]


class PositionError(ValueError):
    """An LSP position or range that does not exist in the document."""


class Document:
    def __init__(self, uri: str, language_id: str, text: str, version: int = 0,
                 max_parse_bytes: int = DEFAULT_MAX_PARSE_BYTES, parse_budget_s: float | None = None):
        self.uri = uri
        self.language_id = language_id
        self.version = version
        self.max_parse_bytes = max_parse_bytes
        self.parse_budget_s = parse_budget_s  # None: `.tree` always parses to the end
        self._language = language_for(language_id, uri)
        self._parser: Parser | None = None
        self._source: bytes | None = None  # the text being parsed, while a parse is unfinished
        self._replace_all(text)

    # -- syntax ------------------------------------------------------------------------

    @property
    def grammar(self) -> LanguageSpec | None:
        """The language (its spec and grammar), or None for plain text and for documents too big to parse."""
        return self._language if self._byte_len <= self.max_parse_bytes else None

    @property
    def language(self) -> LanguageSpec | None:
        """The document's language even when it is too big to parse; None for plain text."""
        return self._language

    @property
    def tree(self) -> Tree | None:
        """The syntax tree; with a `parse_budget_s`, possibly the last one with the edits since
        applied to it (see the module docstring). A first parse always runs to the end."""
        if self.grammar is None:
            self._tree = None
            return None
        if self._stale and not self._budget_spent:
            budget = self.parse_budget_s if self._tree is not None else None
            self._parse(None if budget is None else time.perf_counter() + budget)
            # One budget per text: the many `.tree` reads of one plan must not each spend one.
            self._budget_spent = self._stale
        return self._tree

    def parsed_tree(self) -> Tree | None:
        """The syntax tree of the current text, parsing to the end if need be."""
        if self.grammar is None:
            return None
        if self._stale:
            self._parse(None)
        return self._tree

    @property
    def parse_pending(self) -> bool:
        """True while `.tree` lags behind the text."""
        return self.grammar is not None and self._stale

    def finish_parse(self, budget_s: float) -> bool:
        """Go on parsing for at most `budget_s`; True once the tree matches the text."""
        if self.parse_pending:
            self._parse(time.perf_counter() + budget_s)
        return not self.parse_pending

    def _parse(self, deadline: float | None) -> None:
        if self._parser is None:
            self._parser = self._language.new_parser()
        if self._source is None:  # a new parse (not resuming a stopped one)
            self._parser.reset()
            self._source = self.text.encode("utf-8", "surrogatepass")
        read = ChunkReader(self._source)

        def past_deadline(*_) -> bool:
            return time.perf_counter() > deadline

        args = (read,) if self._tree is None else (read, self._tree)
        try:
            if deadline is None:
                tree = self._parser.parse(*args)
            else:
                tree = self._parser.parse(*args, progress_callback=past_deadline)
        except ValueError:  # stopped at the deadline: the parser keeps its place
            return
        finally:
            read.release()
        self._tree, self._source, self._stale = tree, None, False

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
        self._text_changed()

    def _replace_all(self, text: str) -> None:
        self.text = text
        self._lines = LineIndex(text)
        self._byte_len = utf8_len(text)
        self._tree = None
        self._text_changed()

    def _text_changed(self) -> None:
        self._stale = True  # the tree lags behind the text
        self._source = None  # a stopped parse was of the old text: the next one starts again
        self._budget_spent = False  # the new text gets its own parse budget

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

    def node_text(self, node) -> str:
        """A node's text, taken from `.text` (the parser reads through a callback, so nodes
        carry no text of their own)."""
        return self.text[self.offset_of_point(*node.start_point) : self.offset_of_point(*node.end_point)]

    def offset_of_point(self, row: int, column: int) -> int:
        """Index into `.text` of a tree-sitter point (row, UTF-8 byte column)."""
        if row >= len(self._lines):
            return len(self.text)
        start = self._lines.char_start(row)
        end = self._lines.char_start(row + 1) if row + 1 < len(self._lines) else len(self.text)
        return start + chars_in_utf8(self.text[start:end], column)
