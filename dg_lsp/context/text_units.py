"""Lengths and positions of text in the three units an editor request mixes: Python str
indices (code points), UTF-8 bytes (tree-sitter) and UTF-16 code units (LSP positions).

`surrogatepass` everywhere: text decoded from JSON may hold lone surrogates, and every
length here must agree with how the same text is encoded for the parser.
"""

from __future__ import annotations


def utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def utf16_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-16-le", "surrogatepass")) // 2


def chars_in_utf16(line: str, units: int) -> int | None:
    """How many characters of `line` make up its first `units` UTF-16 code units; None when
    `units` is past the end of the line or falls inside a surrogate pair."""
    if line.isascii():
        return units if units <= len(line) else None
    encoded = line.encode("utf-16-le", "surrogatepass")
    if 2 * units > len(encoded):
        return None
    if 2 * units < len(encoded) and 0xDC00 <= int.from_bytes(encoded[2 * units : 2 * units + 2], "little") <= 0xDFFF:
        before = int.from_bytes(encoded[2 * units - 2 : 2 * units], "little") if units else 0
        if 0xD800 <= before <= 0xDBFF:
            return None  # between the two halves of an astral character
    return len(encoded[: 2 * units].decode("utf-16-le", "surrogatepass"))


def chars_in_utf8(line: str, nbytes: int) -> int:
    """How many characters of `line` make up its first `nbytes` UTF-8 bytes (tree-sitter
    columns always fall on character boundaries)."""
    if line.isascii():
        return nbytes
    return len(line.encode("utf-8", "surrogatepass")[:nbytes].decode("utf-8", "surrogatepass"))
