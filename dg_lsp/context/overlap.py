"""Completions must not repeat the text after the cursor: neither the rest of the current
line (`foo(x))` before `)`) nor the next lines of the file (Tabby drops those too); nor
themselves, line after line (a small model's loop)."""

from __future__ import annotations

_PAIRS = ("()", "[]", "{}")
_QUOTES = "\"'`"


def strip_line_overlap(before: str, text: str, rest: str) -> str:
    """Remove the end of a one-line `text` that repeats the start of `rest`, the line's text
    after the cursor, when that makes the line's brackets and quotes balance better (so
    `print(` + `foo(x)` + `)` keeps its parenthesis), or when `text` ends with all of `rest`
    and nothing gets worse (`x = 1;` before `;`)."""
    rest = rest.rstrip()
    if not rest or not text:
        return text
    unbalanced = imbalance(before + text + rest)
    for k in range(min(len(rest), len(text)), 0, -1):
        if not text.endswith(rest[:k]):
            continue
        stripped = text[:-k]
        after = imbalance(before + stripped + rest)
        if after < unbalanced or (after == unbalanced and k == len(rest)):
            return stripped
    return text


def imbalance(line: str) -> int:
    """How far a line is from balanced: unmatched bracket counts plus odd quote counts."""
    score = sum(abs(line.count(a) - line.count(b)) for a, b in _PAIRS)
    return score + sum(line.count(q) % 2 for q in _QUOTES)


def drop_repeated_lines(text: str, following: list[str]) -> str:
    """Cut `text` before its last lines when they repeat `following` (the stripped,
    non-blank lines after the cursor's line): all of them to the end of `text`, or at least
    three when `text` goes on. Bare closers (`}`, `end`) are left to the block rules: they
    repeat all the time without being copies."""
    if not following:
        return text
    lines = text.split("\n")
    for i in range(len(lines)):
        if lines[i].strip() != following[0] or not any(ch.isalnum() for ch in following[0]):
            continue
        rest = [line.strip() for line in lines[i:] if line.strip()]
        matched = min(len(rest), len(following))
        if rest[:matched] == following[:matched] and (matched == len(rest) or matched >= 3):
            return "\n".join(lines[:i])
    return text


def cut_at_self_repetition(text: str) -> str:
    """Cut `text` before its first line of code that repeats the line of code before it
    (`if i == 0:` under `if i == 0:`): the loop a small model falls into, which its encoder is
    sure of, and never what the user means. Bare words (`end`, `else`, `pass`) and closers
    (`}`, `)`) may stand twice in a row and are left alone."""
    lines = text.split("\n")
    previous = None
    for i, line in enumerate(lines):
        code = line.strip()
        if not code:
            continue
        if code == previous and not _bare_word_or_closer(code):
            return "\n".join(lines[:i])
        previous = code
    return text


def _bare_word_or_closer(code: str) -> bool:
    return code.rstrip(";,").isalnum() or not any(ch.isalnum() for ch in code)
