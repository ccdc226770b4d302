"""Where each line starts, in characters and in UTF-8 bytes, kept current under edits.

An edit re-splices only the lines it touched. Every later line moves by the same amount,
so that shift is recorded once (`_shift_from`, `_char_shift`, `_byte_shift`) instead of
being added to thousands of entries: typing on one line costs O(1) Python work, and moving
to another line costs O(lines between the two edits). Only "\\n" ends a line (a "\\r"
before it belongs to the line's text), as for tree-sitter rows.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate


class LineIndex:
    def __init__(self, text: str):
        lines = text.split("\n")
        self._chars = [0, *accumulate(len(line) + 1 for line in lines[:-1])]
        if text.isascii():
            self._bytes = list(self._chars)
        else:
            self._bytes = [0, *accumulate(len(line.encode("utf-8", "surrogatepass")) + 1 for line in lines[:-1])]
        # Entries at index >= _shift_from are stored without the pending shifts.
        self._shift_from = len(self._chars)
        self._char_shift = 0
        self._byte_shift = 0

    def __len__(self) -> int:
        return len(self._chars)

    def char_start(self, line: int) -> int:
        return self._chars[line] + (self._char_shift if line >= self._shift_from else 0)

    def byte_start(self, line: int) -> int:
        return self._bytes[line] + (self._byte_shift if line >= self._shift_from else 0)

    def line_of_char(self, offset: int) -> int:
        k = self._shift_from
        if k < len(self._chars) and offset >= self._chars[k] + self._char_shift:
            return bisect_right(self._chars, offset - self._char_shift, k) - 1
        return bisect_right(self._chars, offset, 0, k) - 1

    def replace(self, first: int, last: int, new_chars: list[int], new_bytes: list[int],
                char_delta: int, byte_delta: int) -> None:
        """An edit from line `first` to line `last` (old numbering) left lines starting at
        `new_chars`/`new_bytes` (absolute, new text) after `first`; everything after `last`
        moved by the deltas."""
        self._move_shift_to(first + 1)
        self._chars[first + 1 : last + 1] = new_chars
        self._bytes[first + 1 : last + 1] = new_bytes
        self._shift_from = first + 1 + len(new_chars)
        self._char_shift += char_delta
        self._byte_shift += byte_delta

    def _move_shift_to(self, line: int) -> None:
        """Re-express the entries so that the pending shift starts exactly at `line`."""
        k, dc, db = self._shift_from, self._char_shift, self._byte_shift
        if dc == 0 and db == 0:
            self._shift_from = line
            return
        chars, nbytes = self._chars, self._bytes
        if k < line:  # entries k..line-1 take their shift now
            for i in range(k, min(line, len(chars))):
                chars[i] += dc
                nbytes[i] += db
        else:  # entries line..k-1 are stored as if they were shifted
            for i in range(line, min(k, len(chars))):
                chars[i] -= dc
                nbytes[i] -= db
        self._shift_from = line
