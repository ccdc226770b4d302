"""Tokenization of prompt segments, memoized by text.

A completion request's prompt is made of segments (snippets from other files, the prefix,
the suffix, the fixed text of an instruction prompt). Between two keystrokes only the
prefix changes, so the other segments are looked up here instead of being tokenized again,
and the prefix is tokenized once even when the planner counts it before the builder uses it.
Stable segments and prefixes live in separate LRU memos, so a burst of typing cannot push
the suffix out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from tokenizers import Tokenizer


@dataclass(frozen=True)
class Encoded:
    ids: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...]  # each token's (start, end) character span in the text
    text: str

    def __len__(self) -> int:
        return len(self.ids)


EMPTY = Encoded((), (), "")


class SegmentTokenizer:
    """`encode(text, stable=...)` with memos; `calls` counts real tokenizer calls (tests read it)."""

    def __init__(self, tokenizer: Tokenizer, stable_entries: int = 64, volatile_entries: int = 4):
        self.tokenizer = tokenizer
        self._memos = {True: OrderedDict(), False: OrderedDict()}
        self._sizes = {True: stable_entries, False: volatile_entries}
        self._lock = threading.Lock()  # the planner (event loop) and the builder (model thread) share it
        self.calls = 0

    def encode(self, text: str, stable: bool = True) -> Encoded:
        if not text:
            return EMPTY
        memo = self._memos[stable]
        with self._lock:
            found = memo.get(text)
            if found is not None:
                memo.move_to_end(text)
                return found
        encoding = self.tokenizer.encode(text, add_special_tokens=False)
        encoded = Encoded(tuple(encoding.ids), tuple(encoding.offsets), text)
        with self._lock:
            self.calls += 1
            memo[text] = encoded
            while len(memo) > self._sizes[stable]:
                memo.popitem(last=False)
        return encoded

    def clear(self) -> None:
        with self._lock:
            for memo in self._memos.values():
                memo.clear()


def keep_start(encoded: Encoded, budget: int) -> int:
    """How many tokens to keep from the start, at most `budget`, ending at a line break when
    one is in reach."""
    if len(encoded) <= budget:
        return len(encoded)
    if budget <= 0:
        return 0
    for i in range(budget - 1, budget // 2 - 1, -1):  # search back at most half the budget
        start, stop = encoded.offsets[i]
        if "\n" in encoded.text[start:stop]:
            return i + 1
    return budget


def keep_end(encoded: Encoded, budget: int, step: int = 32) -> int:
    """The first token to keep so that at most `budget` are kept from the end. The cut moves in
    steps of `step` tokens and then forward to a line break, so while text is added at the end
    it stays put for many keystrokes (and the prompt cache with it)."""
    if len(encoded) <= budget:
        return 0
    if budget <= 0:
        return len(encoded)
    first = min(len(encoded) - 1, -(-(len(encoded) - budget) // step) * step)
    for i in range(first, min(len(encoded), first + budget // 2)):  # search forward at most half the budget
        start, stop = encoded.offsets[i]
        piece = encoded.text[start:stop]
        if "\n" in piece:  # a token may hold a line break and the next line's indentation
            return i + 1 if piece.endswith("\n") else i
    return first
