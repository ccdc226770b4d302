"""Prompt-lookup drafts: what followed the longest earlier match of the text before the cursor.

Code repeats itself (a second `return self._x`, the next arm of a `match`, a test that mirrors
the one above). Prompt-lookup decoding exploits that: find where the text just before the
cursor already occurs in the open documents and propose what came next there. The engine
seeds its canvas with that draft; the model keeps it where it agrees (and the confidence
gate shows it only then).

The search is plain string matching, bounded so that it costs well under a millisecond on
documents of a few hundred KB: a short tail of the prefix is looked up with `str.rfind`
(at most `MAX_HITS` occurrences a document, the latest first), and each hit's match is
extended backwards by binary search over slice comparisons.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MIN_MATCH_CHARS = 12  # the needle looked up; shorter matches are mostly indentation and punctuation
# Measured on held-out line holes (benchmarks/confidence.py): the draft alone is the line's
# true rest for 13% of matches of 12+ characters, 45% of 32+, 62% of 48+ (a later run,
# confidence-cpu-20261202-070107: 46% of 48+; on 1,623 other holes, 27%). Seeding from every
# match is still worth it, because the encoder's check (the gate) drops the tokens it does not
# believe: at the default gate (0.35), seeding from 12+ characters instead of 32+ raised the right
# share of shown completions from 60% to 66% and right characters per request from 1.24 to 1.30.
SEED_MATCH_CHARS = MIN_MATCH_CHARS  # a draft seeds the canvas from this match length
TRUSTED_MATCH_CHARS = 48  # and vouches for the tokens the model keeps from it from this one
MAX_MATCH_CHARS = 2048  # enough to rank hits; longer comparisons buy nothing
MAX_HITS = 64  # occurrences examined per document, the latest first
MAX_DRAFT_LINES = 6  # block completions: at most this many lines of continuation


@dataclass(frozen=True)
class Draft:
    text: str  # the continuation after the match: what the draft proposes at the cursor
    match_chars: int  # how many characters before the cursor the match covers
    source: str  # the document it came from

    @property
    def trusted(self) -> bool:
        """Long matches are right often enough that what the model keeps of them may be shown."""
        return self.match_chars >= TRUSTED_MATCH_CHARS


def lookup_draft(prefix: str, cursor_source: str, sources: Iterable[tuple[str, str]], *,
                 cursor: int | None = None, multiline: bool = False,
                 min_match: int = SEED_MATCH_CHARS) -> Draft | None:
    """The continuation of the longest earlier match of `prefix`'s end in `sources`
    ((name, text) pairs; the document being edited among them, named `cursor_source`,
    where the occurrence ending at `cursor` is the cursor itself and is skipped).
    A line completion gets the rest of the matched line; a block one up to
    `MAX_DRAFT_LINES` lines. None when no match of `min_match` characters has a non-blank
    continuation."""
    if len(prefix) < MIN_MATCH_CHARS:
        return None
    needle = prefix[-MIN_MATCH_CHARS:]
    best: Draft | None = None
    for name, text in sources:
        end = len(text)
        for _ in range(MAX_HITS):
            start = text.rfind(needle, 0, end)
            if start < 0:
                break
            hit_end = start + MIN_MATCH_CHARS
            end = hit_end - 1  # the next search finds earlier (possibly overlapping) occurrences
            if name == cursor_source and hit_end == cursor:
                continue
            continuation = _continuation(text, hit_end, multiline)
            if not continuation.strip():
                continue
            length = _match_length(prefix, text, hit_end)
            if best is None or length > best.match_chars:
                best = Draft(continuation, length, name)
    return best if best is not None and best.match_chars >= min_match else None


def _match_length(prefix: str, text: str, hit_end: int) -> int:
    """The longest L with prefix[-L:] == text[hit_end - L:hit_end] (L >= MIN_MATCH_CHARS is known)."""
    low, high = MIN_MATCH_CHARS, min(len(prefix), hit_end, MAX_MATCH_CHARS)
    while low < high:  # invariant: a match of `low` characters holds
        mid = (low + high + 1) // 2
        if prefix[-mid:] == text[hit_end - mid:hit_end]:
            low = mid
        else:
            high = mid - 1
    return low


def _continuation(text: str, start: int, multiline: bool) -> str:
    end = start
    for _ in range(MAX_DRAFT_LINES if multiline else 1):
        newline = text.find("\n", end)
        if newline < 0:
            return text[start:]
        end = newline + 1
    return text[start:end] if multiline else text[start:end - 1]
