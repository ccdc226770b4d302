"""Serve completions without a model call where the answer is already known.

- An exact repeat of a request (same model, seed, canvas, snippets, prompt text and
  settings) gets the same completions (LRU, 100 entries, 5 minutes), as Tabby does.
- When the user types characters that match the completion on screen, the rest of it is
  served as it is ("forwarding", as in Tabby and llama.vim).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

WINDOW = 2000  # characters around the cursor that identify a context


@dataclass
class Shown:
    """The completions last offered in a document, and where."""

    uri: str
    offset: int  # cursor offset when they were made
    before: str  # the WINDOW characters before the cursor
    after: str  # the WINDOW characters after the cursor
    texts: list[str]


class CompletionCache:
    def __init__(self, max_entries: int = 100, ttl_s: float = 300.0):
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._entries: OrderedDict[tuple, tuple[float, list[str]]] = OrderedDict()
        self._shown: dict[str, Shown] = {}
        self.hits = 0

    @staticmethod
    def key(model: str, seed: int, plan, mode: str, variant: tuple = ()) -> tuple:
        """Everything a seeded completion depends on: the model, the seed, the plan's canvas and
        prompt text (snippets, prefix, suffix), the trigger mode and its settings."""
        return (model, seed, plan.canvas_length, plan.context, plan.prefix, plan.suffix, mode, variant)

    def get(self, key: tuple) -> list[str] | None:
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[0] > self.ttl_s:
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry[1]

    def put(self, key: tuple, texts: list[str]) -> None:
        self._entries[key] = (time.monotonic(), texts)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def remember_shown(self, uri: str, text: str, offset: int, texts: list[str]) -> None:
        before = text[max(0, offset - WINDOW) : offset]
        self._shown[uri] = Shown(uri, offset, before, text[offset : offset + WINDOW], texts)

    def forward(self, uri: str, text: str, offset: int) -> list[str] | None:
        """If the user typed the start of a shown completion, the rest of each matching one."""
        shown = self._shown.get(uri)
        if shown is None or offset <= shown.offset:
            return None
        typed = text[shown.offset : offset]
        if text[max(0, shown.offset - WINDOW) : shown.offset] != shown.before:
            return None
        rest = [t[len(typed) :] for t in shown.texts if t.startswith(typed) and len(t) > len(typed)]
        # The text after the cursor must be what followed the shown completion.
        if not rest or text[offset : offset + WINDOW] != shown.after[: len(text[offset : offset + WINDOW])]:
            return None
        self.hits += 1
        return rest

    def clear(self) -> None:
        """Drop everything (the model changed)."""
        self._entries.clear()
        self._shown.clear()

    def forget(self, uri: str) -> None:
        self._shown.pop(uri, None)
