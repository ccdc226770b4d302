"""Code recently edited or opened in other documents, to show the model beside the prefix
(the idea of llama.vim's ring buffer).

`add` runs on every change notification, so it is O(1): it keeps a reference to the
(immutable) text and cuts the chunk's lines out only when a different chunk takes the
front. The snippets for a document never depend on edits to that same document, so the
context part of the prompt stays cacheable while the user types.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Snippet:
    uri: str
    text: str


class _Chunk:
    __slots__ = ("uri", "first", "last", "_source", "_text")

    def __init__(self, uri: str, source: str, first: int, last: int):
        self.uri, self.first, self.last = uri, first, last  # lines first..last-1
        self._source: str | None = source
        self._text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = _lines(self._source, self.first, self.last)
            self._source = None  # keep the chunk, not a whole version of the file
        return self._text

    def overlap(self, first: int, last: int) -> int:
        return max(0, min(self.last, last) - max(self.first, first))


class SnippetRing:
    def __init__(self, max_chunks: int = 16, chunk_lines: int = 64, min_overlap: float = 0.5):
        self.max_chunks = max_chunks
        self.chunk_lines = chunk_lines
        self.min_overlap = min_overlap  # share of a chunk's lines that makes a new chunk replace it
        self._chunks: list[_Chunk] = []  # most recent first

    def add(self, uri: str, text: str, line: int) -> None:
        """Remember the lines around `line` of `text` (a document's whole text)."""
        first = max(0, line - self.chunk_lines // 2)
        last = first + self.chunk_lines
        replaced = [c for c in self._chunks
                    if c.uri == uri and c.overlap(first, last) >= self.min_overlap * self.chunk_lines]
        if self._chunks and self._chunks[0] not in replaced:
            _ = self._chunks[0].text  # it leaves the front: cut its lines out before the text moves on
        self._chunks = [_Chunk(uri, text, first, last)] + [c for c in self._chunks if c not in replaced]
        del self._chunks[self.max_chunks :]

    def forget(self, uri: str) -> None:
        """Drop every chunk of `uri` (a closed document)."""
        self._chunks = [c for c in self._chunks if c.uri != uri]

    def snippets(self, exclude_uri: str, max_chars: int) -> list[Snippet]:
        """Chunks of other documents, most recent first, `max_chars` characters at most in all
        (the last one cut at a line boundary)."""
        out, room = [], max_chars
        for chunk in self._chunks:
            if chunk.uri == exclude_uri:
                continue
            text = chunk.text
            if not text.strip():
                continue
            if len(text) > room:
                text = text[: text.rfind("\n", 0, room) + 1]
                if text.strip():
                    out.append(Snippet(chunk.uri, text))
                break
            out.append(Snippet(chunk.uri, text))
            room -= len(text)
        return out


def _lines(text: str, first: int, last: int) -> str:
    """Lines first..last-1 of `text`, each with its "\\n"."""
    start = 0
    for _ in range(first):
        start = text.find("\n", start) + 1
        if start == 0:
            return ""
    end = start
    for _ in range(last - first):
        found = text.find("\n", end)
        if found < 0:
            end = len(text)
            break
        end = found + 1
    chunk = text[start:end]
    return chunk if not chunk or chunk.endswith("\n") else chunk + "\n"
